// The timer heap under the due window, on a fake clock: it wakes for each task at its due
// time, in order, once, and never after stop.
import { afterEach, beforeEach, expect, test, vi } from "vitest";
import { Scheduler } from "../src/runtime/scheduler.js";

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

function scheduler() {
  const fired: string[] = [];
  const s = new Scheduler((uuid) => fired.push(uuid));
  return { s, fired };
}

test("tasks fire at their due time, earliest first; tasks due together in the order they were added", async () => {
  const { s, fired } = scheduler();
  const now = Date.now();
  for (const uuid of ["a", "b", "c", "d", "e"]) s.add(uuid, now + 100);
  s.add("early", now + 50);
  s.add("late", now + 200);
  expect(s.size).toBe(7);
  await vi.advanceTimersByTimeAsync(49);
  expect(fired).toEqual([]);
  await vi.advanceTimersByTimeAsync(1);
  expect(fired).toEqual(["early"]);
  await vi.advanceTimersByTimeAsync(50);
  expect(fired).toEqual(["early", "a", "b", "c", "d", "e"]);
  await vi.advanceTimersByTimeAsync(100);
  expect(fired).toEqual(["early", "a", "b", "c", "d", "e", "late"]);
  expect(s.size).toBe(0);
});

test("a task due now or in the past fires at once, before any timer", async () => {
  const { s, fired } = scheduler();
  s.add("past", Date.now() - 10);
  s.add("now", Date.now());
  expect(fired).toEqual([]);
  await Promise.resolve();
  expect(fired).toEqual(["past", "now"]);
});

test("a task added again is moved: it fires once, at its new time", async () => {
  const { s, fired } = scheduler();
  const now = Date.now();
  s.add("x", now + 100);
  s.add("y", now + 150);
  s.add("x", now + 300);
  expect(s.size).toBe(2);
  expect(s.has("x")).toBe(true);
  await vi.advanceTimersByTimeAsync(200);
  expect(fired).toEqual(["y"]);
  await vi.advanceTimersByTimeAsync(100);
  expect(fired).toEqual(["y", "x"]);
  // Moved earlier: the timer follows.
  s.add("z", Date.now() + 500);
  s.add("z", Date.now() + 10);
  await vi.advanceTimersByTimeAsync(10);
  expect(fired).toEqual(["y", "x", "z"]);
});

test("a removed task never fires; a stale top entry does not hold the timer", async () => {
  const { s, fired } = scheduler();
  const now = Date.now();
  s.add("gone", now + 10);
  s.add("kept", now + 20);
  expect(s.remove("gone")).toBe(true);
  expect(s.remove("gone")).toBe(false);
  expect(s.has("gone")).toBe(false);
  await vi.advanceTimersByTimeAsync(20);
  expect(fired).toEqual(["kept"]);
});

test("after stop nothing fires, and nothing can be added; a stop from a task's wake-up ends the round", async () => {
  const { s, fired } = scheduler();
  s.add("a", Date.now() + 10);
  s.stop();
  s.add("b", Date.now());
  expect(s.size).toBe(0);
  await vi.advanceTimersByTimeAsync(100);
  expect(fired).toEqual([]);

  const woken: string[] = [];
  const stopping: Scheduler = new Scheduler((uuid) => {
    woken.push(uuid);
    stopping.stop();
  });
  stopping.add("first", Date.now() + 5);
  stopping.add("second", Date.now() + 5);
  await vi.advanceTimersByTimeAsync(10);
  expect(woken).toEqual(["first"]);
});

test("a task due further ahead than a timer can wait is still woken at its time", async () => {
  const { s, fired } = scheduler();
  const days40 = 40 * 24 * 3600 * 1000;
  s.add("far", Date.now() + days40);
  await vi.advanceTimersByTimeAsync(2 ** 31 - 1);
  expect(fired).toEqual([]);
  await vi.advanceTimersByTimeAsync(days40 - (2 ** 31 - 1));
  expect(fired).toEqual(["far"]);
});
