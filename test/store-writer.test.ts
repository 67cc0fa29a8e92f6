// The SQLite store's writes, one by one, on a real file: what each leaves in the task and its
// attempts, that each stops at its own named fault point (tests of crashes between two
// commits arm them by name), the list's filters, and MEND_FAULTS's syntax.
import { existsSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { armFault, disarmFaults, InjectedFault, parseFaults } from "../src/store/faults.js";
import { SqliteStore } from "../src/store/sqlite-store.js";
import type { StoreWriter } from "../src/store/store.js";
import { tempDir } from "./helpers/temp.js";

const stores: SqliteStore[] = [];
afterEach(async () => {
  disarmFaults();
  for (const s of stores.splice(0)) await s.close();
});

function open(): SqliteStore {
  const store = new SqliteStore(join(tempDir(), "mend.sqlite"));
  stores.push(store);
  return store;
}

let made = 0;
/** A new task, due at `now`, of state `Box(id)`; its uuid. */
async function task(store: SqliteStore, o: { id?: string; method?: string; parent?: string | null; now?: number } = {}): Promise<string> {
  const uuid = `0192f3a4-0000-7000-8000-${String(++made).padStart(12, "0")}`;
  const now = o.now ?? 1000;
  await store.commit((w) =>
    w.insertTask({ uuid, state_type: "Box", state_id: o.id ?? "b", method: o.method ?? "put", request: "{}", due_at: now, created_at: now, now, parent_uuid: o.parent ?? null }),
  );
  return uuid;
}

async function started(store: SqliteStore, o: Parameters<typeof task>[1] = {}): Promise<string> {
  const uuid = await task(store, o);
  await store.commit((w) => w.startTask(uuid, 1, "v1", 1100));
  return uuid;
}

describe("each write's fault point", () => {
  // [point, what makes the task reach it, the write]
  const cases: [string, boolean, (w: StoreWriter, uuid: string) => void][] = [
    ["store.startTask", false, (w, uuid) => w.startTask(uuid, 1, "v1", 1100)],
    ["store.completeTask", true, (w, uuid) => w.completeTask(uuid, 1, "{}", 1200)],
    ["store.abortTask", true, (w, uuid) => w.abortTask(uuid, 1, "{}", "no", 1200)],
    ["store.failTask", true, (w, uuid) => w.failTask(uuid, 1, 5000, 1, { name: "Error", message: "x" }, 1200)],
    ["store.iterateTask", true, (w, uuid) => w.iterateTask(uuid, 1, 5000, 1, 1200)],
    ["store.cancelTask", false, (w, uuid) => w.cancelTask(uuid, 1200, () => {})],
    ["store.retryTask", false, (w, uuid) => w.retryTask(uuid, 1200)],
    ["store.retryFailing", false, (w) => w.retryFailing(1200, () => {})],
  ];
  test.each(cases)("%s fails that write, and the task is as it was", async (point, running, write) => {
    const store = open();
    const uuid = running ? await started(store) : await task(store);
    const before = await store.getTask(uuid);
    armFault(point, "throw", 1, Infinity);
    await expect(store.commit((w) => write(w, uuid))).rejects.toThrow(new InjectedFault(point).message);
    disarmFaults();
    expect(await store.getTask(uuid)).toEqual(before);
  });

  test.each(["completeTask", "abortTask", "failTask", "iterateTask"] as const)(
    "store.endAttempt is reached by %s, after the task's own write: both are undone",
    async (which) => {
      const store = open();
      const uuid = await started(store);
      const before = await store.getTask(uuid);
      armFault("store.endAttempt", "throw", 1, Infinity);
      await expect(
        store.commit((w) => {
          if (which === "completeTask") w.completeTask(uuid, 1, "{}", 1200);
          else if (which === "abortTask") w.abortTask(uuid, 1, "{}", "no", 1200);
          else if (which === "failTask") w.failTask(uuid, 1, 5000, 1, { name: "Error", message: "x" }, 1200);
          else w.iterateTask(uuid, 1, 5000, 1, 1200);
        }),
      ).rejects.toThrow("fault injected at store.endAttempt");
      disarmFaults();
      expect(await store.getTask(uuid)).toEqual(before);
      expect((await store.listAttempts(uuid)).map((a) => a.outcome)).toEqual([null]);
    },
  );

  test("waiting for new code is a failure's write too (store.failTask)", async () => {
    const store = open();
    const uuid = await task(store);
    armFault("store.failTask", "throw", 1, Infinity);
    await expect(store.commit((w) => w.waitForCode(uuid, "no such method", 1200))).rejects.toThrow("fault injected at store.failTask");
  });

  test("an injected fault looks like the disk error it stands for", () => {
    const fault = new InjectedFault("store.writeState");
    expect(fault).toMatchObject({ name: "SqliteError", code: "SQLITE_IOERR", point: "store.writeState", message: "disk I/O error (fault injected at store.writeState)" });
  });
});

describe("what the writes leave", () => {
  test("an abort ends the attempt ABORTED, with its message, as an Aborted", async () => {
    const store = open();
    const uuid = await started(store);
    await store.commit((w) => w.abortTask(uuid, 1, JSON.stringify({ type: "Full" }), "the shelf is full", 1200));
    expect(await store.getTask(uuid)).toMatchObject({ status: "ABORTED", error: '{"type":"Full"}', last_error: "the shelf is full" });
    expect(await store.listAttempts(uuid)).toEqual([expect.objectContaining({ outcome: "ABORTED", error_class: "Aborted", error_message: "the shelf is full", ended_at: 1200 })]);
  });

  test("a failure's last error is its first line only; the attempt keeps the whole message", async () => {
    const store = open();
    const uuid = await started(store);
    await store.commit((w) => w.failTask(uuid, 1, 5000, 1, { name: "TypeError", message: "first line\nsecond line", stack: "TypeError: first line\n    at x" }, 1200));
    expect(await store.getTask(uuid)).toMatchObject({ status: "SCHEDULED_RETRY", last_error: "TypeError: first line", due_at: 5000 });
    expect((await store.listAttempts(uuid))[0]).toMatchObject({ outcome: "FAILED", error_class: "TypeError", error_message: "first line\nsecond line" });
  });

  test("a cancel ends an unfinished task and its open attempt, and says whether it did", async () => {
    const store = open();
    const running = await started(store);
    const said: boolean[] = [];
    await store.commit((w) => w.cancelTask(running, 1200, (changed) => said.push(changed)));
    expect(await store.getTask(running)).toMatchObject({ status: "CANCELLED" });
    expect((await store.listAttempts(running)).map((a) => [a.outcome, a.ended_at])).toEqual([["CANCELLED", 1200]]);
    // Cancelled already: nothing changes, and it says so.
    await store.commit((w) => w.cancelTask(running, 1300, (changed) => said.push(changed)));
    expect(said).toEqual([true, false]);
    expect((await store.getTask(running))!.updated_at).toBe(1200);
  });

  test("a retry says whether it changed the task", async () => {
    const store = open();
    const uuid = await started(store);
    await store.commit((w) => w.failTask(uuid, 1, 999_999, 1, { name: "Error", message: "x" }, 1200));
    const said: boolean[] = [];
    await store.commit((w) => w.retryTask(uuid, 1300, (changed) => said.push(changed)));
    expect(await store.getTask(uuid)).toMatchObject({ due_at: 1300 });
    await store.commit((w) => w.completeTask(uuid, 1, "{}", 1400));
    await store.commit((w) => w.retryTask(uuid, 1500, (changed) => said.push(changed)));
    expect(said).toEqual([true, false]);
  });
});

describe("a list's filters", () => {
  test("by state type, parent, text and cursor, each alone", async () => {
    const store = open();
    const parent = await task(store, { id: "p", method: "flow" });
    const child = await task(store, { id: "c1", method: "put", parent });
    const other = await task(store, { id: "zeta", method: "take" });
    await store.commit((w) => w.insertTask({ uuid: "0192f3a4-0000-7000-8000-ffffffffffff", state_type: "Crate", state_id: "k", method: "put", request: "{}", due_at: 1, created_at: 1, now: 1, parent_uuid: null }));
    const uuids = async (filter: Parameters<SqliteStore["listTasks"]>[0]) => (await store.listTasks(filter)).map((t) => t.uuid);

    expect(await uuids({ stateType: "Crate", limit: 10 })).toEqual(["0192f3a4-0000-7000-8000-ffffffffffff"]);
    expect(await uuids({ parentUuid: parent, limit: 10 })).toEqual([child]);
    expect(await uuids({ text: "zet", limit: 10 })).toEqual([other]);
    // Newest first; before a cursor, the ones made earlier.
    const all = await store.listTasks({ limit: 10 });
    expect(all).toHaveLength(4);
    const second = all[1]!;
    expect((await store.listTasks({ before: second.rowid, limit: 10 })).map((t) => t.uuid)).toEqual(all.slice(2).map((t) => t.uuid));
  });

  test("a uuid's neighbours in the store, for its shortest unshared start", async () => {
    const store = open();
    const a = await task(store);
    const b = await task(store);
    const c = await task(store);
    expect(await store.neighbourUuids(b)).toEqual([a, c]);
    expect(await store.neighbourUuids(a)).toEqual([b]);
    expect(await store.neighbourUuids(c)).toEqual([b]);
  });
});

describe("MEND_FAULTS", () => {
  test("points, actions and hit numbers, with spaces and empty entries", () => {
    expect(parseFaults("")).toEqual([]);
    expect(parseFaults(" store.putMemo=throw@12 ,, commit.end=exit ")).toEqual([
      ["store.putMemo", "throw", 12],
      ["commit.end", "exit", 1],
    ]);
  });

  test.each(["xstore.putMemo=throw@2 junk", "junk store.putMemo=throw", "store.putMemo=throw@", "store.putMemo=throw@x", "=throw"])("'%s' is refused", (spec) => {
    expect(() => parseFaults(spec)).toThrow(`MEND_FAULTS: '${spec}' is not point=throw|exit[@n]`);
  });
});

describe("the SQLite store's reads and its file", () => {
  test("getTasks gives the tasks it finds, in the order asked", async () => {
    const store = open();
    const a = await task(store);
    const b = await task(store);
    expect((await store.getTasks([b, "0192f3a4-0000-7000-8000-000000000000", a])).map((t) => t.uuid)).toEqual([b, a]);
    expect(await store.getTasks([])).toEqual([]);
  });

  test("readState: nothing for an instance never written, its JSON for one written", async () => {
    const store = open();
    expect(await store.readState("Box", "b")).toBeUndefined();
    await store.commit((w) => w.writeState("Box", "b", '{"n":1}', 0, 1));
    expect(await store.readState("Box", "b")).toEqual({ json: '{"n":1}', version: 0 });
  });

  test("a new version is the next number of the store, or the one asked if higher", async () => {
    const store = open();
    expect(await store.lastVersion()).toBe(0);
    const first = await store.newVersion(1, 10);
    await first.recorded;
    expect(first.number).toBe(1);
    const second = await store.newVersion(1, 20);
    await second.recorded;
    expect(second.number).toBe(2);
    const jump = await store.newVersion(7, 30);
    await jump.recorded;
    expect(jump.number).toBe(7);
    expect(await store.lastVersion()).toBe(7);
  });

  test("recovery ends open attempts INTERRUPTED and parks the tasks named, waiting for new code", async () => {
    const store = open();
    const running = await started(store);
    const other = await started(store);
    store.local.recover(1000, [{ taskUuid: running, reason: "it was running when the process stopped" }], 2000);
    expect((await store.listAttempts(running))[0]).toMatchObject({ outcome: "INTERRUPTED", error_message: "The process stopped during this attempt.", ended_at: 1100 });
    expect(await store.getTask(running)).toMatchObject({ status: "SCHEDULED_RETRY", due_at: null, last_error: "it was running when the process stopped" });
    // Not named: interrupted, but not parked.
    expect((await store.listAttempts(other))[0]).toMatchObject({ outcome: "INTERRUPTED" });
    expect(await store.getTask(other)).toMatchObject({ status: "STARTED" });
  });

  test("a store file moved away while open refuses every write from then on, even once it is back", async () => {
    const store = open();
    const uuid = await task(store);
    renameSync(store.location, `${store.location}.away`);
    await expect(task(store)).rejects.toThrow(`The store file ${store.location} was deleted while this runtime had it open; no write is accepted any more.`);
    renameSync(`${store.location}.away`, store.location);
    await expect(store.commit((w) => w.retryTask(uuid, 1200))).rejects.toThrow("was deleted while this runtime had it open");
  });

  test("a store file replaced while open: writes are refused, saying so", async () => {
    const store = open();
    await task(store);
    rmSync(store.location);
    writeFileSync(store.location, "");
    await expect(task(store)).rejects.toThrow(`The store file ${store.location} was replaced while this runtime had it open`);
  });

  test("close lets the store go (its holder file too), and closing again does nothing", async () => {
    const path = join(tempDir(), "mend.sqlite");
    const store = new SqliteStore(path);
    expect(existsSync(`${path}.holder`)).toBe(true);
    await store.close();
    expect(existsSync(`${path}.holder`)).toBe(false);
    // Held by nobody: it opens again, and a second close of the first does not take the new holder's file.
    const again = new SqliteStore(path);
    stores.push(again);
    await store.close();
    expect(existsSync(`${path}.holder`)).toBe(true);
    expect(await again.lastVersion()).toBe(0);
  });
});
