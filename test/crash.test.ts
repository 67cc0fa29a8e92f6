import { writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { Runtime, type TaskId } from "mend";
import { Counter, app } from "./apps/flaky.js";
import { execa } from "execa";
import { pathToFileURL } from "node:url";
import { waitForOutput } from "./helpers/cli.js";
import { bundleApp, distIndex, runApp } from "./helpers/child.js";
import { start } from "./helpers/runtimes.js";
import { tempDir } from "./helpers/temp.js";

const entry = new URL("./apps/flaky.ts", import.meta.url).pathname;

test("a runtime killed with SIGKILL during a writer task completes it on reopen, incrementing once", async () => {
  const dir = tempDir();
  const bundle = await bundleApp(entry, join(dir, "app.mjs"));
  const gate = join(dir, "gate");
  writeFileSync(gate, "");
  const child = runApp(join(dir, "store"), bundle, [
    { target: { stateType: "Counter", stateId: "c", method: "increment" }, request: { gate } },
  ]);
  const { taskId } = await child.line<{ event: string; taskId: TaskId }>((l) => l.event === "spawned");
  await child.line((l) => l.event === "attempt:start");
  // The writer has incremented its copy of the state and is waiting on the gate.
  child.kill("SIGKILL");
  await child;
  rmSync(gate);

  const rt = await start(app(), { directory: join(dir, "store") });
  expect(await Counter.IncrementTask.retrieve(rt.context(), { taskId })).toEqual({ count: 1 });
  expect(await Counter.ref("c").get(rt.context())).toEqual({ count: 1 });
  expect((await rt.getTask(taskId.taskUuid)).attempts.map((a) => a.outcome)).toEqual(["INTERRUPTED", "COMPLETED"]);
});

test("a writer task that completed before SIGKILL does not run again on reopen", async () => {
  const dir = tempDir();
  const bundle = await bundleApp(entry, join(dir, "app.mjs"));
  const child = runApp(join(dir, "store"), bundle, [
    { target: { stateType: "Counter", stateId: "c", method: "increment" }, request: {} },
  ]);
  const { taskId } = await child.line<{ event: string; taskId: TaskId }>((l) => l.event === "task:finished");
  child.kill("SIGKILL");
  await child;

  const rt = await start(app(), { directory: join(dir, "store") });
  expect(await Counter.ref("c").get(rt.context())).toEqual({ count: 1 });
  expect((await rt.getTask(taskId.taskUuid)).attempts.map((a) => a.outcome)).toEqual(["COMPLETED"]);
});

test("a spawn that committed but whose process died before answering is in the store and runs once", async () => {
  const dir = tempDir();
  const bundle = await bundleApp(entry, join(dir, "app.mjs"));
  // The process is killed right after the first group commit (the spawn's), before anyone hears of it.
  const child = runApp(join(dir, "store"), bundle, [{ target: { stateType: "Counter", stateId: "c", method: "increment" }, request: {} }], {
    MEND_FAULTS: "commit.end=exit",
  });
  const { signal } = await child;
  expect(signal).toBe("SIGKILL");
  const rt = await start(app(), { directory: join(dir, "store") });
  const [task] = await rt.listTasks({ limit: 10 });
  expect(task).toMatchObject({ method: "increment" });
  expect(await Counter.IncrementTask.retrieve(rt.context(), { taskId: task!.taskId })).toEqual({ count: 1 });
  expect(await Counter.ref("c").get(rt.context())).toEqual({ count: 1 });
});

test("a second runtime on a store held by another process refuses, naming the holder, and harms nothing", async () => {
  const dir = tempDir();
  const bundle = await bundleApp(entry, join(dir, "app.mjs"));
  const child = runApp(join(dir, "store"), bundle, [
    { target: { stateType: "Counter", stateId: "c", method: "increment" }, request: {} },
  ]);
  await child.line((l) => l.event === "task:finished");
  // A started runtime keeps its process alive until stopped: the holder is still there.
  const { pid } = await child.line<{ event: string; pid: number }>((l) => l.event === "ready");
  await expect(Runtime.start(app(), { directory: join(dir, "store") })).rejects.toThrow(
    new RegExp(`mend.sqlite is in use by process ${pid} \\(.*run-app.mjs.*\\), since .*Stop it first`),
  );
  expect(child.exitCode).toBeNull();
  child.kill("SIGKILL");
  await child;
  // Once the holder is gone, the store opens with what the holder committed.
  const rt = await start(app(), { directory: join(dir, "store") });
  expect(await Counter.ref("c").get(rt.context())).toEqual({ count: 1 });
});

test("a started runtime keeps its process alive until it is stopped, then lets it exit", async () => {
  const dir = tempDir();
  // Nothing but the runtime could keep this process alive: no server, no timers, no IPC.
  const script = `
    const { Application, Runtime } = await import(${JSON.stringify(pathToFileURL(distIndex).href)});
    const rt = await Runtime.start(new Application({ servicers: [] }), { directory: process.argv[1] });
    process.on("exit", () => console.log("exit"));
    process.on("SIGUSR2", () => rt.stop().then(() => console.log("stopped")));
    console.log("ready");`;
  const child = execa(process.execPath, ["--input-type=module", "-e", script, dir], { reject: false, stdin: "ignore" });
  await waitForOutput(child, /ready/);
  child.kill("SIGUSR2");
  const { stdout, exitCode } = await child;
  expect(stdout.split("\n")).toEqual(["ready", "stopped", "exit"]);
  expect(exitCode).toBe(0);
});
