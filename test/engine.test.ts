// The engine's own bookkeeping, seen from outside: slots, the backlog of due tasks waiting
// for one, waiting for a task's end, and stopping.
import { describe, expect, test } from "vitest";
import { Application, MendError, Runtime, type TaskId } from "mend";
import { Counter, CounterServicer, Job, jobServicer } from "./apps/flaky.js";
import { app as workflows, Flow, Shop } from "./apps/workflows.js";
import { newStore, onPostgres } from "./helpers/stores.js";
import { next, start, within } from "./helpers/runtimes.js";

/** Gates the test opens by label, and how many attempts of `Job.work` run at once, at most. */
function gated() {
  const gates = new Map<string, { open: () => void; opened: Promise<void> }>();
  const gate = (label: string) => {
    if (!gates.has(label)) {
      let open!: () => void;
      const opened = new Promise<void>((resolve) => (open = resolve));
      gates.set(label, { open, opened });
    }
    return gates.get(label)!;
  };
  let running = 0;
  const seen = { most: 0, started: [] as string[] };
  const app = new Application({
    servicers: [
      jobServicer(async (_attempt, label) => {
        running++;
        seen.most = Math.max(seen.most, running);
        seen.started.push(label);
        try {
          await gate(label).opened;
        } finally {
          running--;
        }
      }),
      CounterServicer,
    ],
  });
  return { app, gate, seen };
}

describe("slots", () => {
  test("at most `concurrency` attempts run at once; the due tasks beyond wait for a slot, and all run", async () => {
    const g = gated();
    const rt = await start(g.app, { concurrency: 2 });
    const ctx = rt.context();
    const labels = ["a", "b", "c", "d", "e"];
    const tasks = [];
    for (const label of labels) tasks.push((await Job.ref(label).spawn().work(ctx, { label })).task);
    // Both slots fill; each attempt that ends frees one: one more starts, never two.
    for (let i = 0; i < labels.length; i++) {
      const running = Math.min(i + 2, labels.length);
      await within(until(() => g.seen.started.length >= running), `attempt ${running} to start`);
      g.gate(g.seen.started[i]!).open();
    }
    await within(Promise.all(tasks), "the five tasks to end");
    expect(g.seen.most).toBe(2);
    expect(g.seen.started.sort()).toEqual(labels);
  });

  test("a due task cancelled while it waits for a slot never starts; the one after it does", async () => {
    const g = gated();
    const rt = await start(g.app, { concurrency: 1 });
    const ctx = rt.context();
    const { task: first } = await Job.ref("first").spawn().work(ctx, { label: "first" });
    await within(until(() => g.seen.started.length === 1), "the first attempt to start");
    const { task: waiting } = await Job.ref("waiting").spawn().work(ctx, { label: "waiting" });
    const { task: last } = await Job.ref("last").spawn().work(ctx, { label: "last" });
    expect(await rt.cancel(waiting.taskId.taskUuid)).toBe(true);
    g.gate("first").open();
    g.gate("last").open();
    await within(Promise.all([first, last]), "the first and the last task to end");
    expect(g.seen.started).toEqual(["first", "last"]);
    expect((await rt.getTask(waiting.taskId.taskUuid)).task.status).toBe("CANCELLED");
  });

  // On a shared store the slot a child frees goes to whichever comes first, its parent's
  // resume or a claim of due tasks.
  test.skipIf(onPostgres)("a workflow waiting for its child gives its slot back, and takes one again before due tasks do", async () => {
    const g = gated();
    let running = 0;
    let most = 0;
    const order: string[] = [];
    /** Counts `what` as running while `hold` is pending. */
    const busy = async (what: string, hold: Promise<void>) => {
      running++;
      most = Math.max(most, running);
      order.push(what);
      try {
        await hold;
      } finally {
        running--;
      }
    };
    const rt = await start(
      workflows(async (point, detail) => {
        if (point === "child") await busy("child", g.gate("child").opened);
        if (point === "charge") await busy(`charge ${detail.amount}`, g.gate(`charge ${detail.amount}`).opened);
      }, {
        flow: {
          async parent(ctx) {
            const { task } = await Flow.ref("child").spawn().child(ctx, {});
            const { value } = await task;
            // Back in its slot: had it taken it while the first charge held it, two would run now.
            await busy("parent resumed", g.gate("charge 0").opened);
            return { child: value };
          },
        },
      }),
      { concurrency: 1 },
    );
    const ctx = rt.context();
    // One slot: the parent holds it, then lends it to its child while it waits.
    const { task: parent } = await Flow.ref("p").spawn().parent(ctx, {});
    await within(until(() => order.includes("child")), "the child to run while the parent waits");
    expect(rt.inMemory).toMatchObject({ running: 2, idle: 1 });
    const charges = [];
    // The second is due a millisecond after the first: they wait for the slot in that order.
    for (const amount of [0, 1]) charges.push((await Shop.ref(`s${amount}`).spawn({ when: { ms: amount } }).charge(ctx, { amount })).task);
    g.gate("child").open();
    // The slot the child frees goes to the first charge; the parent wants it back meanwhile
    // and gets it when that charge ends, before the second charge.
    await within(until(() => order.includes("charge 0")), "the first charge to run");
    g.gate("charge 0").open();
    await within(until(() => order.includes("parent resumed")), "the parent to resume");
    g.gate("charge 1").open();
    expect(await within(parent, "the parent to end")).toEqual({ child: "from child" });
    await within(Promise.all(charges), "the charges to end");
    expect(order).toEqual(["child", "charge 0", "parent resumed", "charge 1"]);
    expect(most).toBe(1);
    expect(rt.inMemory).toMatchObject({ running: 0, idle: 0 });
  });
});

describe("waiting for a task", () => {
  test("a wait given up with its signal rejects with the signal's reason and is forgotten; the task goes on", async () => {
    const g = gated();
    const rt = await start(g.app);
    const { task } = await Job.ref("j").spawn().work(rt.context(), { label: "j" });
    const controller = new AbortController();
    const waiting = rt.wait(task.taskId, controller.signal);
    const other = rt.wait(task.taskId);
    await within(until(() => rt.inMemory.awaited === 1), "the waits to be registered");
    controller.abort(new Error("given up"));
    await expect(waiting).rejects.toThrow("given up");
    g.gate("j").open();
    expect(await within(other, "the other wait")).toEqual({ status: "COMPLETED", response: { runs: 1 } });
    expect(rt.inMemory.awaited).toBe(0);
  });

  test("the only wait given up leaves nothing awaited; a signal aborted before waiting rejects at once", async () => {
    const g = gated();
    const rt = await start(g.app);
    const { task } = await Job.ref("j").spawn().work(rt.context(), { label: "j" });
    const controller = new AbortController();
    const waiting = rt.wait(task.taskId, controller.signal);
    await within(until(() => rt.inMemory.awaited === 1), "the wait to be registered");
    controller.abort(new Error("given up"));
    await expect(waiting).rejects.toThrow("given up");
    expect(rt.inMemory.awaited).toBe(0);
    await expect(rt.wait(task.taskId, controller.signal)).rejects.toThrow("given up");
    expect(rt.inMemory.awaited).toBe(0);
    g.gate("j").open();
    expect(await within(rt.wait(task.taskId), "the task's end")).toEqual({ status: "COMPLETED", response: { runs: 1 } });
  });

  test("a wait for a task that already ended gets its stored outcome, also an aborted one's message", async () => {
    const rt = await start(new Application({ servicers: [jobServicer(), CounterServicer] }));
    const ctx = rt.context();
    const { task } = await Job.ref("j").spawn().fails(ctx, {});
    await expect(within(task, "the task to abort")).rejects.toThrow();
    const outcome = await rt.wait(task.taskId);
    expect(outcome).toMatchObject({ status: "ABORTED", error: { type: "Refused", reason: "no", code: 7 } });
    expect(outcome.status === "ABORTED" && outcome.message).toBeTruthy();
    const wrong: TaskId = { ...task.taskId, stateId: "not-j" };
    await expect(rt.wait(wrong)).rejects.toMatchObject({ code: "TASK_NOT_FOUND" });
    expect(rt.inMemory.awaited).toBe(0);
  });

  test("a waiter of a task cancelled gets CANCELLED and nothing else; of a task with no response, no response", async () => {
    const g = gated();
    const rt = await start(new Application({ servicers: [...g.app.servicers, ...workflows(() => {}).servicers] }));
    const ctx = rt.context();
    const { task } = await Job.ref("j").spawn().work(ctx, { label: "j" });
    const waiting = rt.wait(task.taskId);
    expect(await rt.cancel(task.taskId.taskUuid)).toBe(true);
    expect(await within(waiting, "the cancelled task's end")).toStrictEqual({ status: "CANCELLED" });
    const { task: note } = await Shop.ref("s").spawn().note(ctx, { line: "x" });
    const outcome = await within(rt.wait(note.taskId), "the note");
    expect(outcome).toEqual({ status: "COMPLETED" });
    expect(outcome.status === "COMPLETED" && outcome.response).toBeUndefined();
    expect(await rt.wait(note.taskId)).toEqual({ status: "COMPLETED" });
  });

  test("a wait that names a running task under another state is refused when the task ends, as it would be after", async () => {
    const g = gated();
    const rt = await start(g.app);
    const { task } = await Job.ref("j").spawn().work(rt.context(), { label: "j" });
    await within(until(() => g.seen.started.length === 1), "the attempt to start");
    const wrong = rt.wait({ ...task.taskId, stateId: "not-j" });
    const right = rt.wait(task.taskId);
    await within(until(() => rt.inMemory.awaited === 1), "the waits to be registered");
    g.gate("j").open();
    await expect(wrong).rejects.toMatchObject({ code: "TASK_NOT_FOUND" });
    expect(await right).toEqual({ status: "COMPLETED", response: { runs: 1 } });
  });
});

describe("waiting for a task that is not there", () => {
  test("a wait for an unknown task, or for a finished one named under another state, is TASK_NOT_FOUND", async () => {
    const rt = await start(new Application({ servicers: [jobServicer(), CounterServicer] }));
    const unknown = { stateType: "Job", stateId: "j", taskUuid: "00000000-0000-4000-8000-000000000000" };
    await expect(within(rt.wait(unknown), "the wait for an unknown task to end")).rejects.toMatchObject({ code: "TASK_NOT_FOUND" });
    const { task } = await Counter.ref("c").spawn().increment(rt.context(), {});
    await within(task, "the task to end");
    await expect(within(rt.wait({ ...task.taskId, stateType: "Job" }), "the wait under another type")).rejects.toMatchObject({ code: "TASK_NOT_FOUND" });
    await expect(within(rt.wait({ ...task.taskId, stateId: "d" }), "the wait under another id")).rejects.toMatchObject({ code: "TASK_NOT_FOUND" });
    expect(rt.inMemory.awaited).toBe(0);
  });
});

describe("operator actions", () => {
  test("cancel and retry of an unknown task throw TASK_NOT_FOUND; of a finished one they return false", async () => {
    const rt = await start(new Application({ servicers: [jobServicer(), CounterServicer] }));
    const { task } = await Counter.ref("c").spawn().increment(rt.context(), {});
    await within(task, "the task to end");
    expect(await rt.cancel(task.taskId.taskUuid)).toBe(false);
    expect(await rt.retry(task.taskId.taskUuid)).toBe(false);
    expect((await rt.getTask(task.taskId.taskUuid)).task.status).toBe("COMPLETED");
    const unknown = "00000000-0000-4000-8000-000000000000";
    await expect(rt.cancel(unknown)).rejects.toMatchObject({ code: "TASK_NOT_FOUND" });
    await expect(rt.retry(unknown)).rejects.toMatchObject({ code: "TASK_NOT_FOUND" });
  });
});

describe("events", () => {
  test("attempt:end says how each attempt ended: completed, aborted with a declared error, failed with its retry", async () => {
    let fail = true;
    const rt = await start(
      new Application({
        servicers: [
          jobServicer(() => {
            if (fail) throw new Error("not yet");
          }),
          CounterServicer,
        ],
        retry: { initialMs: 1, maxMs: 1, jitter: false },
      }),
    );
    const ctx = rt.context();
    const ends: { method: string; attempt: number; outcome: string; version: string; retryInMs?: number; error?: Error }[] = [];
    rt.on("attempt:end", (e) => ends.push(e));
    const { task: failing } = await Job.ref("w").spawn().work(ctx, { label: "w" });
    await next(rt, "attempt:end", (e: { outcome: string }) => e.outcome === "FAILED");
    fail = false;
    await within(failing, "the failing task to complete");
    const { task: aborting } = await Job.ref("f").spawn().fails(ctx, {});
    await expect(within(aborting, "the task to abort")).rejects.toThrow();
    expect(ends.find((e) => e.outcome === "FAILED")).toMatchObject({ method: "work", attempt: 1, version: rt.version, retryInMs: 1, error: { message: "not yet" } });
    expect(ends.filter((e) => e.method === "work").at(-1)).toMatchObject({ outcome: "COMPLETED", version: rt.version });
    expect(ends.filter((e) => e.method === "fails")).toEqual([expect.objectContaining({ outcome: "ABORTED", attempt: 1 })]);
  });

  test("a retry of a running task is refused; a retry of a waiting one is announced", async () => {
    const g = gated();
    const rt = await start(g.app);
    const ctx = rt.context();
    const { task: running } = await Job.ref("r").spawn().work(ctx, { label: "r" });
    await within(until(() => g.seen.started.length === 1), "the attempt to start");
    expect(await rt.retry(running.taskId.taskUuid)).toBe(false);
    const { task: later } = await Counter.ref("c").spawn({ when: { days: 1 } }).increment(ctx, {});
    const retried = next<{ taskId: TaskId }>(rt, "task:retried");
    expect(await rt.retry(later.taskId.taskUuid)).toBe(true);
    expect((await retried).taskId).toEqual(later.taskId);
    expect(await within(later, "the retried task")).toEqual({ count: 1 });
    g.gate("r").open();
    await within(running, "the running task");
  });
});

describe("stopping", () => {
  // On a shared store, tasks left running are released for other servers: tested in pg-servers.
  test.skipIf(onPostgres)("stop waits for a running attempt within its grace, and a waiter hears that the runtime stopped", async () => {
    const g = gated();
    const store = await newStore();
    const rt = await Runtime.start(g.app, { ...store, concurrency: 2 });
    const ctx = rt.context();
    const { task: ending } = await Job.ref("ends").spawn().work(ctx, { label: "ends" });
    const { task: second } = await Job.ref("second").spawn().work(ctx, { label: "second" });
    const { task: later } = await Counter.ref("c").spawn({ when: { days: 1 } }).increment(ctx, {});
    await within(until(() => g.seen.started.length === 2), "both attempts to start");
    // Due now, but both slots are taken: it waits for one, and is not started once stop begins.
    const { task: due } = await Job.ref("due").spawn().work(ctx, { label: "due" });
    g.gate("due").open();
    const waitingForLater = rt.wait(later.taskId);
    const stopped = rt.stop({ graceMs: 60_000 });
    // One attempt ending does not end the grace: the other still runs.
    const ended = next(rt, "task:finished");
    g.gate("ends").open();
    await ended;
    g.gate("second").open();
    await within(stopped, "stop, once both attempts have ended");
    expect(g.seen.started.sort()).toEqual(["ends", "second"]);
    await expect(waitingForLater).rejects.toMatchObject({ code: "STOPPED", message: "The runtime stopped before the task finished." });
    const reopened = await Runtime.start(new Application({ servicers: [jobServicer(), CounterServicer] }), { ...store, window: { ms: 1000, tasks: 10 } });
    try {
      expect((await reopened.getTask(ending.taskId.taskUuid)).task.status).toBe("COMPLETED");
      expect((await reopened.getTask(second.taskId.taskUuid)).task.status).toBe("COMPLETED");
      expect((await reopened.getTask(later.taskId.taskUuid)).task.status).toBe("SCHEDULED");
      expect((await reopened.getTask(due.taskId.taskUuid)).task).toMatchObject({ status: "SCHEDULED", attempts: 0 });
    } finally {
      await reopened.stop({ graceMs: 0 });
    }
  });

  test.skipIf(onPostgres)("an attempt still running when the grace ends is stopped: its signal says why, and its change is not kept", async () => {
    const reasons: unknown[] = [];
    const store = await newStore();
    const rt = await Runtime.start(
      new Application({
        servicers: [
          Job.servicer({
            async work(ctx, state) {
              state.runs += 1;
              await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => (reasons.push(ctx.signal.reason), resolve())));
              return { runs: state.runs };
            },
            async wait() {},
            async fails() {},
            async get(ctx, state) {
              return { runs: state.runs, log: state.log };
            },
          }),
          CounterServicer,
        ],
      }),
      store,
    );
    const started = next(rt, "attempt:start");
    await Job.ref("j").spawn().work(rt.context(), {});
    await started;
    await within(rt.stop({ graceMs: 0 }), "stop");
    expect(reasons).toEqual([expect.any(MendError)]);
    expect(reasons[0]).toMatchObject({ code: "STOPPED" });
    const reopened = await Runtime.start(new Application({ servicers: [jobServicer(), CounterServicer] }), store);
    try {
      expect(await Job.ref("j").get(reopened.context())).toMatchObject({ runs: 0 });
    } finally {
      await reopened.stop({ graceMs: 0 });
    }
  });
});

/** Resolves once `condition` holds, checked after each turn of the event loop. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}
