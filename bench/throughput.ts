// 2. Task throughput: a writer schedules N tasks, each a writer that increments one
// counter; tasks completed per second end to end, with the default durability
// (synchronous=FULL). Baseline: a raw better-sqlite3 loop, one transaction per task.
import Database from "better-sqlite3";
import { Runtime } from "mend";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { app, Counter, Driver } from "./lib/bench-app.js";
import { cleanUp, tempDir } from "./lib/cleanup.js";
import { ratioOf, row, type BenchResult } from "./lib/report.js";
import type { BenchContext } from "./main.js";

const N = 40_000;
const BATCH = 2_000;
/** Tasks for the figures that pay one fsync (or more) per task: a few seconds each. */
const N_SERIAL = 3_000;

interface Run {
  tasks: number;
  seconds: number;
  perSecond: number;
  counter: number;
}

/** Checks from the store itself that every task completed after exactly one attempt. */
function checkStore(path: string, n: number): void {
  const db = new Database(path, { readonly: true });
  try {
    const done = db.prepare(`SELECT count(*) FROM tasks WHERE method = 'increment' AND status = 'COMPLETED' AND attempts = 1`).pluck().get();
    const attempts = db.prepare(`SELECT count(*) FROM attempts`).pluck().get();
    if (done !== n || attempts !== n) throw new Error(`the store has ${String(done)} completed tasks and ${String(attempts)} attempts; expected ${n} of each`);
  } finally {
    db.close();
  }
}

/** N tasks scheduled by writers in batches; all run with the runtime's default concurrency (or `concurrency`). */
async function scheduled(n: number, concurrency?: number): Promise<Run> {
  const directory = tempDir("throughput");
  const rt = await Runtime.start(app, { directory, synchronous: "FULL", ...(concurrency ? { concurrency } : {}) });
  let path = "";
  try {
    path = rt.path;
    const ctx = rt.context();
    let finished = 0;
    const done = new Promise<void>((resolve) => rt.on("task:finished", () => ++finished === n && resolve()));
    const t0 = performance.now();
    for (let i = 0; i < n / BATCH; i++) await Driver.ref("driver").scheduleMany(ctx, { count: Math.min(BATCH, n - i * BATCH), counter: "c" });
    await done;
    const seconds = (performance.now() - t0) / 1000;
    const counter = (await Counter.ref("c").value(ctx)).n;
    return { tasks: n, seconds, perSecond: n / seconds, counter };
  } finally {
    await rt.stop();
    if (path) checkStore(path, n);
  }
}

/** Tasks spawned from outside and awaited one at a time: nothing to batch. */
async function oneAtATime(n: number): Promise<Run> {
  const rt = await Runtime.start(app, { directory: tempDir("serial"), synchronous: "FULL" });
  try {
    const target = { stateType: "Counter", stateId: "c", method: "increment" };
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await rt.wait(await rt.spawn(target, {}));
    const seconds = (performance.now() - t0) / 1000;
    const counter = (await Counter.ref("c").value(rt.context())).n;
    return { tasks: n, seconds, perSecond: n / seconds, counter };
  } finally {
    await rt.stop();
  }
}

/** The baseline: insert, claim and complete each task, and increment the counter, one transaction per task. */
function rawLoop(n: number): Run {
  const db = new Database(join(tempDir("raw"), "raw.sqlite"));
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.exec(`CREATE TABLE tasks (id INTEGER PRIMARY KEY, state_id TEXT NOT NULL, method TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL);
      CREATE TABLE counters (id TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
      INSERT INTO counters VALUES ('c', 0);`);
    const insert = db.prepare(`INSERT INTO tasks (state_id, method, status, updated_at) VALUES ('c', 'increment', 'SCHEDULED', ?)`);
    const claim = db.prepare(`UPDATE tasks SET status = 'STARTED', attempts = attempts + 1, updated_at = ? WHERE id = (SELECT id FROM tasks WHERE status = 'SCHEDULED' ORDER BY id LIMIT 1) RETURNING id`).pluck();
    const increment = db.prepare(`UPDATE counters SET n = n + 1 WHERE id = 'c'`);
    const complete = db.prepare(`UPDATE tasks SET status = 'COMPLETED', updated_at = ? WHERE id = ?`);
    const one = db.transaction(() => {
      insert.run(Date.now());
      const id = claim.get(Date.now());
      increment.run();
      complete.run(Date.now(), id);
    });
    const t0 = performance.now();
    for (let i = 0; i < n; i++) one.immediate();
    const seconds = (performance.now() - t0) / 1000;
    const counter = db.prepare(`SELECT n FROM counters WHERE id = 'c'`).pluck().get() as number;
    return { tasks: n, seconds, perSecond: n / seconds, counter };
  } finally {
    db.close();
  }
}

function exact(run: Run, what: string): void {
  if (run.counter !== run.tasks) throw new Error(`${what}: the counter is ${run.counter} after ${run.tasks} tasks`);
}

export async function throughput(ctx: BenchContext): Promise<BenchResult> {
  try {
    const raw = rawLoop(N_SERIAL);
    exact(raw, "raw loop");
    ctx.log(`  raw better-sqlite3, one transaction per task: ${raw.perSecond.toFixed(0)} tasks/s`);
    const grouped = await scheduled(N);
    exact(grouped, "group commit");
    ctx.log(`  mend, ${N} tasks: ${grouped.perSecond.toFixed(0)} tasks/s`);
    const serial = await oneAtATime(N_SERIAL);
    exact(serial, "one at a time");
    ctx.log(`  mend, spawned and awaited one at a time: ${serial.perSecond.toFixed(0)} tasks/s`);
    const single = await scheduled(N_SERIAL, 1);
    exact(single, "concurrency 1");
    ctx.log(`  mend, concurrency 1: ${single.perSecond.toFixed(0)} tasks/s`);
    const base = { label: "raw SQLite, 1 tx/task", value: raw.perSecond };
    return {
      rows: [
        row({ benchmark: "throughput", figure: `throughput, durable (${N.toLocaleString("en-US")} tasks)`, value: grouped.perSecond, unit: "tasks/s", target: { op: ">=", value: 50_000 }, baseline: base, ratio: ratioOf(grouped.perSecond, raw.perSecond, ">=") }),
        row({ benchmark: "throughput", figure: "throughput, each task alone (spawn + await)", value: serial.perSecond, unit: "tasks/s", target: { op: ">=", value: 2_000 }, baseline: base, ratio: ratioOf(serial.perSecond, raw.perSecond, ">=") }),
        row({ benchmark: "throughput", figure: "throughput, concurrency 1", value: single.perSecond, unit: "tasks/s", target: { op: ">=", value: 2_000 }, baseline: base, ratio: ratioOf(single.perSecond, raw.perSecond, ">=") }),
      ],
      details: { raw, grouped, serial, single },
      notes: [
        `throughput: Runtime.start in-process, synchronous=FULL; ${N} Counter.increment writer tasks scheduled by writers in batches of ${BATCH}; counter = N and one attempt per task checked in the store.`,
        `throughput: "each task alone" spawns a task and awaits it before the next (${N_SERIAL} tasks); "concurrency 1" runs ${N_SERIAL} scheduled tasks one after another.`,
      ],
    };
  } finally {
    await cleanUp();
  }
}
