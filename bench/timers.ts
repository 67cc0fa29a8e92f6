// 3. Timer precision: 1,000 tasks with `when` spread over 2 s; lateness = the attempt's
// startedAt in the store − the due time. Idle, then while 1,000 other tasks/s run. And
// how soon an immediate task starts after the spawn call returns.
import Database from "better-sqlite3";
import { Runtime } from "mend";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { app } from "./lib/bench-app.js";
import { cleanUp, tempDir } from "./lib/cleanup.js";
import { ratioOf, row, type BenchResult } from "./lib/report.js";
import { summarise, type Summary } from "./lib/stats.js";
import type { BenchContext } from "./main.js";

const TIMED = 1_000;
const SPREAD_MS = 2_000;
/** Spawning 1,000 tasks takes a moment: the first is due this long after. */
const LEAD_MS = 300;
const LOAD_PER_SECOND = 1_000;
const IMMEDIATE = 500;

const increment = (id: string) => ({ stateType: "Counter", stateId: id, method: "increment" });

/** Lateness in ms of TIMED tasks due over SPREAD_MS; with `load`, 1,000 other tasks/s run meanwhile. */
async function lateness(rt: Runtime, label: string, load: boolean): Promise<number[]> {
  let finished = 0;
  const done = new Promise<void>((resolve) => rt.on("task:finished", ({ taskId }) => taskId.stateId.startsWith(label) && ++finished === TIMED && resolve()));
  const base = Date.now() + LEAD_MS;
  const due = Array.from({ length: TIMED }, (_, i) => base + Math.floor((i * SPREAD_MS) / TIMED));
  // Each on its own Counter, so that none waits for another's lock.
  const ids = await Promise.all(due.map((at, i) => rt.spawn(increment(`${label}${i}`), {}, new Date(at))));
  let loading = load;
  const background = (async () => {
    let n = 0;
    // 10 tasks every 10 ms, on 100 counters.
    while (loading) {
      for (let i = 0; i < LOAD_PER_SECOND / 100; i++) void rt.spawn(increment(`load${n++ % 100}`), {});
      await sleep(10);
    }
  })();
  await done;
  loading = false;
  await background;
  return Promise.all(ids.map(async (id, i) => {
    const [first] = (await rt.getTask(id.taskUuid)).attempts;
    return first!.startedAt - due[i]!;
  }));
}

/** The baseline: Node's own setTimeout, due at the same times. */
async function setTimeoutLateness(): Promise<number[]> {
  const base = Date.now() + LEAD_MS;
  const due = Array.from({ length: TIMED }, (_, i) => base + Math.floor((i * SPREAD_MS) / TIMED));
  return Promise.all(due.map((at) => new Promise<number>((resolve) => setTimeout(() => resolve(Date.now() - at), at - Date.now()))));
}

/** From the spawn call returning to the attempt:start event, in ms, one task at a time. */
async function immediateStart(rt: Runtime): Promise<number[]> {
  const started = new Map<string, number>();
  const off = rt.on("attempt:start", ({ taskId }) => started.set(taskId.taskUuid, performance.now()));
  const latencies: number[] = [];
  try {
    for (let i = 0; i < IMMEDIATE; i++) {
      const taskId = await rt.spawn(increment("now"), {});
      const returned = performance.now();
      await rt.wait(taskId);
      latencies.push(started.get(taskId.taskUuid)! - returned);
    }
  } finally {
    off();
  }
  return latencies;
}

/** The floor under "start": one durable SQLite commit (WAL, synchronous=FULL), in ms. */
function durableCommit(): number[] {
  const db = new Database(join(tempDir("commit"), "commit.sqlite"));
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, at INTEGER)");
    const insert = db.prepare("INSERT INTO t (at) VALUES (?)");
    const times: number[] = [];
    for (let i = 0; i < IMMEDIATE; i++) {
      const t0 = performance.now();
      db.transaction(() => insert.run(Date.now())).immediate();
      times.push(performance.now() - t0);
    }
    return times;
  } finally {
    db.close();
  }
}

export async function timers(_ctx: BenchContext): Promise<BenchResult> {
  const rt = await Runtime.start(app, { directory: tempDir("timers"), synchronous: "FULL" });
  try {
    const baseline = summarise(await setTimeoutLateness());
    const idle = summarise(await lateness(rt, "idle", false));
    const loaded = summarise(await lateness(rt, "busy", true));
    const immediate = summarise(await immediateStart(rt));
    const commit = summarise(durableCommit());
    const early = (s: Summary) => Math.min(0, s.min);
    const setTimeoutBase = (v: number) => ({ label: "setTimeout, idle", value: v });
    return {
      rows: [
        row({ benchmark: "timers", figure: "timer lateness min (never early)", value: Math.min(idle.min, loaded.min), unit: "ms", target: { op: ">=", value: 0 }, baseline: setTimeoutBase(baseline.min) }),
        row({ benchmark: "timers", figure: "timer lateness p50, idle", value: idle.p50, unit: "ms", baseline: setTimeoutBase(baseline.p50) }),
        row({ benchmark: "timers", figure: "timer lateness p99, idle", value: idle.p99, unit: "ms", target: { op: "<=", value: 5 }, baseline: setTimeoutBase(baseline.p99) }),
        row({ benchmark: "timers", figure: "timer lateness max, idle", value: idle.max, unit: "ms", baseline: setTimeoutBase(baseline.max) }),
        row({ benchmark: "timers", figure: "timer lateness p99, 1,000 tasks/s", value: loaded.p99, unit: "ms", target: { op: "<=", value: 50 }, baseline: setTimeoutBase(baseline.p99) }),
        row({ benchmark: "timers", figure: "immediate task start p50", value: immediate.p50, unit: "ms", target: { op: "<=", value: 1 }, baseline: { label: "1 durable commit", value: commit.p50 }, ratio: ratioOf(immediate.p50, commit.p50, "<=") }),
      ],
      details: { setTimeout: baseline, idle, loaded, immediate, durableCommit: commit, earliest: Math.min(early(idle), early(loaded)) },
      notes: [
        `timers: ${TIMED} tasks due over ${SPREAD_MS / 1000} s (Runtime.start in-process); lateness = attempt startedAt (store, Date.now() ms) − due; baseline: Node's setTimeout due at the same times.`,
        `timers: immediate start = spawn() returning → "attempt:start" (performance.now()), ${IMMEDIATE} tasks one at a time; baseline: one durable SQLite commit.`,
      ],
    };
  } finally {
    await rt.stop();
    await cleanUp();
  }
}
