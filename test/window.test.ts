// The engine keeps in memory only the tasks due soon (its window) and the running ones;
// every other waiting task stays in the store and is read when its time comes.
import { afterEach, describe, expect, test, vi } from "vitest";
import { Application, Runtime } from "mend";
import { Counter, CounterServicer, Job, jobServicer } from "./apps/flaky.js";
import { newStore, onPostgres } from "./helpers/stores.js";
import { next, start, within } from "./helpers/runtimes.js";

afterEach(() => {
  vi.useRealTimers();
});

/** Fakes the clock the engine reads; commits (setImmediate) stay real. */
function fakeClock() {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"], now: new Date("2026-01-01T00:00:00Z") });
}

const small = { ms: 1000, tasks: 5 };

/** Turns of the real event loop (I/O, group commits) until `condition` holds; fails after 10 s of real time. */
async function ioUntil(condition: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`waited 10 s for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe("a small window", () => {
  test("tasks due before, inside and far after it, and added while it is refilled, all run once and never early", async () => {
    fakeClock();
    const rt = await start(new Application({ servicers: [jobServicer(), CounterServicer] }), { window: small });
    const ctx = rt.context();
    const starts = new Map<string, number>();
    const ends: string[] = [];
    rt.on("attempt:start", (e) => starts.set(e.taskId.stateId, (starts.get(e.taskId.stateId) ?? 0) + 1));
    rt.on("task:finished", (e) => ends.push(e.taskId.stateId));
    const due = new Map<string, number>();
    const t0 = Date.now();
    const spawnAt = async (id: string, ms: number) => {
      await Counter.ref(id).spawn({ when: { ms } }).increment(ctx);
      due.set(id, Date.now() + ms);
    };
    // More than fit, some now, some inside the window, many far past it.
    for (let i = 0; i < 8; i++) await spawnAt(`now${i}`, 0);
    for (let i = 0; i < 6; i++) await spawnAt(`soon${i}`, 200 + i * 100);
    for (let i = 0; i < 12; i++) await spawnAt(`later${i}`, 5_000 + i * 700);
    expect(rt.inMemory.waiting).toBeLessThanOrEqual(small.tasks);
    let added = 0;
    const started: [string, number][] = [];
    rt.on("attempt:start", (e) => started.push([e.taskId.stateId, Date.now()]));
    for (let step = 0; step < 300 && ends.length < due.size; step++) {
      // Tasks keep arriving while the window moves.
      if (step % 20 === 0 && added < 5) await spawnAt(`mid${added++}`, 1_500);
      await vi.advanceTimersByTimeAsync(100);
      // Every task due by now ends before the clock moves on (the store's I/O is real).
      const now = Date.now();
      await ioUntil(() => [...due].every(([id, at]) => at > now || ends.includes(id)), "the tasks due by now to end");
      expect(rt.inMemory.waiting).toBeLessThanOrEqual(small.tasks);
    }
    expect(ends.sort()).toEqual([...due.keys()].sort());
    for (const [id, n] of starts) expect(n, id).toBe(1);
    for (const [id, at] of started) expect(at, `${id} started early`).toBeGreaterThanOrEqual(due.get(id)!);
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  test("a task cancelled, or retried, while only the store has it behaves as one in memory", async () => {
    const rt = await start(new Application({ servicers: [jobServicer(), CounterServicer] }), { window: small });
    const ctx = rt.context();
    const { task: far } = await Counter.ref("far").spawn({ when: { days: 30 } }).increment(ctx);
    const { task: other } = await Counter.ref("other").spawn({ when: { days: 30 } }).increment(ctx);
    expect(rt.inMemory.waiting).toBe(0);
    expect(await rt.cancel(far.taskId.taskUuid)).toBe(true);
    expect((await rt.getTask(far.taskId.taskUuid)).task.status).toBe("CANCELLED");
    expect(await rt.retry(other.taskId.taskUuid)).toBe(true);
    expect(await within(other, "the retried task to run")).toEqual({ count: 1 });
  });

  // A store several servers share keeps no window (tasks stay in the store until claimed).
  test.skipIf(onPostgres)("a full window makes room for a task due sooner than the ones it holds", async () => {
    // Only the size limits this window: every task here is due within its time.
    const rt = await start(new Application({ servicers: [jobServicer(), CounterServicer] }), { window: { ms: 3_600_000, tasks: 5 } });
    const ctx = rt.context();
    for (let i = 0; i < 5; i++) await Counter.ref(`held${i}`).spawn({ when: { secs: 30 } }).increment(ctx);
    const { task: extra } = await Counter.ref("extra").spawn({ when: { secs: 30 } }).increment(ctx);
    expect(rt.inMemory.waiting).toBe(5);
    // Retried (due now) while the window is full of tasks due later: it runs at once.
    expect(await rt.retry(extra.taskId.taskUuid)).toBe(true);
    const ran = next<{ taskId: { stateId: string } }>(rt, "attempt:start");
    expect((await ran).taskId.stateId).toBe("extra");
    expect(rt.inMemory.waiting).toBeLessThanOrEqual(5);
  });
});

describe("reopening a store with many waiting tasks", () => {
  test("reads only the window: the first due tasks run, the rest stay in the store", async () => {
    const store = await newStore();
    const first = await Runtime.start(new Application({ servicers: [jobServicer(), CounterServicer] }), store);
    const ctx = first.context();
    for (let i = 0; i < 20; i++) await Counter.ref(`batch${i}`).spawn({ when: { days: 30 } }).increment(ctx);
    const { task: soon } = await Counter.ref("soon").spawn({ when: { ms: 50 } }).increment(ctx);
    await first.stop();
    const rt = await start(new Application({ servicers: [jobServicer(), CounterServicer] }), { ...store, window: small });
    // Only what is due within the window was read (it may have started by now).
    expect(rt.inMemory.waiting + rt.inMemory.running).toBeLessThanOrEqual(1);
    expect(await within(Counter.IncrementTask.retrieve(rt.context(), { taskId: soon.taskId }), "the task due soon")).toEqual({ count: 1 });
    expect(await rt.listTasks({ status: "SCHEDULED", limit: 100 })).toHaveLength(20);
  });
});

describe("a hotfix", () => {
  test("retries every failing task at once, also the ones only the store has", async () => {
    const failing = new Application({
      servicers: [jobServicer(() => { throw new Error("bug"); }), CounterServicer],
      retry: { initialMs: 3_600_000, maxMs: 3_600_000, jitter: false },
    });
    const rt = await start(failing, { window: { ms: 1000, tasks: 3 } });
    const ctx = rt.context();
    let failed = 0;
    const allFailed = next(rt, "attempt:end", () => ++failed === 10);
    const tasks = [];
    for (let i = 0; i < 10; i++) tasks.push((await Job.ref(`j${i}`).spawn().work(ctx, {})).task);
    await allFailed;
    // Their retries are an hour away: far past the window, so only the store has them.
    expect(rt.inMemory.waiting).toBe(0);
    const { retrying } = await rt.load(new Application({ servicers: [jobServicer(), CounterServicer] }));
    expect(retrying).toHaveLength(10);
    expect(await within(Promise.all(tasks), "the 10 retried tasks")).toEqual(Array(10).fill({ runs: 1 }));
  });
});
