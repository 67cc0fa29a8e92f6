import { afterEach, describe, expect, test, vi } from "vitest";
import { compareKeys, justBefore } from "../src/runtime/window.js";
import { TaskId } from "mend";
import { dueTime } from "../src/api/task-id.js";
import { coerceError } from "../src/api/errors.js";
import { DEFAULT_RETRY, resolveRetry, retryDelay } from "../src/runtime/backoff.js";
import { toStoredJson } from "../src/runtime/json.js";
import { Scheduler } from "../src/runtime/scheduler.js";

afterEach(() => {
  vi.useRealTimers();
});

describe("retryDelay", () => {
  test("is full jitter under a cap that doubles from 1 s up to 30 s", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 10].map((step) => retryDelay(step, DEFAULT_RETRY, 0.999999))).toEqual([
      1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000,
    ]);
    expect(retryDelay(3, DEFAULT_RETRY, 0)).toBe(0);
    expect(retryDelay(1, DEFAULT_RETRY, 0.5)).toBe(1000);
    expect(retryDelay(1, { ...DEFAULT_RETRY, jitter: false }, 0.1)).toBe(2000);
  });

  test("policies layer: application, then method", () => {
    expect(resolveRetry({ initialMs: 10 }, { maxMs: 50 })).toEqual({ initialMs: 10, maxMs: 50, multiplier: 2, jitter: true });
    expect(resolveRetry({ jitter: false }, {})).toMatchObject({ jitter: false });
    expect(resolveRetry({ initialMs: -5, multiplier: Number.NaN })).toEqual(DEFAULT_RETRY);
    expect(resolveRetry({ maxMs: Number.POSITIVE_INFINITY })).toEqual(DEFAULT_RETRY);
    expect(resolveRetry({ initialMs: 0 })).toMatchObject({ initialMs: 0 });
  });
});

describe("dueTime", () => {
  test("adds every unit of a duration", () => {
    expect(dueTime({ ms: 1, secs: 2, mins: 3, hours: 4, days: 5 }, 1000)).toBe(1000 + 1 + 2e3 + 3 * 6e4 + 4 * 3.6e6 + 5 * 8.64e7);
    expect(dueTime(undefined, 42)).toBe(42);
    expect(dueTime(new Date(7), 42)).toBe(7);
  });
  test("refuses nonsense", () => {
    expect(() => dueTime({ secs: -1 }, 0)).toThrow("`when.secs` must be a finite number >= 0, got -1.");
    expect(() => dueTime(new Date("nope"), 0)).toThrow("invalid Date");
  });
});

describe("TaskId", () => {
  test("formats and parses, with any characters in the state id", () => {
    const id = { stateType: "Account", stateId: "a/b c:'d'", taskUuid: TaskId.newUuid() };
    expect(TaskId.parse(TaskId.format(id))).toEqual(id);
  });
  test("refuses what is not a task id", () => {
    expect(() => TaskId.parse("Account/alice")).toThrow("is not a task id");
    expect(() => TaskId.parse("Account/alice/not-a-uuid")).toThrow("is not a task id");
  });
});

describe("toStoredJson", () => {
  test("refuses what JSON would drop or cannot hold, saying where", () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(() => toStoredJson({ a: [1, () => 1] }, "X")).toThrow("X cannot be stored: the value.a[1] is a function.");
    expect(() => toStoredJson({ n: 1n }, "X")).toThrow("the value.n is a BigInt");
    expect(() => toStoredJson(cycle, "X")).toThrow("the value.self refers back to itself (a cycle)");
    expect(toStoredJson(undefined, "X")).toBeNull();
    expect(toStoredJson({ a: undefined, b: [1, "x", null] }, "X")).toBe('{"b":[1,"x",null]}');
  });
});

describe("coerceError", () => {
  test("wraps what is not an Error", () => {
    expect(coerceError("s").message).toBe('A non-Error value was thrown: "s"');
    expect(coerceError(undefined).message).toBe("A non-Error value was thrown: undefined");
    expect(coerceError({ a: 1 }).message).toBe('A non-Error value was thrown: {"a":1}');
    const e = new RangeError("r");
    expect(coerceError(e)).toBe(e);
  });
});

describe("due keys", () => {
  test("justBefore is before its key and after every key before it", () => {
    const key = { due: 5, uuid: "0190aaaa-0000-7000-8000-00000000000a" };
    const before = justBefore(key);
    expect(compareKeys(before, key)).toBeLessThan(0);
    expect(compareKeys({ due: 5, uuid: "0190aaaa-0000-7000-8000-000000000009" }, before)).toBeLessThan(0);
    expect(compareKeys({ due: 4, uuid: "~" }, before)).toBeLessThan(0);
    expect(compareKeys(justBefore({ due: 5, uuid: "0190aaaa-0000-7000-8000-000000000010" }), { due: 5, uuid: "0190aaaa-0000-7000-8000-00000000000f" })).toBeGreaterThan(0);
  });
});

describe("Scheduler", () => {
  test("calls back at each due time, in order, never before", async () => {
    vi.useFakeTimers({ now: 0 });
    const fired: [string, number][] = [];
    const s = new Scheduler((uuid) => fired.push([uuid, Date.now()]));
    s.add("c", 300);
    s.add("a", 100);
    s.add("b", 200);
    s.add("a", 250); // rescheduled: only the newest due time counts
    await vi.advanceTimersByTimeAsync(99);
    expect(fired).toEqual([]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(fired).toEqual([["b", 200], ["a", 250], ["c", 300]]);
    s.stop();
  });

  test("a removed task is not called", async () => {
    vi.useFakeTimers({ now: 0 });
    const fired: string[] = [];
    const s = new Scheduler((uuid) => fired.push(uuid));
    s.add("a", 10);
    s.add("b", 20);
    expect(s.remove("a")).toBe(true);
    await vi.advanceTimersByTimeAsync(100);
    expect(fired).toEqual(["b"]);
    s.stop();
  });

  test("a task due beyond setTimeout's limit (24.8 days) waits for it, without spinning, and runs then", async () => {
    vi.useFakeTimers({ now: 0 });
    const armed = vi.spyOn(globalThis, "setTimeout");
    const fired: [string, number][] = [];
    const s = new Scheduler((uuid) => fired.push([uuid, Date.now()]));
    const due = 30 * 86_400_000;
    s.add("far", due);
    await vi.advanceTimersByTimeAsync(due - 1);
    expect(fired).toEqual([]);
    // One timer up to the limit, one for the rest: a timer that fired early is re-armed, not spun.
    expect(armed.mock.calls.length).toBeLessThanOrEqual(3);
    expect(armed.mock.calls.every(([, ms]) => (ms ?? 0) <= 2 ** 31 - 1)).toBe(true);
    await vi.advanceTimersByTimeAsync(1);
    expect(fired).toEqual([["far", due]]);
    s.stop();
  });

  test("a task due now runs without waiting for a timer", async () => {
    const fired: string[] = [];
    const s = new Scheduler((uuid) => fired.push(uuid));
    s.add("now", Date.now());
    await Promise.resolve();
    expect(fired).toEqual(["now"]);
    s.stop();
  });
});
