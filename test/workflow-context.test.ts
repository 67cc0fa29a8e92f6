// until()'s waits, in-process on a real store with a fake clock: the backoff when fn reads no
// state, waking on a write when it does, and a cancelled task that stops evaluating.
import { afterEach, describe, expect, test, vi } from "vitest";
import { until } from "mend";
import { Cell, Job, stepsApp, type Body } from "./apps/workflow-steps.js";
import { start, within } from "./helpers/runtimes.js";

// until() waits with node:timers/promises, which vitest's fake clock does not drive: here it
// waits on the global setTimeout (looked up at each call), which the fake clock replaces.
vi.mock("node:timers/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:timers/promises")>();
  return {
    ...real,
    setTimeout: <T>(ms: number, value?: T, options: { signal?: AbortSignal } = {}) =>
      new Promise<T>((resolve, reject) => {
        const { signal } = options;
        const aborted = () => Object.assign(new Error("The operation was aborted"), { name: "AbortError", code: "ABORT_ERR", cause: signal?.reason });
        if (signal?.aborted) return reject(aborted());
        const onAbort = () => {
          globalThis.clearTimeout(timer);
          reject(aborted());
        };
        const timer = globalThis.setTimeout(() => {
          signal?.removeEventListener("abort", onAbort);
          resolve(value as T);
        }, ms);
        signal?.addEventListener("abort", onAbort, { once: true });
      }),
  };
});

afterEach(() => {
  vi.useRealTimers();
});

function fakeClock() {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"], now: new Date("2026-01-01T00:00:00Z") });
}

/** Lets what the fake clock's last timers started run on (promise chains, the store's writes). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Counts the evaluations of an until's fn; `reached(n)` resolves once the n-th has begun. */
function evaluations() {
  const at: number[] = [];
  const waiting = new Map<number, () => void>();
  return {
    at,
    begin() {
      at.push(Date.now());
      waiting.get(at.length)?.();
    },
    reached(n: number): Promise<void> {
      if (at.length >= n) return Promise.resolve();
      return within(new Promise<void>((resolve) => waiting.set(n, resolve)), `evaluation ${n} of until's fn`);
    },
    gaps: () => at.slice(1).map((t, i) => t - at[i]!),
  };
}

async function spawnRun(body: Body) {
  const rt = await start(stepsApp(body, { retry: { initialMs: 3_600_000, maxMs: 3_600_000, jitter: false } }));
  const { task } = await Job.ref("j").spawn().run(rt.context());
  return { rt, task, uuid: task.taskId.taskUuid };
}

describe("until's waits when fn reads no state", () => {
  test("start at 10 ms and double up to maxInterval", async () => {
    fakeClock();
    const e = evaluations();
    const { task } = await spawnRun((ctx) =>
      until("backoff", ctx, () => {
        e.begin();
        return e.at.length >= 6 && "sixth";
      }, { maxInterval: { ms: 50 } }),
    );
    await e.reached(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await within(task, "the until to end")).toEqual({ value: "sixth" });
    expect(e.gaps()).toEqual([10, 20, 40, 50, 50]);
  });

  test("with no maxInterval, double up to a second", async () => {
    fakeClock();
    const e = evaluations();
    const { task } = await spawnRun((ctx) =>
      until("backoff", ctx, () => {
        e.begin();
        return e.at.length >= 10 && "tenth";
      }),
    );
    await e.reached(1);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(await within(task, "the until to end")).toEqual({ value: "tenth" });
    expect(e.gaps()).toEqual([10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
  });

  test("many waits in one attempt leave no listener behind on the task's signal", async () => {
    fakeClock();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const e = evaluations();
      const { task } = await spawnRun((ctx) =>
        until("many", ctx, () => {
          e.begin();
          return e.at.length >= 30 && "done";
        }, { maxInterval: { ms: 10 } }),
      );
      await e.reached(1);
      await vi.advanceTimersByTimeAsync(1_000);
      expect(await within(task, "the until to end")).toEqual({ value: "done" });
      await settle();
      expect(warnings.map((w) => `${w.name}: ${w.message}`)).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });
});

describe("until's waits when fn reads states", () => {
  test("fn is evaluated again when a state it read is written, and not on a timer before maxInterval", async () => {
    fakeClock();
    const e = evaluations();
    const { rt, task } = await spawnRun((ctx) =>
      until("written", ctx, async () => {
        e.begin();
        const a = await Cell.ref("a").read(ctx);
        const { n } = await Cell.ref("b").get(ctx);
        return n > 0 && `a=${a.n} b=${n}`;
      }, { maxInterval: { mins: 1 } }),
    );
    await e.reached(1);
    await vi.advanceTimersByTimeAsync(59_000);
    await settle();
    expect(e.at).toHaveLength(1);

    await Cell.ref("a").add(rt.context(), { by: 2 });
    await e.reached(2);
    await Cell.ref("b").add(rt.context(), { by: 3 });
    expect(await within(task, "the until to see the write to b")).toEqual({ value: "a=2 b=3" });
    expect(e.at).toHaveLength(3);
    // The wait that the write cut short leaves no timer: a stopped runtime keeps no process alive.
    await rt.stop({ graceMs: 0 });
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("a cancelled task in until", () => {
  test("cancelled while waiting, fn is not evaluated again", async () => {
    fakeClock();
    const e = evaluations();
    const { rt, task, uuid } = await spawnRun((ctx) =>
      until("never", ctx, () => {
        e.begin();
        return false;
      }, { maxInterval: { mins: 1 } }),
    );
    await e.reached(1);
    expect(await rt.cancel(uuid)).toBe(true);
    await expect(within(task, "the task to end cancelled")).rejects.toMatchObject({ name: "Cancelled" });
    await vi.advanceTimersByTimeAsync(600_000);
    await settle();
    expect(e.at).toHaveLength(1);
  });

  test("cancelled while fn runs, it is not evaluated again after it returns", async () => {
    fakeClock();
    const e = evaluations();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { rt, task, uuid } = await spawnRun((ctx) =>
      until("never", ctx, async () => {
        e.begin();
        await gate;
        return false;
      }, { maxInterval: { mins: 1 } }),
    );
    await e.reached(1);
    expect(await rt.cancel(uuid)).toBe(true);
    await expect(within(task, "the task to end cancelled")).rejects.toMatchObject({ name: "Cancelled" });
    release();
    await settle();
    await vi.advanceTimersByTimeAsync(600_000);
    await settle();
    expect(e.at).toHaveLength(1);
  });
});
