// 7. PostgreSQL, several servers: trivial writer tasks on one local PostgreSQL with durable
// settings (fsync, synchronous_commit and full_page_writes on), run by one and by two servers
// (each a runtime on the store in a process of its own, as `mend serve --store URL`); and
// add → start latency. The benchmark starts its own PostgreSQL from the machine's binaries.
import { execa, type ResultPromise } from "execa";
import { join } from "node:path";
import { createInterface } from "node:readline";
import pg from "pg";
import { postgresBinaries, startPostgres, type PostgresServer } from "../test/helpers/postgres-server.js";
import { cleanUp, stopChild, track } from "./lib/cleanup.js";
import { row, type BenchResult } from "./lib/report.js";
import { summarise, type Summary } from "./lib/stats.js";
import type { BenchContext } from "./main.js";

/** As many jobs as the peers' throughput runs (../shared/peers). */
const N = 20_000;
const BATCH = 2_000;
const LATENCY_SAMPLES = 300;
const STALL_MS = 60_000;
/** graphile-worker's best setting on this machine kind (performance.md). */
const TARGET = 17_000;

const now = () => performance.timeOrigin + performance.now();

type Event = { ready?: true; scheduled?: number; finished?: number; spawned?: string; started?: string; t?: number };

/** One server: a runtime on the store, in a child process (bench/lib/pg-child.mjs). */
class Server {
  readonly #child: ResultPromise;
  readonly #listeners = new Set<(e: Event) => void>();
  finished = 0;
  lastFinish = 0;

  constructor(script: string, url: string) {
    this.#child = track(execa("node", [script, url], { stdin: "pipe", stdout: "pipe", stderr: "inherit", buffer: false }));
    void this.#child.catch(() => {});
    createInterface({ input: this.#child.stdout! }).on("line", (line) => {
      const e = JSON.parse(line) as Event;
      if (e.finished !== undefined) {
        this.finished = e.finished;
        this.lastFinish = e.t!;
      }
      for (const l of this.#listeners) l(e);
    });
  }

  send(command: object): void {
    this.#child.stdin!.write(`${JSON.stringify(command)}\n`);
  }

  /** The next event that `match` accepts. */
  next(match: (e: Event) => boolean): Promise<Event> {
    return new Promise((resolve, reject) => {
      const listener = (e: Event) => {
        if (!match(e)) return;
        this.#listeners.delete(listener);
        resolve(e);
      };
      this.#listeners.add(listener);
      void this.#child.then(
        () => reject(new Error("a server exited")),
        (e: Error) => reject(new Error(`a server failed: ${e.message}`)),
      );
    });
  }

  on(listener: (e: Event) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async stop(): Promise<void> {
    this.send({ cmd: "stop" });
    await stopChild(this.#child, 15_000);
  }
}

/** A fresh schema for one run, and the store URL naming it. */
async function freshStore(server: PostgresServer, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA ${name}`);
  } finally {
    await client.end();
  }
  return `${server.url}?options=${encodeURIComponent(`-c search_path=${name}`)}`;
}

async function startServers(script: string, url: string, count: number): Promise<Server[]> {
  // One first, so that the others find the store migrated (they would wait for its lock anyway).
  const first = new Server(script, url);
  await first.next((e) => e.ready === true);
  const rest = Array.from({ length: count - 1 }, () => new Server(script, url));
  await Promise.all(rest.map((s) => s.next((e) => e.ready === true)));
  return [first, ...rest];
}

interface Throughput {
  servers: number;
  tasks: number;
  seconds: number;
  perSecond: number;
  /** Increments each server ran. */
  share: number[];
}

/** N increments scheduled by writers on the first server, run by whichever server is free; checked exactly once in the store. */
async function throughput(script: string, server: PostgresServer, count: number): Promise<Throughput> {
  const schema = `bench_tp${count}`;
  const url = await freshStore(server, schema);
  const servers = await startServers(script, url, count);
  try {
    let progress = Date.now();
    let stall: NodeJS.Timeout | undefined;
    const all = new Promise<void>((resolve, reject) => {
      for (const s of servers)
        s.on(() => {
          progress = Date.now();
          if (servers.reduce((sum, x) => sum + x.finished, 0) === N) resolve();
        });
      // A benchmark that stops making progress fails rather than hangs.
      stall = setInterval(() => Date.now() - progress > STALL_MS && reject(new Error(`no task ended for ${STALL_MS / 1000} s (${servers.map((x) => x.finished).join(" + ")} of ${N})`)), 1000);
    });
    const t0 = now();
    servers[0]!.send({ cmd: "schedule", n: N, batch: BATCH, prefix: "c" });
    await all.finally(() => clearInterval(stall));
    const seconds = (Math.max(...servers.map((s) => s.lastFinish)) - t0) / 1000;
    return { servers: count, tasks: N, seconds, perSecond: N / seconds, share: servers.map((s) => s.finished) };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await checkExactlyOnce(server, schema);
  }
}

/** From the store itself: every increment completed after one attempt, and every counter is 1. */
async function checkExactlyOnce(server: PostgresServer, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  try {
    const one = async (sql: string) => Number((await client.query<{ n: string }>(sql)).rows[0]!.n);
    const done = await one(`SELECT count(*) AS n FROM ${schema}.tasks WHERE method = 'increment' AND status = 'COMPLETED' AND attempts = 1`);
    const attempts = await one(`SELECT count(*) AS n FROM ${schema}.attempts a JOIN ${schema}.tasks t ON t.uuid = a.task_uuid WHERE t.method = 'increment'`);
    const counters = await one(`SELECT count(*) AS n FROM ${schema}.states WHERE state_type = 'Counter' AND (state::jsonb ->> 'n')::int = 1`);
    const total = await one(`SELECT coalesce(sum((state::jsonb ->> 'n')::int), 0) AS n FROM ${schema}.states WHERE state_type = 'Counter'`);
    if (done !== N || attempts !== N || counters !== N || total !== N)
      throw new Error(`${schema}: ${done} increments completed after one attempt, ${attempts} attempts, ${counters} counters at 1, counters sum to ${total}; expected ${N} of each`);
  } finally {
    await client.end();
  }
}

/** Spawn call returning → the attempt starting (on whichever server), one task at a time, in ms. */
async function latency(script: string, server: PostgresServer, count: number): Promise<Summary> {
  const url = await freshStore(server, `bench_lat${count}`);
  const servers = await startServers(script, url, count);
  try {
    const samples: number[] = [];
    // The first few warm the connections and the code up.
    for (let i = -20; i < LATENCY_SAMPLES; i++) {
      const id = `lat${i + 20}`;
      const started = new Map<string, number>();
      let wanted: string | undefined;
      let resolveStart!: (t: number) => void;
      const start = new Promise<number>((resolve) => (resolveStart = resolve));
      const offs = servers.map((s) =>
        s.on((e) => {
          if (e.started === undefined) return;
          started.set(e.started, e.t!);
          if (e.started === wanted) resolveStart(e.t!);
        }),
      );
      const spawner = servers[i % count === 0 ? 0 : servers.length - 1]!;
      const spawned = spawner.next((e) => e.spawned !== undefined);
      spawner.send({ cmd: "spawn", id });
      const s = await spawned;
      wanted = s.spawned;
      const early = started.get(s.spawned!);
      const t = early ?? (await start);
      for (const off of offs) off();
      if (i >= 0) samples.push(t - s.t!);
    }
    return summarise(samples);
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

export async function postgres(ctx: BenchContext): Promise<BenchResult> {
  const bin = postgresBinaries();
  if (!bin) {
    ctx.log("  postgres: skipped, no PostgreSQL binaries found (apt-get install -y postgresql, or MEND_PG_BIN=/path/to/bin)");
    return { rows: [], details: { skipped: "no PostgreSQL binaries" }, notes: ["postgres: skipped, no PostgreSQL binaries on this machine."] };
  }
  const script = join(ctx.root, "bench/lib/pg-child.mjs");
  const server = await startPostgres({ durable: true });
  try {
    const one = await throughput(script, server, 1);
    ctx.log(`  one server: ${one.perSecond.toFixed(0)} tasks/s (${one.seconds.toFixed(2)} s)`);
    const two = await throughput(script, server, 2);
    ctx.log(`  two servers: ${two.perSecond.toFixed(0)} tasks/s (${two.seconds.toFixed(2)} s; ${two.share.join(" + ")})`);
    const alone = await latency(script, server, 1);
    ctx.log(`  add → start, one server: p50 ${alone.p50} ms, p95 ${alone.p95} ms`);
    const pair = await latency(script, server, 2);
    ctx.log(`  add → start, two servers: p50 ${pair.p50} ms, p95 ${pair.p95} ms`);
    const base = { label: "graphile-worker, best", value: TARGET };
    return {
      rows: [
        row({ benchmark: "postgres", figure: `PostgreSQL, one server (${N.toLocaleString("en-US")} writer tasks)`, value: one.perSecond, unit: "tasks/s", target: { op: ">=", value: TARGET }, baseline: base, ratio: one.perSecond / TARGET }),
        row({ benchmark: "postgres", figure: "PostgreSQL, two servers", value: two.perSecond, unit: "tasks/s", target: { op: ">=", value: TARGET }, baseline: base, ratio: two.perSecond / TARGET }),
        row({ benchmark: "postgres", figure: "PostgreSQL, add → start p50, one server", value: alone.p50, unit: "ms" }),
        row({ benchmark: "postgres", figure: "PostgreSQL, add → start p95, one server", value: alone.p95, unit: "ms" }),
        row({ benchmark: "postgres", figure: "PostgreSQL, add → start p50, two servers", value: pair.p50, unit: "ms" }),
        row({ benchmark: "postgres", figure: "PostgreSQL, add → start p95, two servers", value: pair.p95, unit: "ms" }),
      ],
      details: { one, two, latency: { one: alone, two: pair } },
      notes: [
        `postgres: a PostgreSQL of the benchmark's own (${bin}), fsync, synchronous_commit and full_page_writes on; each server a runtime on the store in a process of its own. ${N.toLocaleString("en-US")} Counter.increment writer tasks, each on a Counter of its own, scheduled by writers on the first server in batches of ${BATCH.toLocaleString("en-US")}; from the first schedule to the last task's end; one completed attempt per task and every counter at 1 checked in the store.`,
        `postgres: add → start is from rt.spawn returning to attempt:start, one task at a time (${LATENCY_SAMPLES} after 20 to warm up); with two servers, spawned on either and started on whichever claims it.`,
      ],
    };
  } finally {
    await server.stop();
    await cleanUp();
  }
}
