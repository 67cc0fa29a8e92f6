import { afterEach, describe, expect, test, vi } from "vitest";
import { Application, Cancelled, Runtime } from "mend";
import { Account } from "../fixtures/bank/src/api.js";
import bank from "../fixtures/bank/src/main.js";
import { CounterServicer, Job, app, jobServicer } from "./apps/flaky.js";
import { next, start, within } from "./helpers/runtimes.js";
import { tempDir } from "./helpers/temp.js";

afterEach(() => {
  vi.useRealTimers();
});

/** Fakes the clock the scheduler reads; commits (setImmediate) stay real. */
function fakeClock() {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"], now: new Date("2026-01-01T00:00:00Z") });
}

/** Lets real I/O callbacks (group commits) run while the fake clock stands still. */
function ioTurn() {
  return new Promise((resolve) => setImmediate(resolve));
}

describe("due times", () => {
  test("a task with `when` in the future does not start before it, and starts then", async () => {
    fakeClock();
    const rt = await start(bank);
    const started: number[] = [];
    rt.on("attempt:start", () => started.push(Date.now()));
    const spawnedAt = Date.now();
    const { task } = await Account.ref("alice").spawn({ when: { secs: 5 } }).welcomeEmail(rt.context());
    await vi.advanceTimersByTimeAsync(4999);
    await ioTurn();
    expect(started).toEqual([]);
    expect(rt.getTask(task.taskId.taskUuid).task.status).toBe("SCHEDULED");
    await vi.advanceTimersByTimeAsync(1);
    expect(await task).toEqual({ sent: true });
    expect(started).toEqual([spawnedAt + 5000]);
  });

  test("a task with a Date in the past runs at once", async () => {
    const rt = await start(bank);
    const { task } = await Account.ref("alice").spawn({ when: new Date(0) }).welcomeEmail(rt.context());
    expect(await task).toEqual({ sent: true });
  });
});

describe("retries", () => {
  test("an unexpected error is retried with backoff until the method succeeds, and each attempt is recorded", async () => {
    fakeClock();
    const rt = await start(
      app((attempt) => {
        if (attempt < 4) throw new TypeError(`not yet (${attempt})`);
      }),
    );
    const retries: number[] = [];
    rt.on("attempt:end", (e) => e.retryInMs !== undefined && retries.push(e.retryInMs));
    const { task } = await Job.ref("j").spawn().work(rt.context(), { label: "x" });
    let done = false;
    void task.then(() => (done = true));
    for (let i = 0; i < 200 && !done; i++) {
      await ioTurn();
      await vi.advanceTimersByTimeAsync(500);
    }
    expect(await task).toEqual({ runs: 1 });
    // Full jitter under a cap of 1 s, 2 s, 4 s.
    expect(retries).toHaveLength(3);
    retries.forEach((ms, i) => expect(ms).toBeLessThanOrEqual(1000 * 2 ** i));
    const { task: info, attempts } = rt.getTask(task.taskId.taskUuid);
    expect(info).toMatchObject({ status: "COMPLETED", attempts: 4 });
    expect(attempts.map((a) => a.outcome)).toEqual(["FAILED", "FAILED", "FAILED", "COMPLETED"]);
    expect(attempts[0]).toMatchObject({ number: 1, version: "v1", error: { name: "TypeError", message: "not yet (1)" } });
    expect(attempts[0]!.error!.stack).toContain("flaky.ts");
    for (const a of attempts) expect(a.endedAt).toBeGreaterThanOrEqual(a.startedAt);
    // The writer's change committed once, with the completion: earlier attempts left nothing.
    expect(await Job.ref("j").get(rt.context())).toEqual({ runs: 1, log: ["x"] });
  });

  test("a method's own retry policy overrides the default", async () => {
    const rt = await start(
      new Application({ servicers: [jobServicer((attempt) => { if (attempt < 2) throw new Error("once"); }), CounterServicer], retry: { initialMs: 0 } }),
    );
    const { task } = await Job.ref("j").spawn().work(rt.context(), {});
    expect(await task).toEqual({ runs: 1 });
  });

  test("a non-Error thrown value is stored with a clear message", async () => {
    const rt = await start(app(() => { throw "a string"; }));
    const failed = next<{ error: Error }>(rt, "attempt:end");
    const { task } = await Job.ref("j").spawn().work(rt.context(), {});
    expect((await failed).error.message).toBe('A non-Error value was thrown: "a string"');
    expect(rt.getTask(task.taskId.taskUuid).task).toMatchObject({ status: "SCHEDULED_RETRY", lastError: 'NonErrorThrown: A non-Error value was thrown: "a string"' });
  });
});

describe("declared errors", () => {
  test("end the task ABORTED and revive as the same class after the store is reopened", async () => {
    const directory = tempDir();
    const first = await Runtime.start(app(), { directory });
    const { task } = await Job.ref("j").spawn().fails(first.context());
    await expect(task).rejects.toBeInstanceOf(Job.FailsAborted);
    await first.stop();

    const second = await start(app(), { directory });
    expect(second.getTask(task.taskId.taskUuid).task).toMatchObject({ status: "ABORTED", attempts: 1 });
    const error = await Job.FailsTask.retrieve(second.context(), { taskId: task.taskId }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Job.FailsAborted);
    expect(error).toBeInstanceOf(Error);
    expect((error as InstanceType<typeof Job.FailsAborted>).error).toEqual({ type: "Refused", reason: "no", code: 7 });
    // The task id also works as a string.
    const again = Job.FailsTask.retrieve(second.context(), { taskId: `Job/j/${task.taskId.taskUuid}` });
    await expect(again).rejects.toBeInstanceOf(Job.FailsAborted);
  });
});

describe("cancel", () => {
  test("a scheduled task is cancelled and never runs", async () => {
    const rt = await start(bank);
    const { task } = await Account.ref("alice").spawn({ when: { hours: 1 } }).welcomeEmail(rt.context());
    expect(await rt.cancel(task.taskId.taskUuid)).toBe(true);
    await expect(task).rejects.toBeInstanceOf(Cancelled);
    expect(rt.getTask(task.taskId.taskUuid)).toMatchObject({ task: { status: "CANCELLED" }, attempts: [] });
    expect(await rt.cancel(task.taskId.taskUuid)).toBe(false);
  });

  test("a running attempt sees ctx.signal abort with Cancelled, and its outcome is discarded", async () => {
    let sawAbort!: (reason: unknown) => void;
    const aborted = new Promise<unknown>((resolve) => (sawAbort = resolve));
    const rt = await start(
      new Application({
        servicers: [
          Job.servicer({
            ...(jobServicer().impl as unknown as Parameters<typeof Job.servicer>[0]),
            async wait(ctx) {
              ctx.signal.addEventListener("abort", () => sawAbort(ctx.signal.reason));
              await new Promise(() => {});
            },
          }),
          CounterServicer,
        ],
      }),
    );
    const started = next(rt, "attempt:start");
    const { task } = await Job.ref("j").spawn().wait(rt.context());
    await started;
    expect(await rt.cancel(task.taskId.taskUuid)).toBe(true);
    await expect(task).rejects.toBeInstanceOf(Cancelled);
    expect(await within(aborted, "the attempt's ctx.signal to abort")).toBeInstanceOf(Cancelled);
    const { task: info, attempts } = rt.getTask(task.taskId.taskUuid);
    expect(info.status).toBe("CANCELLED");
    expect(attempts.map((a) => a.outcome)).toEqual(["CANCELLED"]);
  });

  test("a cancelled writer's change is not committed, even once its body goes on to return", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let bodyDone!: () => void;
    const returned = new Promise<void>((resolve) => (bodyDone = resolve));
    const rt = await start(
      app(async (_attempt, label) => {
        if (label !== "cancelled") return;
        await gate;
        bodyDone();
      }),
    );
    const started = next(rt, "attempt:start");
    const { task } = await Job.ref("j").spawn().work(rt.context(), { label: "cancelled" });
    await started;
    await rt.cancel(task.taskId.taskUuid);
    release();
    await expect(task).rejects.toBeInstanceOf(Cancelled);
    await within(returned, "the cancelled writer's body to return");
    // A writer after it queues behind anything the cancelled one could still commit.
    expect(await Job.ref("j").work(rt.context(), { label: "after" })).toEqual({ runs: 1 });
    expect(await Job.ref("j").get(rt.context())).toEqual({ runs: 1, log: ["after"] });
    expect(rt.getTask(task.taskId.taskUuid).task.status).toBe("CANCELLED");
  });
});

describe("loading code", () => {
  test("a new version retries a failing task at once and it succeeds on the new code", async () => {
    const rt = await start(
      new Application({
        servicers: [jobServicer(() => { throw new Error("bug"); }), CounterServicer],
        retry: { initialMs: 3_600_000, maxMs: 3_600_000 },
      }),
    );
    const failed = next<{ retryInMs: number }>(rt, "attempt:end");
    const { task } = await Job.ref("j").spawn().work(rt.context(), { label: "l" });
    await failed;
    expect(rt.getTask(task.taskId.taskUuid).task.status).toBe("SCHEDULED_RETRY");
    const { version, retrying } = rt.load(app(() => {}));
    expect(version).toBe("v2");
    expect(retrying).toEqual([task.taskId]);
    expect(await task).toEqual({ runs: 1 });
    expect(rt.getTask(task.taskId.taskUuid).attempts.map((a) => [a.version, a.outcome])).toEqual([
      ["v1", "FAILED"],
      ["v2", "COMPLETED"],
    ]);
  });

  test("an attempt running during a load finishes on its version; the next runs the new one", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    // A backoff of an hour: only an immediate retry on the new version lets the task finish.
    const rt = await start(
      new Application({
        servicers: [jobServicer(async () => { await gate; throw new Error("old code"); }), CounterServicer],
        retry: { initialMs: 3_600_000, maxMs: 3_600_000, jitter: false },
      }),
    );
    const started = next(rt, "attempt:start");
    const { task } = await Job.ref("j").spawn().work(rt.context(), {});
    await started;
    rt.load(app(() => {}));
    release();
    expect(await task).toEqual({ runs: 1 });
    expect(rt.getTask(task.taskId.taskUuid).attempts.map((a) => [a.version, a.outcome])).toEqual([
      ["v1", "FAILED"],
      ["v2", "COMPLETED"],
    ]);
  });

  test("a load resets the backoff: the retry's failure waits the first delay again, not the next one", async () => {
    const failing = (label: string) =>
      new Application({
        servicers: [jobServicer(() => { throw new Error(label); }), CounterServicer],
        retry: { initialMs: 1, multiplier: 1000, maxMs: 1e9, jitter: false },
      });
    const rt = await start(failing("v1 bug"));
    const second = next<{ attempt: number; retryInMs: number }>(rt, "attempt:end", (e) => e.attempt === 2);
    await Job.ref("j").spawn().work(rt.context(), {});
    expect((await within(second, "attempt 2 to fail")).retryInMs).toBe(1000);
    const third = next<{ attempt: number; version: string; retryInMs: number }>(rt, "attempt:end", (e) => e.attempt === 3);
    rt.load(failing("v2 bug"));
    const ended = await within(third, "attempt 3, retried at once by the load, to fail");
    expect(ended).toMatchObject({ version: "v2", retryInMs: 1 });
  });

  test("a task whose method is missing waits with a clear error and runs once the method is back", async () => {
    const directory = tempDir();
    const first = await Runtime.start(app(), { directory });
    const { task } = await Job.ref("j").spawn({ when: { ms: 50 } }).work(first.context(), {});
    await first.stop();

    const withoutJob = new Application({ servicers: [CounterServicer] });
    const rt = await start(withoutJob, { directory });
    const waiting = await next<{ reason: string }>(rt, "task:waiting");
    // Versions are numbered per store: the reopened store's first version follows the first run's.
    expect(rt.version).toBe("v2");
    expect(waiting.reason).toBe("The state type Job does not exist in code version v2; the task waits for a version that has it.");
    expect(rt.getTask(task.taskId.taskUuid).task).toMatchObject({ status: "SCHEDULED_RETRY", dueAt: null, lastError: waiting.reason });
    const { retrying } = rt.load(app());
    expect(retrying).toEqual([task.taskId]);
    expect(await Job.WorkTask.retrieve(rt.context(), { taskId: task.taskId })).toEqual({ runs: 1 });
  });
});
