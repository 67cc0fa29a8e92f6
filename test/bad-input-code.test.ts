// Hostile user code: methods that throw values that are not Errors, return or leave
// values that JSON cannot store, or never settle. Each is a clear error on its own task
// (or call), and nothing else is affected: not the instance's state, not other tasks.
import { describe, expect, test } from "vitest";
import { Cancelled, type TaskId } from "mend";
import { Hostile, app, linger } from "./apps/hostile.js";
import { next, start } from "./helpers/runtimes.js";

type End = { taskId: TaskId; outcome: string; error?: Error };

/** Spawns `spawn`, waits for its first attempt to fail, and checks that the instance still works. */
async function failsAlone(spawn: (rt: Awaited<ReturnType<typeof start>>) => Promise<{ task: { taskId: TaskId } }>) {
  const rt = await start(app);
  const ctx = rt.context();
  const { task } = await spawn(rt);
  const failed = await next<End>(rt, "attempt:end", (e) => e.taskId.taskUuid === task.taskId.taskUuid);
  const { task: info, attempts } = await rt.getTask(task.taskId.taskUuid);
  // Nothing else is affected: the failed attempt changed nothing, and the instance takes the next writer.
  const { task: bump } = await Hostile.ref("h").spawn().bump(ctx);
  expect(await bump).toEqual({ n: 1 });
  expect(await Hostile.ref("h").get(ctx)).toEqual({ n: 1 });
  return { rt, ctx, failed, info, attempts };
}

describe("a method that throws a value that is not an Error", () => {
  test.each([
    ["undefined", "A non-Error value was thrown: undefined"],
    ["null", "A non-Error value was thrown: null"],
    ["number", "A non-Error value was thrown: 42"],
    ["object", 'A non-Error value was thrown: {"code":"E_NOPE","detail":[1,2]}'],
    ["cycle", "A non-Error value was thrown: <ref *1> { name: 'loop', self: [Circular *1] }"],
  ] as const)("%s: the task fails with a clear error and is retried; the state is untouched", async (what, message) => {
    const { ctx, failed, info, attempts } = await failsAlone((rt) => Hostile.ref("h").spawn().throws(rt.context(), { what }));
    expect(failed).toMatchObject({ outcome: "FAILED" });
    expect([failed.error!.name, failed.error!.message]).toEqual(["NonErrorThrown", message]);
    expect(info).toMatchObject({ status: "SCHEDULED_RETRY", lastError: `NonErrorThrown: ${message}` });
    expect(attempts.map((a) => [a.outcome, a.error?.name, a.error?.message])).toEqual([["FAILED", "NonErrorThrown", message]]);
    // Called directly, the caller gets the same error.
    await expect(Hostile.ref("h").throws(ctx, { what })).rejects.toThrow(message);
    expect(await Hostile.ref("h").get(ctx)).toEqual({ n: 1 });
  });
});

describe("a method that returns, or leaves, a value that cannot be stored", () => {
  const where = { function: "callback is a function", cycle: "self refers back to itself (a cycle)", bigint: "big is a BigInt", symbol: "tag is a symbol" };
  test.each(["function", "cycle", "bigint", "symbol"] as const)("%s in the response: the task fails saying where it is", async (what) => {
    const message = `The response of Hostile.returns cannot be stored: the value.value.${where[what]}.`;
    const { ctx, failed, info } = await failsAlone((rt) => Hostile.ref("h").spawn().returns(rt.context(), { what }));
    expect(failed.error!.message).toBe(message);
    expect(info).toMatchObject({ status: "SCHEDULED_RETRY", lastError: `MendError: ${message}` });
    await expect(Hostile.ref("h").returns(ctx, { what })).rejects.toThrow(message);
    expect(await Hostile.ref("h").get(ctx)).toEqual({ n: 1 });
  });

  test.each(["function", "cycle", "bigint", "symbol"] as const)("%s in the state: the task fails saying where it is", async (what) => {
    const message = `The state of Hostile('h') cannot be stored: the value.extra.${where[what]}.`;
    const { ctx, failed, info } = await failsAlone((rt) => Hostile.ref("h").spawn().leaves(rt.context(), { what }));
    expect(failed.error!.message).toBe(message);
    expect(info).toMatchObject({ status: "SCHEDULED_RETRY", lastError: `MendError: ${message}` });
    await expect(Hostile.ref("h").leaves(ctx, { what })).rejects.toThrow(message);
    expect(await Hostile.ref("h").get(ctx)).toEqual({ n: 1 });
  });
});

describe("a task that never settles", () => {
  test("blocks no other task or instance, and cancelling it frees its instance", async () => {
    const rt = await start(app);
    const ctx = rt.context();
    const hanging = next<{ taskId: TaskId }>(rt, "attempt:start");
    const { task: writer } = await Hostile.ref("stuck").spawn().hangs(ctx);
    await hanging;
    const stalling = next<{ taskId: TaskId }>(rt, "attempt:start");
    const { task: workflow } = await Hostile.ref("flow").spawn().stalls(ctx);
    await stalling;

    // Other instances, and calls that do not write the stuck instance, go on.
    const { task: other } = await Hostile.ref("other").spawn().bump(ctx);
    expect(await other).toEqual({ n: 1 });
    expect(await Hostile.ref("stuck").get(ctx)).toEqual({ n: 0 });
    expect((await rt.getTask(writer.taskId.taskUuid)).task.status).toBe("STARTED");

    expect(await rt.cancel(writer.taskId.taskUuid)).toBe(true);
    await expect(writer).rejects.toBeInstanceOf(Cancelled);
    expect(await rt.cancel(workflow.taskId.taskUuid)).toBe(true);
    await expect(workflow).rejects.toBeInstanceOf(Cancelled);
    for (const t of [writer, workflow])
      expect(await rt.getTask(t.taskId.taskUuid)).toMatchObject({ task: { status: "CANCELLED" }, attempts: [{ outcome: "CANCELLED" }] });

    // The stuck instance takes writers again; the cancelled writer's change was discarded.
    expect(await Hostile.ref("stuck").bump(ctx)).toEqual({ n: 1 });
  });

  test("a cancelled transaction that goes on running takes no lock with it", async () => {
    const rt = await start(app);
    const ctx = rt.context();
    let open!: () => void;
    linger.gate = new Promise((resolve) => (open = resolve));
    const ended = new Promise<void>((resolve) => (linger.ended = resolve));
    const started = next(rt, "attempt:start");
    const { task } = await Hostile.ref("tx").spawn().lingers(ctx, { other: "victim" });
    await started;
    expect(await rt.cancel(task.taskId.taskUuid)).toBe(true);
    // The cancelled attempt's code carries on and calls a writer of another instance.
    open();
    await ended;
    expect(await Hostile.ref("victim").bump(ctx)).toEqual({ n: 1 });
    expect(await Hostile.ref("tx").bump(ctx)).toEqual({ n: 1 });
  }, 10_000);

  test("holds its slot until cancelled, and then the next task runs", async () => {
    const rt = await start(app, { concurrency: 2 });
    const ctx = rt.context();
    const started: string[] = [];
    rt.on("attempt:start", (e) => started.push(e.method));
    const both = next(rt, "attempt:start", () => started.length === 2);
    const { task: a } = await Hostile.ref("a").spawn().stalls(ctx);
    const { task: b } = await Hostile.ref("b").spawn().hangs(ctx);
    await both;
    const { task: waiting } = await Hostile.ref("c").spawn().bump(ctx);
    expect((await rt.getTask(waiting.taskId.taskUuid)).task.status).toBe("SCHEDULED");
    expect(await rt.cancel(a.taskId.taskUuid)).toBe(true);
    expect(await waiting).toEqual({ n: 1 });
    expect(await rt.cancel(b.taskId.taskUuid)).toBe(true);
    expect(started).toEqual(["stalls", "hangs", "bump"]);
  });
});
