// Several servers on one PostgreSQL store: runtimes started on the same database share the
// work. Runtimes in this process share nothing but the database (each has its own pool, its
// own claims, locks and news); the ones that are killed or frozen run in child processes.
import pg from "pg";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { Cancelled, Runtime, type TaskId } from "mend";
import { aborted, app, Cell, CellServicer, entered, overlaps, Pair, PairServicer, Slow } from "./apps/servers.js";
import { bundleApp, runApp } from "./helpers/child.js";
import { next, start, within } from "./helpers/runtimes.js";
import { newSchemaUrl } from "./helpers/stores.js";
import { tempDir } from "./helpers/temp.js";
import { PG_MIGRATIONS } from "../src/store/pg-migrations.js";
import { PgStore } from "../src/store/pg-store.js";

const entry = fileURLToPath(new URL("./apps/servers.ts", import.meta.url));
const LEASE_MS = 1000;

async function sql<T>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text, values)).rows as T[];
  } finally {
    await client.end();
  }
}

describe("two servers share the work", () => {
  test("writers of one instance never overlap across servers, transactions across instances commit whole, every task runs once", async () => {
    const store = await newSchemaUrl();
    // Few slots each, so that both servers claim tasks.
    const a = await start(app(), { store, concurrency: 8 });
    const b = await start(app(), { store, concurrency: 8 });
    overlaps.length = 0;
    entered.clear();
    const adds = Array.from({ length: 240 }, (_, i) => ({ cell: `c${i % 3}`, token: `t${i}`, on: i % 2 ? a : b }));
    const moves = Array.from({ length: 40 }, (_, i) => ({ from: `c${i % 4}`, to: `c${(i + 1 + (i % 3)) % 4}`, amount: i + 1, on: i % 2 ? b : a }));
    const spawned = await Promise.all([
      ...adds.map((x) => Cell.ref(x.cell).spawn().add(x.on.context(), { token: x.token, holdMs: Number(x.token.slice(1)) % 4 })),
      ...moves.map((m, i) => Pair.ref(`p${i}`).spawn().move(m.on.context(), { from: m.from, to: m.to, amount: m.amount })),
    ]);
    await within(Promise.all(spawned.map(({ task }) => task)), "every task to complete", 60_000);

    expect(overlaps).toEqual([]);
    const expected = new Map<string, number>();
    for (const x of adds) expected.set(x.cell, (expected.get(x.cell) ?? 0) + 1);
    for (const m of moves) {
      expected.set(m.from, (expected.get(m.from) ?? 0) - m.amount);
      expected.set(m.to, (expected.get(m.to) ?? 0) + m.amount);
    }
    for (const cell of ["c0", "c1", "c2", "c3"]) {
      const { n, tokens } = await Cell.ref(cell).get(a.context());
      expect(n, cell).toBe(expected.get(cell) ?? 0);
      const own = tokens.filter((t) => !t.startsWith("move:"));
      expect(new Set(own).size, `${cell}: a token applied twice`).toBe(own.length);
      expect(own.sort()).toEqual(adds.filter((x) => x.cell === cell).map((x) => x.token).sort());
    }
    // Each task completed in one attempt or more, once; and both servers ran some.
    const versions = new Set<string>();
    for (const { task } of spawned) {
      const { task: info, attempts } = await b.getTask(task.taskId.taskUuid);
      expect(info.status).toBe("COMPLETED");
      expect(attempts.filter((x) => x.outcome === "COMPLETED")).toHaveLength(1);
      versions.add(attempts.at(-1)!.version);
    }
    expect([...versions].sort()).toEqual([a.version, b.version].sort());
  }, 90_000);

  test("a task's end wakes its waiters on every server", async () => {
    const store = await newSchemaUrl();
    const a = await start(app(), { store });
    // b's code has no Cell: only a runs the task.
    const b = await start(app([PairServicer]), { store });
    const { task } = await Cell.ref("w").spawn({ when: { ms: 200 } }).add(a.context(), { token: "w" });
    const waited = b.wait(task.taskId);
    expect(await within(waited, "b's waiter")).toEqual({ status: "COMPLETED", response: { n: 1 } });
  });

  test("a cancel on server A stops the attempt running on server B", async () => {
    const store = await newSchemaUrl();
    const a = await start(app([CellServicer, PairServicer]), { store });
    // Only b's code has Slow: the task runs on b.
    const b = await start(app(), { store });
    const started = next(b, "attempt:start");
    const { task } = await Slow.ref("s").spawn().wait(b.context());
    await started;
    expect(await a.cancel(task.taskId.taskUuid)).toBe(true);
    expect(await within(aborted.reason, "the attempt on b to see its signal abort")).toBeInstanceOf(Cancelled);
    // b's waiter hears of it too.
    await expect(within(task, "b's waiter")).rejects.toBeInstanceOf(Cancelled);
    const { task: info, attempts } = await b.getTask(task.taskId.taskUuid);
    expect(info.status).toBe("CANCELLED");
    expect(attempts.map((x) => x.outcome)).toEqual(["CANCELLED"]);
  });
});

/** A server in a child process whose Pair('p').move has started and waits for `gate` (a file) inside its transaction. */
async function moveInAChild() {
  const store = await newSchemaUrl();
  const dir = tempDir();
  const gate = join(dir, "gate");
  const bundle = await bundleApp(entry, join(dir, "app.mjs"));
  const child = runApp(store, bundle, [{ target: { stateType: "Pair", stateId: "p", method: "move" }, request: { from: "x", to: "y", amount: 5, gate } }], {
    MEND_RUNTIME_OPTIONS: JSON.stringify({ leaseMs: LEASE_MS }),
  });
  const { taskId } = await child.line<{ event: string; taskId: TaskId }>((l) => l.event === "attempt:start");
  return { store, gate, child, taskId };
}

describe("a server that dies or freezes", () => {
  test("a killed server's task runs again on another once its lease has ended; the lost attempt is INTERRUPTED", async () => {
    const { store, gate, child, taskId } = await moveInAChild();
    child.kill("SIGKILL");
    await child;
    writeFileSync(gate, "");
    const b = await start(app(), { store, leaseMs: LEASE_MS });
    expect(await within(Pair.MoveTask.retrieve(b.context(), { taskId }), "b to run the task again")).toEqual({ moves: 1 });
    const { attempts } = await b.getTask(taskId.taskUuid);
    expect(attempts.map((x) => x.outcome)).toEqual(["INTERRUPTED", "COMPLETED"]);
    // Not before the lease the killed server held had ended.
    expect(attempts[1]!.startedAt - attempts[0]!.startedAt).toBeGreaterThanOrEqual(LEASE_MS);
    expect(await Cell.ref("x").get(b.context())).toEqual({ n: -5, tokens: ["move:p"] });
    expect(await Cell.ref("y").get(b.context())).toEqual({ n: 5, tokens: ["move:p"] });
  });

  test("a transaction claimed by two servers (the first frozen past its lease) commits once", async () => {
    const { store, gate, child, taskId } = await moveInAChild();
    // Frozen inside the transaction, holding x: its lease on the task and on x end.
    process.kill(child.pid!, "SIGSTOP");
    writeFileSync(gate, "");
    const b = await start(app(), { store, leaseMs: LEASE_MS });
    expect(await within(Pair.MoveTask.retrieve(b.context(), { taskId }), "b to run the transaction")).toEqual({ moves: 1 });
    // Thawed, the first server finishes its run of the transaction: the store refuses its end.
    process.kill(child.pid!, "SIGCONT");
    const lost = await child.line<{ event: string; taskId: TaskId; reason: string }>((l) => l.event === "attempt:lost");
    expect(lost.taskId).toEqual(taskId);
    const { attempts } = await b.getTask(taskId.taskUuid);
    expect(attempts.map((x) => x.outcome)).toEqual(["INTERRUPTED", "COMPLETED"]);
    expect(await Cell.ref("x").get(b.context())).toEqual({ n: -5, tokens: ["move:p"] });
    expect(await Cell.ref("y").get(b.context())).toEqual({ n: 5, tokens: ["move:p"] });
    expect(await Pair.ref("p").move(b.context(), { from: "y", to: "x", amount: 5 })).toEqual({ moves: 2 });
  });
});

describe("a rolling deploy", () => {
  test("a task whose method one server's code lacks runs on a server that has it, and waits while none does", async () => {
    const store = await newSchemaUrl();
    const old = await start(app([CellServicer]), { store });
    const fresh = await start(app(), { store });
    const spawned = await Promise.all(Array.from({ length: 20 }, (_, i) => Pair.ref(`p${i}`).spawn().move(fresh.context(), { from: "x", to: "y", amount: 1 })));
    const waiting: unknown[] = [];
    old.on("task:waiting", (w) => waiting.push(w));
    await within(Promise.all(spawned.map(({ task }) => task)), "the moves");
    for (const { task } of spawned) {
      const { attempts } = await old.getTask(task.taskId.taskUuid);
      expect(attempts.map((x) => [x.version, x.outcome])).toEqual([[fresh.version, "COMPLETED"]]);
    }
    expect(waiting).toEqual([]);

    // The new server goes: a task due now waits for code, and runs once a server that has it starts.
    const { task: later } = await Pair.ref("later").spawn({ when: { ms: 300 } }).move(fresh.context(), { from: "x", to: "y", amount: 1 });
    await fresh.stop();
    const waits = await next<{ taskId: TaskId; reason: string }>(old, "task:waiting");
    expect(waits.taskId).toEqual(later.taskId);
    expect(waits.reason).toBe(`The state type Pair does not exist in code version ${old.version}; the task waits for a version that has it.`);
    expect((await old.getTask(later.taskId.taskUuid)).task).toMatchObject({ status: "SCHEDULED_RETRY", dueAt: null, attempts: 0 });
    const third = await start(app(), { store });
    expect(await within(Pair.MoveTask.retrieve(third.context(), { taskId: later.taskId }), "the waiting task")).toEqual({ moves: 1 });
    expect((await third.getTask(later.taskId.taskUuid)).attempts.map((x) => x.version)).toEqual([third.version]);
  });
});

describe("a state write is checked against the version it was computed from", () => {
  test("a write computed from a version that never committed changes nothing, even where the instance does not exist yet", async () => {
    const store = await newSchemaUrl();
    const db = await PgStore.open(store, { leaseMs: LEASE_MS });
    try {
      // Computed from version 41, which no write made: refused, and no instance is created.
      await expect(db.commit((w) => w.writeState("Cell", "never", JSON.stringify({ n: 2, tokens: [] }), 41, 42))).rejects.toMatchObject({ code: "STATE_MOVED" });
      expect(await db.readState("Cell", "never")).toBeUndefined();
      // Computed from nothing: creates it; then a write computed from that version replaces it, and one from a stale version does not.
      await db.commit((w) => w.writeState("Cell", "c", JSON.stringify({ n: 1, tokens: [] }), 0, 7));
      await expect(db.commit((w) => w.writeState("Cell", "c", JSON.stringify({ n: 9, tokens: [] }), 0, 8))).rejects.toMatchObject({ code: "STATE_MOVED" });
      await db.commit((w) => w.writeState("Cell", "c", JSON.stringify({ n: 2, tokens: [] }), 7, 9));
      await expect(db.commit((w) => w.writeState("Cell", "c", JSON.stringify({ n: 5, tokens: [] }), 7, 10))).rejects.toMatchObject({ code: "STATE_MOVED" });
      expect(await db.readState("Cell", "c")).toEqual({ json: JSON.stringify({ n: 2, tokens: [] }), version: 9 });
    } finally {
      await db.close();
    }
  });
});

describe("opening a PostgreSQL store", () => {
  test("servers that start at the same moment on an empty schema migrate it once", async () => {
    const store = await newSchemaUrl();
    const runtimes = await Promise.all([1, 2, 3].map(() => start(app(), { store })));
    expect(new Set(runtimes.map((r) => r.version)).size).toBe(3);
    expect(await sql(store, "SELECT application_id, schema_version FROM mend_store")).toEqual([{ application_id: "1835363940", schema_version: PG_MIGRATIONS.length }]);
  });

  test("a schema that holds other tables is refused and left untouched", async () => {
    const store = await newSchemaUrl();
    await sql(store, "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (7)");
    await expect(Runtime.start(app(), { store })).rejects.toThrow(/holds tables that are not a mend store's; it was left untouched/);
    expect(await sql(store, "SELECT id FROM orders")).toEqual([{ id: 7 }]);
    expect(await sql(store, "SELECT to_regclass('tasks') AS t")).toEqual([{ t: null }]);
  });

  test("a store written by a newer mend is refused and left untouched", async () => {
    const store = await newSchemaUrl();
    const first = await start(app(), { store });
    await Cell.ref("kept").add(first.context(), { token: "k" });
    await first.stop();
    await sql(store, "UPDATE mend_store SET schema_version = 99");
    await expect(Runtime.start(app(), { store })).rejects.toThrow(`schema version 99, written by a newer mend (this one knows up to ${PG_MIGRATIONS.length}); it was left untouched`);
    expect(await sql(store, "SELECT state FROM states")).toEqual([{ state: JSON.stringify({ n: 1, tokens: ["k"] }) }]);
  });

  test("a server that cannot be reached is one clear error", async () => {
    await expect(Runtime.start(app(), { store: "postgresql://mend@127.0.0.1:1/none" })).rejects.toThrow(/^Cannot connect to the store postgresql:\/\/mend@127\.0\.0\.1:1\/none: /);
  });
});
