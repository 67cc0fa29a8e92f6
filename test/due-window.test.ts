// The window on its own (src/runtime/window.ts): which tasks it keeps in memory, how far it
// reaches (its horizon), when it reads the store again, and when it says a task is due. A
// store in memory records every read; fake timers move time (and setImmediate, the next turn).
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import {
  compareKeys,
  DEFAULT_WINDOW,
  DueWindow,
  justBefore,
  type DueKey,
  type WindowOptions,
  type WindowSource,
  type WindowTask,
} from "../src/runtime/window.js";

const T0 = 1_700_000_000_000;
const START: DueKey = { due: -Infinity, uuid: "" };

/** A uuid as the store makes them: hex digits and dashes, all of one length. */
function uid(n: number): string {
  return `00000000-0000-7000-8000-${n.toString(16).padStart(12, "0")}`;
}

function task(n: number, due: number, extra: Partial<WindowTask> = {}): WindowTask {
  return { uuid: uid(n), stateType: "T", stateId: `s${n}`, method: "run", request: "{}", attempts: 0, backoffStep: 0, due, ...extra };
}

function keyOf(t: WindowTask): DueKey {
  return { due: t.due, uuid: t.uuid };
}

/** Key order, written apart from compareKeys: a change there must not change the fake store too. */
function precedes(a: DueKey, b: DueKey): boolean {
  return a.due < b.due || (a.due === b.due && a.uuid < b.uuid);
}

interface Read {
  after: DueKey;
  until: number;
  limit: number;
}

/** The store: its waiting tasks in due order, the uuids the engine runs, and every read. */
class FakeSource implements WindowSource {
  rows: WindowTask[] = [];
  readonly running = new Set<string>();
  readonly reads: Read[] = [];

  /** Creates or moves tasks in the store (the window is not told). */
  put(...tasks: WindowTask[]): void {
    for (const t of tasks) {
      this.rows = this.rows.filter((r) => r.uuid !== t.uuid);
      this.rows.push({ ...t });
    }
    this.rows.sort((a, b) => (precedes(a, b) ? -1 : precedes(b, a) ? 1 : 0));
  }

  delete(uuid: string): void {
    this.rows = this.rows.filter((r) => r.uuid !== uuid);
  }

  row(uuid: string): WindowTask | undefined {
    return this.rows.find((r) => r.uuid === uuid);
  }

  dueAfter(after: DueKey, until: number, limit: number): WindowTask[] {
    this.reads.push({ after: { ...after }, until, limit });
    // Fresh objects, as a store's rows are.
    return this.rows
      .filter((r) => precedes(after, r) && r.due <= until)
      .slice(0, limit)
      .map((r) => ({ ...r }));
  }

  owned(uuid: string): boolean {
    return this.running.has(uuid);
  }
}

function setup(options: Partial<WindowOptions> = {}) {
  const source = new FakeSource();
  const fired: { uuid: string; due: number; at: number; task: WindowTask }[] = [];
  const window = new DueWindow(source, { ms: 1000, tasks: 4, ...options }, (t) =>
    fired.push({ uuid: t.uuid, due: t.due, at: Date.now(), task: t }),
  );
  return { source, window, fired };
}

/** The uuids the window holds, sorted. */
function held(window: DueWindow): string[] {
  return [...window.values()].map((t) => t.uuid).sort();
}

function uids(...ns: number[]): string[] {
  return ns.map(uid).sort();
}

/** Runs what is queued for the next turn (setImmediate) and the microtasks, without moving the clock. */
async function nextTurn(): Promise<void> {
  await vi.advanceTimersByTimeAsync(0);
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setImmediate", "Date"], now: T0 });
});

afterEach(() => {
  vi.useRealTimers();
});

describe("keys", () => {
  test("compareKeys orders by due time first, then by uuid; the same key compares 0", () => {
    expect(compareKeys({ due: 1, uuid: "b" }, { due: 2, uuid: "a" })).toBeLessThan(0);
    expect(compareKeys({ due: 2, uuid: "a" }, { due: 1, uuid: "b" })).toBeGreaterThan(0);
    expect(compareKeys({ due: 5, uuid: "a" }, { due: 5, uuid: "b" })).toBe(-1);
    expect(compareKeys({ due: 5, uuid: "b" }, { due: 5, uuid: "a" })).toBe(1);
    expect(compareKeys({ due: 5, uuid: "ab" }, { due: 5, uuid: "ab" })).toBe(0);
    expect(compareKeys({ due: 5, uuid: uid(1) }, { due: 5, uuid: "~" })).toBeLessThan(0);
    expect(compareKeys(START, { due: -1e300, uuid: "" })).toBeLessThan(0);
    expect(compareKeys(START, START)).toBe(0);
  });

  test("justBefore: the same due time, the uuid's last character one less, then ~", () => {
    expect(justBefore({ due: 7, uuid: uid(0x2b) })).toEqual({ due: 7, uuid: "00000000-0000-7000-8000-00000000002a~" });
    expect(justBefore({ due: 7, uuid: uid(1) })).toEqual({ due: 7, uuid: "00000000-0000-7000-8000-000000000000~" });
    // Before its key, after every smaller uuid at the same due time, and after every earlier due time.
    const hex = "0123456789abcdef";
    for (const c of hex) {
      const key = { due: 9, uuid: `ab-${c}` };
      const b = justBefore(key);
      expect(compareKeys(b, key)).toBeLessThan(0);
      for (const d of hex) {
        const other = { due: 9, uuid: `ab-${d}` };
        expect(compareKeys(other, b) < 0).toBe(d < c);
        expect(compareKeys(other, b) > 0).toBe(d >= c);
      }
      expect(compareKeys({ due: 8, uuid: "~" }, b)).toBeLessThan(0);
      expect(compareKeys({ due: 10, uuid: "" }, b)).toBeGreaterThan(0);
    }
  });

  test("justBefore(k) sorts between every uuid before k and k itself (random uuids)", () => {
    const uuid = fc.array(fc.constantFrom(..."0123456789abcdef-"), { minLength: 1, maxLength: 12 }).map((cs) => cs.join(""));
    fc.assert(
      fc.property(fc.integer(), uuid, uuid, (due, a, k) => {
        fc.pre(a.length === k.length);
        const b = justBefore({ due, uuid: k });
        expect(b.due).toBe(due);
        expect(compareKeys(b, { due, uuid: k })).toBeLessThan(0);
        if (a < k) expect(compareKeys({ due, uuid: a }, b)).toBeLessThan(0);
        else expect(compareKeys({ due, uuid: a }, b)).toBeGreaterThan(0);
      }),
      { numRuns: 300 },
    );
  });

  test("the default window: a minute, ten thousand tasks", () => {
    expect(DEFAULT_WINDOW).toEqual({ ms: 60_000, tasks: 10_000 });
  });
});

describe("offer", () => {
  test("before the first read the window reaches nothing: an offered task is not kept", () => {
    const { window, source } = setup();
    expect(window.horizon).toEqual(START);
    window.offer(task(1, T0 - 1000));
    expect(window.size).toBe(0);
    expect(source.reads).toEqual([]);
  });

  test("a task at or before the horizon is kept; one after it is not, and a kept task moved after it leaves", () => {
    const { window, source } = setup();
    window.refill();
    expect(source.reads).toEqual([{ after: START, until: T0 + 1000, limit: 4 }]);
    expect(window.horizon).toEqual({ due: T0 + 1000, uuid: "~" });
    const a = task(1, T0 + 500);
    window.offer(a);
    window.offer(task(2, T0 + 1000)); // the horizon's due time: every uuid is before ~
    window.offer(task(3, T0 + 1001));
    expect(held(window)).toEqual(uids(1, 2));
    expect(window.get(uid(1))).toBe(a);
    expect(window.get(uid(3))).toBeUndefined();
    window.offer(task(1, T0 + 1001));
    expect(held(window)).toEqual(uids(2));
    expect(window.size).toBe(1);
    expect(window.get(uid(1))).toBeUndefined();
    expect(window.horizon).toEqual({ due: T0 + 1000, uuid: "~" });
  });

  test("the horizon is inclusive: the task whose key it is stays kept; the next uuid at that due time does not", async () => {
    const { window, source } = setup({ tasks: 4 });
    source.put(task(1, T0 + 100), task(2, T0 + 200), task(3, T0 + 300), task(4, T0 + 400), task(5, T0 + 500));
    window.refill();
    expect(window.horizon).toEqual({ due: T0 + 400, uuid: uid(4) });
    window.offer(task(4, T0 + 400));
    expect(held(window)).toEqual(uids(1, 2, 3, 4));
    window.offer(task(6, T0 + 400)); // uid(6) > uid(4): after the horizon
    expect(held(window)).toEqual(uids(1, 2, 3, 4));
    expect(window.horizon).toEqual({ due: T0 + 400, uuid: uid(4) });
    await nextTurn();
    expect(source.reads).toHaveLength(1);
  });

  test("full: a task due sooner than the last one evicts the task due last, and the horizon drops just before it", async () => {
    const { window, source, fired } = setup({ tasks: 3 });
    window.refill();
    window.offer(task(1, T0 + 100));
    window.offer(task(2, T0 + 300));
    window.offer(task(3, T0 + 200));
    expect(window.size).toBe(3);
    window.offer(task(4, T0 + 150));
    expect(held(window)).toEqual(uids(1, 3, 4));
    expect(window.horizon).toEqual({ due: T0 + 300, uuid: "00000000-0000-7000-8000-000000000001~" });
    expect(window.horizon).toEqual(justBefore({ due: T0 + 300, uuid: uid(2) }));
    // The evicted task and any later one are past the horizon now.
    window.offer(task(2, T0 + 300));
    window.offer(task(5, T0 + 300));
    expect(held(window)).toEqual(uids(1, 3, 4));
    // A smaller uuid at the same due time is before the horizon; but due after all held, it only lowers it.
    window.offer(task(0, T0 + 300));
    expect(held(window)).toEqual(uids(1, 3, 4));
    expect(window.horizon).toEqual({ due: T0 + 300, uuid: "00000000-0000-7000-8000-00000000000/~" });
    await vi.advanceTimersByTimeAsync(1000);
    expect(fired.map((f) => f.uuid)).toEqual([uid(1), uid(4), uid(3)]);
    // The window is full: it reads again only when it empties.
    expect(source.reads).toHaveLength(1);
  });

  test("full: a task due after all held is not kept, and the horizon drops just before it", () => {
    const { window, source } = setup({ tasks: 2 });
    window.refill();
    window.offer(task(1, T0 + 100));
    window.offer(task(2, T0 + 200));
    window.offer(task(3, T0 + 500));
    expect(held(window)).toEqual(uids(1, 2));
    expect(window.horizon).toEqual(justBefore({ due: T0 + 500, uuid: uid(3) }));
    window.offer(task(4, T0 + 400));
    expect(held(window)).toEqual(uids(1, 2));
    expect(window.horizon).toEqual(justBefore({ due: T0 + 400, uuid: uid(4) }));
    window.offer(task(5, T0 + 150));
    expect(held(window)).toEqual(uids(1, 5));
    expect(window.horizon).toEqual(justBefore({ due: T0 + 200, uuid: uid(2) }));
    window.offer(task(6, T0 + 50));
    expect(held(window)).toEqual(uids(1, 6));
    expect(window.horizon).toEqual(justBefore({ due: T0 + 150, uuid: uid(5) }));
    expect(source.reads).toHaveLength(1);
  });

  test("an eviction leaves the window full: emptied to half, it reads again on the next turn, from just before the task evicted", async () => {
    const { window, source } = setup({ tasks: 3 });
    window.refill(); // not full: the next read is set for T0 + 500
    const tasks = [task(1, T0 + 100), task(2, T0 + 300), task(3, T0 + 200), task(4, T0 + 150)];
    for (const t of tasks) {
      source.put(t);
      window.offer(t);
    }
    expect(held(window)).toEqual(uids(1, 3, 4));
    window.remove(uid(1));
    window.remove(uid(4));
    await nextTurn();
    expect(source.reads).toEqual([
      { after: START, until: T0 + 1000, limit: 3 },
      { after: justBefore({ due: T0 + 300, uuid: uid(2) }), until: T0 + 1000, limit: 2 },
    ]);
    expect(held(window)).toEqual(uids(2, 3));
  });

  test("a task not kept for want of room leaves the window full too: emptied to half, it reads that task back", async () => {
    const { window, source } = setup({ tasks: 2 });
    window.refill();
    const tasks = [task(1, T0 + 100), task(2, T0 + 200), task(3, T0 + 300)];
    for (const t of tasks) {
      source.put(t);
      window.offer(t);
    }
    expect(held(window)).toEqual(uids(1, 2));
    window.remove(uid(1));
    await nextTurn();
    expect(source.reads[1]).toEqual({ after: justBefore({ due: T0 + 300, uuid: uid(3) }), until: T0 + 1000, limit: 1 });
    expect(held(window)).toEqual(uids(2, 3));
  });

  test("the same task offered again replaces itself: the size stays, nothing is evicted, and its old due time no longer counts", async () => {
    const { window, fired } = setup({ tasks: 3 });
    window.refill();
    window.offer(task(1, T0 + 100));
    window.offer(task(2, T0 + 200));
    window.offer(task(3, T0 + 300));
    const moved = task(3, T0 + 50, { attempts: 1 });
    window.offer(moved);
    expect(window.size).toBe(3);
    expect(window.get(uid(3))).toBe(moved);
    expect(window.horizon).toEqual({ due: T0 + 1000, uuid: "~" });
    // The entry of task 3 at +300 is stale: the task due last is task 2.
    window.offer(task(4, T0 + 150));
    expect(held(window)).toEqual(uids(1, 3, 4));
    expect(window.horizon).toEqual(justBefore({ due: T0 + 200, uuid: uid(2) }));
    await vi.advanceTimersByTimeAsync(1000);
    expect(fired.map((f) => [f.uuid, f.at - T0])).toEqual([
      [uid(3), 50],
      [uid(1), 100],
      [uid(4), 150],
    ]);
    expect(fired[0]!.task).toBe(moved);
  });

  test("after many moves of one task (its stale entries rebuilt away) the task due last is still the one evicted", () => {
    const { window } = setup({ tasks: 3, ms: 10_000 });
    window.refill();
    window.offer(task(1, T0 + 100));
    window.offer(task(2, T0 + 200));
    window.offer(task(3, T0 + 300));
    for (let i = 0; i < 3000; i++) window.offer(task(1, T0 + 100 + (i % 2)));
    expect(window.size).toBe(3);
    window.offer(task(4, T0 + 150));
    expect(held(window)).toEqual(uids(1, 2, 4));
    window.offer(task(5, T0 + 120));
    expect(held(window)).toEqual(uids(1, 4, 5));
    expect(window.horizon).toEqual(justBefore({ due: T0 + 200, uuid: uid(2) }));
  });
});

describe("refill", () => {
  test("reads after the horizon, up to now + ms, at most the room left; short of the room, it reaches now + ms and reads again at half of ms before", async () => {
    const { window, source } = setup({ tasks: 4, ms: 1000 });
    source.put(task(1, T0 + 100), task(2, T0 + 2000));
    window.refill();
    expect(source.reads).toEqual([{ after: START, until: T0 + 1000, limit: 4 }]);
    expect(held(window)).toEqual(uids(1));
    expect(window.horizon).toEqual({ due: T0 + 1000, uuid: "~" });
    await vi.advanceTimersByTimeAsync(499);
    expect(source.reads).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(source.reads).toHaveLength(2);
    expect(source.reads[1]).toEqual({ after: { due: T0 + 1000, uuid: "~" }, until: T0 + 1500, limit: 3 });
    expect(window.horizon).toEqual({ due: T0 + 1500, uuid: "~" });
    await vi.advanceTimersByTimeAsync(499);
    expect(source.reads).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(source.reads[2]).toEqual({ after: { due: T0 + 1500, uuid: "~" }, until: T0 + 2000, limit: 3 });
    expect(held(window)).toEqual(uids(1, 2));
  });

  test("reading exactly the room left, the horizon is the last row's key, and no read follows by time", async () => {
    const { window, source } = setup({ tasks: 3 });
    source.put(task(1, T0 + 100), task(2, T0 + 200), task(3, T0 + 300), task(4, T0 + 400));
    window.refill();
    expect(source.reads).toEqual([{ after: START, until: T0 + 1000, limit: 3 }]);
    expect(held(window)).toEqual(uids(1, 2, 3));
    expect(window.horizon).toEqual({ due: T0 + 300, uuid: uid(3) });
    // Nothing is removed (onDue here keeps them): the window stays full and does not read.
    await vi.advanceTimersByTimeAsync(60_000);
    expect(source.reads).toHaveLength(1);
  });

  test("no read at all when there is no room", async () => {
    const { window, source } = setup({ tasks: 2 });
    source.put(task(1, T0 + 100), task(2, T0 + 200), task(3, T0 + 300));
    window.refill();
    expect(source.reads).toHaveLength(1);
    window.refill();
    window.refill();
    expect(source.reads).toHaveLength(1);
    expect(window.horizon).toEqual({ due: T0 + 200, uuid: uid(2) });
    await nextTurn();
    expect(source.reads).toHaveLength(1);
  });

  test("rows the engine runs are skipped, yet count toward the room read", async () => {
    const { window, source } = setup({ tasks: 4 });
    source.put(task(1, T0 + 100), task(2, T0 + 200), task(3, T0 + 300), task(4, T0 + 400), task(5, T0 + 500));
    source.running.add(uid(2)).add(uid(3));
    window.refill();
    expect(held(window)).toEqual(uids(1, 4));
    // Four rows read: full, and the horizon is the fourth.
    expect(window.horizon).toEqual({ due: T0 + 400, uuid: uid(4) });
    await vi.advanceTimersByTimeAsync(350);
    expect(source.reads).toHaveLength(1);
    // Full, and at half of `tasks`: removing a task not held changes nothing.
    window.remove(uid(3));
    window.remove(uid(9));
    await nextTurn();
    expect(source.reads).toHaveLength(1);
    window.remove(uid(1));
    await nextTurn();
    expect(source.reads).toHaveLength(2);
    expect(source.reads[1]).toEqual({ after: { due: T0 + 400, uuid: uid(4) }, until: T0 + 1350, limit: 3 });
    expect(held(window)).toEqual(uids(4, 5));
  });

  test("a read that fills the window cancels the read set for later", async () => {
    const { window, source } = setup({ tasks: 4 });
    window.refill();
    await vi.advanceTimersByTimeAsync(100);
    // Past the horizon (T0 + 1000), within the next read's reach (T0 + 1100).
    source.put(task(1, T0 + 1010), task(2, T0 + 1020), task(3, T0 + 1030), task(4, T0 + 1040));
    window.refill();
    expect(source.reads).toHaveLength(2);
    expect(held(window)).toEqual(uids(1, 2, 3, 4));
    window.remove(uid(4)); // room again, though not down to half: no read
    await vi.advanceTimersByTimeAsync(800);
    expect(source.reads).toHaveLength(2);
  });

  test("a reach longer than setTimeout takes: the next read is at 2^31 - 1 ms", async () => {
    const ms = 2 ** 33;
    const { window, source } = setup({ ms });
    window.refill();
    expect(source.reads).toEqual([{ after: START, until: T0 + ms, limit: 4 }]);
    await vi.advanceTimersByTimeAsync(2 ** 31 - 2);
    expect(source.reads).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(source.reads).toHaveLength(2);
  });

  test("full, removing down to half of `tasks` reads again on the next turn, once however many leave; and again next time", async () => {
    const { window, source } = setup({ tasks: 4 });
    const rows = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => task(n, T0 + 100 * n));
    source.put(...rows);
    window.refill();
    expect(held(window)).toEqual(uids(1, 2, 3, 4));
    window.remove(uid(1));
    await nextTurn();
    expect(source.reads).toHaveLength(1);
    window.remove(uid(2));
    expect(source.reads).toHaveLength(1); // not now: on the next turn
    await nextTurn();
    expect(source.reads).toHaveLength(2);
    expect(source.reads[1]).toEqual({ after: { due: T0 + 400, uuid: uid(4) }, until: T0 + 1000, limit: 2 });
    expect(held(window)).toEqual(uids(3, 4, 5, 6));
    expect(window.horizon).toEqual({ due: T0 + 600, uuid: uid(6) });
    // Full again: the next time it empties to half, it reads again.
    window.remove(uid(3));
    window.remove(uid(4));
    await nextTurn();
    expect(source.reads).toHaveLength(3);
    expect(held(window)).toEqual(uids(5, 6, 7, 8));
  });

  test("several removes in one turn make one read", async () => {
    const { window, source } = setup({ tasks: 4 });
    source.put(task(1, T0 + 100), task(2, T0 + 200), task(3, T0 + 300), task(4, T0 + 400));
    window.refill();
    window.remove(uid(2));
    window.remove(uid(3));
    window.remove(uid(4));
    await nextTurn();
    expect(source.reads).toEqual([
      { after: START, until: T0 + 1000, limit: 4 },
      { after: { due: T0 + 400, uuid: uid(4) }, until: T0 + 1000, limit: 3 },
    ]);
    expect(window.horizon).toEqual({ due: T0 + 1000, uuid: "~" });
  });

  test("not full, removing does not read before the time set", async () => {
    const { window, source } = setup({ tasks: 4 });
    source.put(task(1, T0 + 100), task(2, T0 + 200));
    window.refill();
    window.remove(uid(1));
    window.remove(uid(2));
    window.offer(task(3, T0 + 300));
    window.offer(task(3, T0 + 5000)); // moved past the horizon
    await vi.advanceTimersByTimeAsync(499);
    expect(source.reads).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(source.reads).toHaveLength(2);
  });

  test("full, a held task moved past the horizon makes room: read again on the next turn; a new task past it does not", async () => {
    const { window, source } = setup({ tasks: 4 });
    source.put(task(1, T0 + 100), task(2, T0 + 200), task(3, T0 + 300), task(4, T0 + 400), task(5, T0 + 500));
    window.refill();
    window.offer(task(9, T0 + 900)); // full and past the horizon: no room, no read asked for
    window.remove(uid(1)); // room for one, yet more than half held: still no read
    await nextTurn();
    expect(source.reads).toHaveLength(1);
    expect(window.size).toBe(3);
    window.offer(task(1, T0 + 100));
    source.put(task(2, T0 + 900));
    window.offer(task(2, T0 + 900));
    expect(held(window)).toEqual(uids(1, 3, 4));
    expect(source.reads).toHaveLength(1);
    await nextTurn();
    expect(source.reads[1]).toEqual({ after: { due: T0 + 400, uuid: uid(4) }, until: T0 + 1000, limit: 1 });
    expect(held(window)).toEqual(uids(1, 3, 4, 5));
    // Room left (3 of 4), full: a new task past the horizon asks for a read too.
    window.remove(uid(1));
    window.offer(task(7, T0 + 950));
    await nextTurn();
    expect(source.reads).toHaveLength(3);
    expect(source.reads[2]).toEqual({ after: { due: T0 + 500, uuid: uid(5) }, until: T0 + 1000, limit: 1 });
  });
});

describe("reset", () => {
  test("forgets what it holds and how far it reached, and reads from the start: a held task comes back as the store has it", () => {
    const { window, source } = setup({ tasks: 5 });
    window.refill();
    const a = task(1, T0 + 100, { attempts: 3 });
    source.put(a);
    window.offer(a);
    source.put(task(2, T0 + 50), task(3, T0 + 200));
    window.reset();
    expect(source.reads).toEqual([
      { after: START, until: T0 + 1000, limit: 5 },
      { after: START, until: T0 + 1000, limit: 5 },
    ]);
    expect(held(window)).toEqual(uids(1, 2, 3));
    expect(window.get(uid(1))).toEqual(a);
    expect(window.horizon).toEqual({ due: T0 + 1000, uuid: "~" });
  });

  test("tasks held due after the ones the store now has first do not hold those back: each is due on time", async () => {
    const source = new FakeSource();
    const fired: [string, number][] = [];
    // As the engine does, a task due leaves the window (it starts).
    const window: DueWindow = new DueWindow(source, { ms: 1000, tasks: 5 }, (t) => {
      fired.push([t.uuid, Date.now() - T0]);
      source.delete(t.uuid);
      window.remove(t.uuid);
    });
    window.refill();
    const late = [task(10, T0 + 900), task(11, T0 + 940), task(12, T0 + 980)];
    source.put(...late);
    for (const t of late) window.offer(t);
    // Many tasks become due sooner in the store at once (a load retried them); the window reads again.
    source.put(task(1, T0 + 100), task(2, T0 + 200), task(3, T0 + 300), task(4, T0 + 400), task(5, T0 + 500));
    window.reset();
    expect(held(window)).toEqual(uids(1, 2, 3, 4, 5));
    await vi.advanceTimersByTimeAsync(1000);
    expect(fired).toEqual([
      [uid(1), 100],
      [uid(2), 200],
      [uid(3), 300],
      [uid(4), 400],
      [uid(5), 500],
      [uid(10), 900],
      [uid(11), 940],
      [uid(12), 980],
    ]);
  });

  test("after stop, reset reads nothing and keeps nothing", () => {
    const { window, source } = setup({ tasks: 5 });
    source.put(task(1, T0 + 100));
    window.stop();
    window.reset();
    expect(source.reads).toEqual([]);
    expect(window.size).toBe(0);
  });
});

describe("filled by offers", () => {
  test("a window filled by offers, not by a read, does not read again by time: a task leaving reads on", async () => {
    const { window, source } = setup({ tasks: 2, ms: 1000 });
    window.refill();
    window.offer(task(1, T0 + 900));
    window.offer(task(2, T0 + 950));
    const refills = vi.spyOn(window, "refill");
    // The read set for half the reach finds no room; none is set again, however long it waits.
    await vi.advanceTimersByTimeAsync(800);
    expect(refills).toHaveBeenCalledTimes(1);
    expect(source.reads).toHaveLength(1);
    source.put(task(3, T0 + 850));
    window.remove(uid(1));
    await nextTurn();
    expect(source.reads.at(-1)).toEqual({ after: { due: T0 + 1000, uuid: "~" }, until: T0 + 1800, limit: 1 });
  });
});

describe("onDue", () => {
  test("a held task is due at its due time, not before, as held last", async () => {
    const { window, fired } = setup();
    window.refill();
    window.offer(task(1, T0 + 300));
    const moved = task(1, T0 + 200, { attempts: 2 });
    window.offer(moved);
    window.offer(task(2, T0 + 250));
    await vi.advanceTimersByTimeAsync(199);
    expect(fired).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(fired.map((f) => [f.uuid, f.at])).toEqual([[uid(1), T0 + 200]]);
    expect(fired[0]!.task).toBe(moved);
    await vi.advanceTimersByTimeAsync(1000);
    expect(fired.map((f) => [f.uuid, f.at])).toEqual([
      [uid(1), T0 + 200],
      [uid(2), T0 + 250],
    ]);
  });

  test("a task already due is due on the spot; a removed task never", async () => {
    const { window, source, fired } = setup();
    source.put(task(1, T0 - 500), task(2, T0 + 100));
    window.refill();
    window.remove(uid(2));
    window.offer(task(3, T0 + 100));
    window.remove(uid(3));
    await vi.advanceTimersByTimeAsync(0);
    expect(fired.map((f) => [f.uuid, f.at])).toEqual([[uid(1), T0]]);
    await vi.advanceTimersByTimeAsync(5000);
    expect(fired.map((f) => f.uuid)).toEqual([uid(1)]);
  });

  test("after stop nothing is due, read or kept", async () => {
    const { window, source, fired } = setup();
    source.put(task(1, T0 + 100));
    window.refill();
    window.offer(task(2, T0 + 200));
    expect(window.size).toBe(2);
    window.stop();
    expect(window.size).toBe(0);
    window.offer(task(3, T0 + 300));
    window.refill();
    window.reset();
    expect(window.size).toBe(0);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(fired).toEqual([]);
    expect(source.reads).toHaveLength(1);
  });
});

// --- Random sequences ------------------------------------------------------------------

/** What the engine and the store do around the window (`n` names a task, `at` is ms from now). */
type Op =
  | { kind: "create"; n: number; at: number } // the task is created or moved in the store, and offered
  | { kind: "start"; n: number } // the engine takes a held task: it runs
  | { kind: "finish"; n: number } // a running task ends: gone from the store
  | { kind: "retry"; n: number; at: number } // a running task fails: it waits again, offered
  | { kind: "cancel"; n: number } // a waiting task is cancelled: gone from the store
  | { kind: "refill" }
  | { kind: "turn" } // the next turn of the event loop
  | { kind: "time"; ms: number }
  | { kind: "bulk"; rows: { n: number; at: number }[] }; // many tasks created in the store at once, then reset()

const nArb = fc.integer({ min: 0, max: 15 });
const atArb = fc.integer({ min: -500, max: 3000 });
const opArb = (withReset: boolean): fc.Arbitrary<Op> =>
  fc.oneof(
    { arbitrary: fc.record({ kind: fc.constant("create" as const), n: nArb, at: atArb }), weight: 6 },
    { arbitrary: fc.record({ kind: fc.constant("start" as const), n: nArb }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant("finish" as const), n: nArb }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant("retry" as const), n: nArb, at: atArb }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant("cancel" as const), n: nArb }), weight: 1 },
    { arbitrary: fc.constant({ kind: "refill" as const }), weight: 1 },
    { arbitrary: fc.constant({ kind: "turn" as const }), weight: 1 },
    { arbitrary: fc.record({ kind: fc.constant("time" as const), ms: fc.integer({ min: 1, max: 1500 }) }), weight: 3 },
    ...(withReset
      ? [
          {
            arbitrary: fc.record({
              kind: fc.constant("bulk" as const),
              rows: fc.array(fc.record({ n: nArb, at: atArb }), { minLength: 1, maxLength: 8 }),
            }),
            weight: 1,
          },
        ]
      : []),
  );

/**
 * Runs `ops` (onDue starts the task, as the engine does), checking after each: at most `tasks`
 * held; every held task is in the store at the same due time and not running; every task in
 * the store, not running, whose key is at most the horizon is held (the class's contract); a
 * task is due only while held and never early. Until the first reset() only (it breaks both):
 * every held task's key is at most the horizon, and after time passes, every task due has started.
 */
async function runOps(options: WindowOptions, ops: Op[], resetAllowed: boolean): Promise<void> {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setImmediate", "Date"], now: T0 });
  const source = new FakeSource();
  const problems: string[] = [];
  const window: DueWindow = new DueWindow(source, options, (t) => {
    // Due: held, at or after its due time. The engine starts it.
    if (window.get(t.uuid) !== t) problems.push(`${t.uuid} due but not held`);
    if (t.due > Date.now()) problems.push(`${t.uuid} due early`);
    source.running.add(t.uuid);
    window.remove(t.uuid);
  });
  const microtasks = async () => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  let resetSeen = false;
  try {
    window.refill();
    for (const op of ops) {
      const now = Date.now();
      switch (op.kind) {
        case "create":
          if (source.running.has(uid(op.n))) break;
          source.put(task(op.n, now + op.at));
          window.offer(task(op.n, now + op.at));
          break;
        case "start":
          if (!window.get(uid(op.n))) break;
          source.running.add(uid(op.n));
          window.remove(uid(op.n));
          break;
        case "finish":
          if (!source.running.delete(uid(op.n))) break;
          source.delete(uid(op.n));
          break;
        case "retry":
          if (!source.running.delete(uid(op.n))) break;
          source.put(task(op.n, now + op.at, { attempts: 1 }));
          window.offer(task(op.n, now + op.at, { attempts: 1 }));
          break;
        case "cancel":
          if (!source.row(uid(op.n)) || source.running.has(uid(op.n))) break;
          source.delete(uid(op.n));
          window.remove(uid(op.n));
          break;
        case "refill":
          window.refill();
          break;
        case "turn":
          await vi.advanceTimersByTimeAsync(0);
          break;
        case "time": {
          await vi.advanceTimersByTimeAsync(op.ms);
          // No task is forgotten: within a few turns (each read is on the next turn, a fake ms later), every task due by now has started.
          const cutoff = Date.now();
          await vi.advanceTimersByTimeAsync(50);
          // Not after reset(): the tasks it left beyond the horizon can keep the window from reading.
          if (!resetSeen)
            for (const row of source.rows)
              if (!source.running.has(row.uuid)) expect(row.due, `${row.uuid} due by ${cutoff} has started`).toBeGreaterThan(cutoff);
          break;
        }
        case "bulk":
          for (const r of op.rows) if (!source.row(uid(r.n)) && !source.running.has(uid(r.n))) source.put(task(r.n, now + r.at));
          window.reset();
          resetSeen = true;
          break;
      }
      await microtasks();
      expect(problems).toEqual([]);
      const h = window.horizon;
      expect(window.size).toBeLessThanOrEqual(options.tasks);
      for (const t of window.values()) {
        expect(source.row(t.uuid)?.due, `held ${t.uuid} as in the store`).toBe(t.due);
        expect(source.running.has(t.uuid), `held ${t.uuid} not running`).toBe(false);
        // Held tasks are within the horizon, unless reset() left them beyond it.
        if (!resetSeen) expect(precedes(h, keyOf(t)), `held ${t.uuid} within the horizon`).toBe(false);
      }
      for (const row of source.rows)
        if (!source.running.has(row.uuid) && !precedes(h, row))
          expect(window.get(row.uuid)?.due, `${row.uuid} within the horizon is held`).toBe(row.due);
    }
    expect(resetSeen && !resetAllowed).toBe(false);
  } finally {
    window.stop();
    vi.useRealTimers();
  }
}

const optionsArb = fc.record({ ms: fc.integer({ min: 50, max: 2000 }), tasks: fc.integer({ min: 1, max: 6 }) });

test.each([
  ["without reset", false],
  ["with reset", true],
])("random sequences keep the window's invariants (%s)", async (_name, withReset) => {
  await fc.assert(
    fc.asyncProperty(optionsArb, fc.array(opArb(withReset), { maxLength: 40 }), async (options, ops) => {
      await runOps(options, ops, withReset);
    }),
    { numRuns: Number(process.env.DUE_WINDOW_RUNS ?? 150) },
  );
});
