// Workflows killed with SIGKILL in a child process, then resumed in this one on the same store.
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { AtMostOnceFailedBeforeCompleting, type TaskId } from "mend";
import { Flow, Shop, app, type At } from "./apps/workflows.js";
import { bundleApp, runApp, type Child } from "./helpers/child.js";
import { next, start } from "./helpers/runtimes.js";
import { tempDir } from "./helpers/temp.js";

const entry = new URL("./apps/workflows.ts", import.meta.url).pathname;

type Line = { event: string; point?: string; taskId?: TaskId; [key: string]: unknown };

/**
 * Runs `method` of Flow('f') as a task in a child process, holding at a gate file, and
 * kills the child once it prints the line `at` accepts. Returns the store and the task.
 */
async function killWhile(method: string, request: Record<string, unknown>, at: (line: Line) => boolean) {
  const dir = tempDir();
  const bundle = await bundleApp(entry, join(dir, "app.mjs"));
  const gate = join(dir, "gate");
  writeFileSync(gate, "");
  const child: Child = runApp(join(dir, "store"), bundle, [
    { target: { stateType: "Flow", stateId: "f", method }, request: { ...request, gate } },
  ]);
  const { taskId } = await child.line<Line>((l) => l.event === "spawned");
  await child.line<Line>(at);
  child.kill("SIGKILL");
  await child;
  rmSync(gate);
  return { directory: join(dir, "store"), taskId: taskId!, child };
}

function recorder(fail: (point: string, detail: Record<string, unknown>) => boolean = () => false) {
  const seen: { point: string; [key: string]: unknown }[] = [];
  const at: At = (point, detail) => {
    if (fail(point, detail)) throw new Error(`bug at ${point}`);
    seen.push({ point, ...detail });
  };
  return { at, seen, count: (point: string) => seen.filter((s) => s.point === point).length };
}

type End = { taskId: TaskId; outcome: string; error?: Error };

test("atMostOnce: after a crash in the middle of fn, every later attempt throws AtMostOnceFailedBeforeCompleting", async () => {
  const { directory, taskId } = await killWhile("once", { helper: "atMostOnce" }, (l) => l.point === "send");
  const points = recorder();
  const rt = await start(app(points.at, { retry: { initialMs: 3_600_000, maxMs: 3_600_000 } }), { directory });
  const first = await next<End>(rt, "attempt:end");
  expect(first.outcome).toBe("FAILED");
  expect(first.error).toBeInstanceOf(AtMostOnceFailedBeforeCompleting);
  expect(first.error!.message).toBe('atMostOnce("send") was started by an earlier attempt that did not complete it; it will not run again.');

  const again = next<End>(rt, "attempt:end");
  expect(await rt.retry(taskId.taskUuid)).toBe(true);
  expect((await again).error).toBeInstanceOf(AtMostOnceFailedBeforeCompleting);
  expect(points.count("send")).toBe(0);
  expect((await rt.getTask(taskId.taskUuid)).attempts.map((a) => [a.outcome, a.error?.name])).toEqual([
    ["INTERRUPTED", null],
    ["FAILED", "AtMostOnceFailedBeforeCompleting"],
    ["FAILED", "AtMostOnceFailedBeforeCompleting"],
  ]);
});

test("atLeastOnce: after a crash in the middle of fn, fn runs again, and then never again", async () => {
  const { directory, taskId } = await killWhile("once", { helper: "atLeastOnce" }, (l) => l.point === "send");
  // The step after atLeastOnce fails once, so the workflow runs a third time.
  let bugs = 1;
  const points = recorder((point) => point === "after-send" && bugs-- > 0);
  const rt = await start(app(points.at, { retry: { initialMs: 0 } }), { directory });
  expect(await Flow.OnceTask.retrieve(rt.context(), { taskId })).toEqual({ value: "sent" });
  expect(points.count("send")).toBe(1);
  expect((await rt.getTask(taskId.taskUuid)).attempts.map((a) => a.outcome)).toEqual(["INTERRUPTED", "FAILED", "COMPLETED"]);
});

test("a loop of 5 iterations killed with SIGKILL in its third iteration resumes at the third", async () => {
  const { directory, taskId } = await killWhile("poll", { iterations: 5, blockAt: 2 }, (l) => l.point === "iteration" && l.i === 2);
  const points = recorder();
  const rt = await start(app(points.at), { directory });
  expect(await Flow.PollTask.retrieve(rt.context(), { taskId })).toEqual({ iterations: 5 });
  // Iterations 0 and 1 ran only in the killed process; 2 ran again, its memoised note not.
  expect(points.seen.filter((s) => s.point === "iteration").map((s) => s.i)).toEqual([2, 3, 4]);
  expect((await Shop.ref("s").get(rt.context())).log).toEqual(["iteration 0", "iteration 1", "iteration 2", "iteration 3", "iteration 4"]);
  expect((await rt.getTask(taskId.taskUuid)).attempts.map((a) => a.outcome)).toEqual([
    "ITERATED",
    "ITERATED",
    "INTERRUPTED",
    "ITERATED",
    "ITERATED",
    "COMPLETED",
  ]);
});

test("a child task spawned by a workflow is spawned once across a crash, and the parent gets its result", async () => {
  const { directory, taskId, child } = await killWhile("parent", {}, (l) => l.point === "child");
  const before = await child.line<Line>((l) => l.point === "spawned");
  const points = recorder();
  const rt = await start(app(points.at), { directory });
  expect(await Flow.ParentTask.retrieve(rt.context(), { taskId })).toEqual({ child: "from child" });
  const children = await rt.listTasks({ method: "child", limit: 10 });
  expect(children).toHaveLength(1);
  expect(children[0]!.status).toBe("COMPLETED");
  // The parent's retry found the child it had spawned before the crash.
  expect(children[0]!.taskId.taskUuid).toBe(before.taskUuid);
  expect(points.seen.filter((s) => s.point === "spawned").map((s) => s.taskUuid)).toEqual([before.taskUuid]);
});
