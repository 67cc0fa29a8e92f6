// The crash suite's driver: a seeded workload of tasks sent over HTTP to a real runtime
// process (`mend serve`, or the runtime child of `mend dev run`), SIGKILLed at random
// moments and restarted on the same store; then every task, counter and logged effect
// is checked against the store, opened with better-sqlite3 once the runtime is gone.
import Database from "better-sqlite3";
import pg from "pg";
import { execa, type ResultPromise } from "execa";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterEach, expect } from "vitest";
import { cli, waitForOutput } from "./cli.js";
import { DevRun } from "./dev.js";
import { tempDir } from "./temp.js";

const appSource = fileURLToPath(new URL("../apps/chaos", import.meta.url));

/** A small, fast, seeded PRNG (mulberry32): the same seed gives the same numbers. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed of this run: MEND_CHAOS_SEED to replay one, else a fresh one. */
export function chaosSeed(): number {
  const given = process.env.MEND_CHAOS_SEED;
  if (given !== undefined && given !== "") {
    const seed = Number(given);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`MEND_CHAOS_SEED must be an integer from 0 to 4294967295, got '${given}'.`);
    return seed;
  }
  return Math.floor(Math.random() * 0xffffffff);
}

// --- HTTP -------------------------------------------------------------------

type Answer = { status: number; body: any } | undefined;

/** One request on a fresh connection; `undefined` when no complete answer came back (the runtime died). */
function http(url: string, method: "GET" | "POST", path: string, body?: unknown, timeoutMs = 60_000): Promise<Answer> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (answer: Answer) => {
      if (!settled) (settled = true), resolve(answer);
    };
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string | number> = data === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(data) };
    const req = request(`${url}${path}`, { method, agent: false, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        try {
          const text = Buffer.concat(chunks).toString("utf8");
          done({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined });
        } catch {
          done(undefined);
        }
      });
      res.on("error", () => done(undefined));
      res.on("close", () => done(undefined));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => done(undefined));
    req.end(data);
  });
}

// --- Targets: the runtime process, killed and restarted ---------------------

interface Target {
  readonly storePath: string;
  readonly url: string;
  /** Resolves while the runtime serves; a new pending promise while it is being killed and restarted. */
  up: Promise<void>;
  kill(): Promise<void>;
  stop(): Promise<number | undefined>;
  /** Processes that did not stop on their own at the end (SIGKILLed), and what they were doing. */
  stuck?(): string[];
}

const processes: ResultPromise[] = [];
afterEach(async () => {
  for (const child of processes.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await child.catch(() => {});
  }
});

/** `mend serve` on the app, restarted after each kill (on a new free port). */
class ServeTarget implements Target {
  readonly storePath: string;
  url = "";
  up: Promise<void> = Promise.resolve();
  #child!: ResultPromise;

  /** `flags`: more flags of `mend serve` (`--store`). */
  constructor(
    private readonly appDir: string,
    private readonly flags: string[] = [],
  ) {
    this.storePath = join(appDir, ".mend/chaos/mend.sqlite");
  }

  async start(): Promise<void> {
    this.#child = execa("node", [cli, "serve", "--application", "src/main.ts", "--name", "chaos", "--port", "0", ...this.flags], {
      cwd: this.appDir,
      reject: false,
      stdin: "ignore",
      buffer: false,
    });
    processes.push(this.#child);
    const [, url] = await waitForOutput(this.#child, /serving chaos at (http:\/\/\S+)/, 30_000);
    this.url = url!;
    // Drain the output so that the child never blocks on a full pipe; keep its end, to tell
    // what a server that does not stop was doing.
    const keep = (chunk: Buffer) => (this.output = (this.output + chunk.toString("utf8")).slice(-4000));
    this.#child.stdout?.on("data", keep);
    this.#child.stderr?.on("data", keep);
  }

  /** The last characters the current process printed. */
  output = "";

  async kill(): Promise<void> {
    let back!: () => void;
    this.up = new Promise((resolve) => (back = resolve));
    this.#child.kill("SIGKILL");
    await this.#child;
    await this.start();
    back();
  }

  /** SIGTERM; a process still there 30 s later is SIGKILLed, and `stuck` says so with its output. */
  async stop(): Promise<number | undefined> {
    this.#child.kill("SIGTERM");
    const late = setTimeout(() => {
      this.#stuck = `${this.url} did not exit within 30 s of SIGTERM; its last output:\n${this.output}`;
      this.#child.kill("SIGKILL");
    }, 30_000);
    try {
      return (await this.#child).exitCode;
    } finally {
      clearTimeout(late);
    }
  }

  #stuck: string | undefined;

  /** The server, if it had to be SIGKILLed at the end, and what it was doing. */
  stuck(): string[] {
    return this.#stuck ? [this.#stuck] : [];
  }
}

/**
 * Several `mend serve` on one PostgreSQL store: each request goes to a server that is up (in
 * turn), and each kill hits one of them at random, which is restarted.
 */
class ClusterTarget implements Target {
  readonly storePath: string;
  readonly up: Promise<void> = Promise.resolve();
  readonly #servers: ServeTarget[];
  readonly #restarting = new Set<ServeTarget>();
  #next = 0;

  constructor(appDir: string, store: string, servers: number, leaseMs: number, private readonly random: () => number) {
    this.storePath = store;
    this.#servers = Array.from({ length: servers }, () => new ServeTarget(appDir, ["--store", store, "--lease-ms", String(leaseMs)]));
  }

  async start(): Promise<void> {
    // One after another: the first creates the store, the others find it.
    for (const s of this.#servers) await s.start();
  }

  get url(): string {
    for (let i = 0; i < this.#servers.length; i++) {
      const s = this.#servers[this.#next++ % this.#servers.length]!;
      if (!this.#restarting.has(s)) return s.url;
    }
    return this.#servers[0]!.url;
  }

  async kill(): Promise<void> {
    const s = this.#servers[Math.floor(this.random() * this.#servers.length)]!;
    this.#restarting.add(s);
    try {
      await s.kill();
    } finally {
      this.#restarting.delete(s);
    }
  }

  /** Stops every server; the exit code they share, or the first that differs from 143. */
  async stop(): Promise<number | undefined> {
    const codes = await Promise.all(this.#servers.map((s) => s.stop()));
    return codes.find((c) => c !== 143) ?? 143;
  }

  /** What each server that had to be SIGKILLed at the end was doing. */
  stuck(): string[] {
    return this.#servers.flatMap((s) => s.stuck());
  }
}

/** `mend dev run` on the app: kills hit its runtime child, which the watcher restarts. */
class DevTarget implements Target {
  readonly storePath: string;
  readonly dev: DevRun;
  url = "";
  up: Promise<void> = Promise.resolve();
  #saves = 0;

  constructor(private readonly appDir: string) {
    this.storePath = join(appDir, ".mend/chaos/mend.sqlite");
    this.dev = new DevRun(appDir, ["--name", "chaos"]);
  }

  async start(): Promise<void> {
    this.url = await this.dev.url();
    await this.dev.until(/v1 ready in \d+ ms/, 30_000);
  }

  async #pid(): Promise<number | undefined> {
    const health = await http(this.url, "GET", "/health");
    return health?.status === 200 ? (health.body.pid as number) : undefined;
  }

  async kill(): Promise<void> {
    let back!: () => void;
    this.up = new Promise((resolve) => (back = resolve));
    const pid = await this.#pid();
    if (pid === undefined) throw new Error(`the runtime of mend dev run does not answer; output:\n${this.dev.output.slice(-3000)}`);
    process.kill(pid, "SIGKILL");
    // The watcher restarts it on the same port: wait until another process answers there.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const now = await this.#pid();
      if (now !== undefined && now !== pid) break;
      if (Date.now() > deadline) throw new Error(`mend dev run did not restart its runtime within 30 s; output:\n${this.dev.output.slice(-3000)}`);
      await delay(25);
    }
    back();
  }

  /** Saves settings.ts: the first save fixes `fixable`, every save is a reload. */
  save(): void {
    this.#saves++;
    writeFileSync(
      join(this.appDir, "src/settings.ts"),
      `// Saved by the chaos suite.\nexport const FIXED = true;\nexport const SAVES = ${this.#saves};\n`,
    );
  }

  async stop(): Promise<number | undefined> {
    return this.dev.stop();
  }
}

// --- The workload --------------------------------------------------------------

type Kind = "inc" | "delayed" | "flaky" | "abort" | "flow" | "cancel" | "fixable";

interface Planned {
  token: string;
  kind: Kind;
  body: { stateType: string; stateId: string; method: string; request: Record<string, unknown>; when?: { ms: number } };
  whenMs?: number;
  cancelAfterMs?: number;
  failUntil?: number;
  // Filled in as it runs:
  sentAt?: number;
  uuid?: string;
  /** What the answer to the spawn was: created, refused (an answer other than 201), or none (the runtime died). */
  spawn?: "created" | "refused" | "none";
  cancel?: "cancelled" | "not-running" | "unknown";
}

const COUNTERS = 20;

function plan(random: () => number, n: number, log: string): Planned[] {
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!;
  const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const kinds: [Kind, number][] = [["inc", 35], ["delayed", 15], ["flaky", 15], ["abort", 5], ["flow", 18], ["cancel", 12]];
  const total = kinds.reduce((a, [, w]) => a + w, 0);
  const out: Planned[] = [];
  for (let i = 0; i < n; i++) {
    let r = random() * total;
    const kind = kinds.find(([, w]) => (r -= w) < 0)![0];
    const token = `t${i}`;
    const counter = `c${between(0, COUNTERS - 1)}`;
    // Writers hold their instance a little, so that kills find attempts running and queued.
    const holdMs = between(0, 30);
    const inc = (request: Record<string, unknown>) => ({ stateType: "Counter", stateId: counter, method: "increment", request: { token, holdMs, ...request } });
    // Workflows hold longer inside their helpers' fn, so that some kills land there.
    const flow = (failUntil: number) => ({ stateType: "Flow", stateId: `f${i}`, method: "run", request: { token, counter, log, holdMs: holdMs * 6, failUntil } });
    switch (kind) {
      case "inc":
        out.push({ token, kind, body: inc({}) });
        break;
      case "delayed": {
        const whenMs = between(50, 2500);
        out.push({ token, kind, whenMs, body: { ...inc({}), when: { ms: whenMs } } });
        break;
      }
      case "flaky": {
        const failUntil = between(2, 4);
        out.push({ token, kind, failUntil, body: inc({ failUntil }) });
        break;
      }
      case "abort":
        out.push({ token, kind, body: inc({ abort: true }) });
        break;
      case "flow": {
        const failUntil = pick([0, 0, 1, 2, 3]);
        const whenMs = random() < 0.3 ? between(50, 1500) : undefined;
        out.push({ token, kind, failUntil, whenMs, body: { ...flow(failUntil), ...(whenMs === undefined ? {} : { when: { ms: whenMs } }) } });
        break;
      }
      case "cancel": {
        // Cancelled at a random moment: before it is due, while it runs, or after it ended.
        const whenMs = between(300, 2500);
        const cancelAfterMs = between(0, whenMs + 300);
        const body = random() < 0.7 ? inc({}) : flow(pick([0, 1]));
        out.push({ token, kind, whenMs, cancelAfterMs, body: { ...body, when: { ms: whenMs } } });
        break;
      }
    }
  }
  return out;
}

export interface ChaosOptions {
  /** `cluster`: several `mend serve` on one PostgreSQL store (`store`). */
  mode: "serve" | "dev" | "cluster";
  /** The PostgreSQL store of a cluster. */
  store?: string;
  /** Servers of a cluster. @defaultValue 3 */
  servers?: number;
  seed: number;
  /** Tasks the driver spawns (workflows spawn one child each on top). */
  tasks: number;
  /** SIGKILLs of the runtime process, each after a random delay within `killDelayMs`. */
  kills: number;
  killDelayMs: [number, number];
  /** Saves of the app's source while the run goes on (dev only). */
  saves?: number;
  /** How long to wait, after the last kill, for every task to end. */
  settleTimeoutMs?: number;
}

export interface ChaosReport {
  summary: string;
  tasks: number;
  kills: number;
  saves: number;
  lost: number;
  duplicated: number;
  ms: number;
  /** Anything else that is wrong, one line each. */
  problems: string[];
}

const UNFINISHED = ["SCHEDULED", "STARTED", "SCHEDULED_RETRY", "SCHEDULED_ITERATION"];

/** Runs the workload against a runtime killed `kills` times, then checks the store. */
/** A run's verdict as a test states it: no problem, nothing lost or twice, every kill done, every task sent; failures name the seed. */
export function expectNothingLost(report: ChaosReport, options: { seed: number; kills: number; tasks: number }): void {
  console.log(report.summary);
  const context = `seed ${options.seed} (MEND_CHAOS_SEED=${options.seed}):\n${report.problems.slice(0, 30).join("\n")}`;
  expect(report.problems, context).toEqual([]);
  expect({ lost: report.lost, duplicated: report.duplicated }, context).toEqual({ lost: 0, duplicated: 0 });
  expect(report.kills).toBe(options.kills);
  expect(report.tasks).toBeGreaterThanOrEqual(options.tasks);
}

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const t0 = Date.now();
  const dir = tempDir();
  const appDir = join(dir, "app");
  mkdirSync(appDir);
  cpSync(appSource, join(appDir, "src"), { recursive: true });
  const log = join(dir, "effects.log");
  writeFileSync(log, "");
  const problems: string[] = [];
  const problem = (line: string) => problems.push(line);

  const workload = plan(prng(o.seed), o.tasks, log);
  const killRandom = prng(o.seed ^ 0x5eed);
  const saveRandom = prng(o.seed ^ 0xfeed);
  const target: Target & { save?: () => void; dev?: DevRun } =
    o.mode === "serve"
      ? new ServeTarget(appDir)
      : o.mode === "cluster"
        ? new ClusterTarget(appDir, o.store!, o.servers ?? 3, 2000, prng(o.seed ^ 0xc1a5))
        : new DevTarget(appDir);
  await (target as ServeTarget | DevTarget | ClusterTarget).start();

  const send = async (method: "GET" | "POST", path: string, body?: unknown, timeoutMs?: number): Promise<Answer> => {
    await target.up;
    return http(target.url, method, path, body, timeoutMs);
  };

  // Dev: tasks that fail until a save fixes them, retried at once by the reload.
  if (o.mode === "dev") {
    const dev = (target as DevTarget).dev;
    const fixable: Planned[] = Array.from({ length: 20 }, (_, i) => ({
      token: `fix${i}`,
      kind: "fixable" as const,
      body: { stateType: "Counter", stateId: `c${i % COUNTERS}`, method: "fixable", request: { token: `fix${i}` } },
    }));
    for (const p of fixable) await spawn(p);
    workload.push(...fixable);
    await waitFor(async () => {
      const list = await send("GET", `/v1/tasks?method=fixable&status=SCHEDULED_RETRY&limit=1000`);
      return list?.body?.tasks?.filter((t: { attempts: number }) => t.attempts >= 1).length === fixable.length;
    }, 30_000, "the fixable tasks to fail once");
    (target as DevTarget).save();
    await dev.until(new RegExp(`v2 ready in \\d+ ms \\(src/settings\\.ts\\) — retrying ${fixable.length} failing tasks`), 30_000);
  }

  async function spawn(p: Planned): Promise<void> {
    await target.up;
    p.sentAt = Date.now();
    const answer = await http(target.url, "POST", "/v1/tasks", p.body);
    if (!answer) p.spawn = "none";
    else if (answer.status === 201) (p.spawn = "created"), (p.uuid = answer.body.taskId.taskUuid as string);
    else {
      p.spawn = "refused";
      problem(`spawn of ${p.token} was answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    }
  }

  const cancels: Promise<void>[] = [];
  async function cancelLater(p: Planned): Promise<void> {
    await delay(p.cancelAfterMs!);
    const answer = await send("POST", `/v1/tasks/${p.uuid}/cancel`);
    if (answer?.status === 200) p.cancel = "cancelled";
    else if (answer?.status === 409) p.cancel = "not-running";
    else {
      p.cancel = "unknown";
      if (answer) problem(`cancel of ${p.token} was answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    }
  }

  // Spawns go out in chunks spread over the time the kills take, so that every kill lands
  // while tasks are being created, are due, running, retrying or waiting for children.
  const meanKillMs = (o.killDelayMs[0] + o.killDelayMs[1]) / 2;
  const chunk = 25;
  const start = workload.filter((p) => p.kind !== "fixable");
  const gapMs = (o.kills * meanKillMs * 0.8) / Math.ceil(start.length / chunk);
  const submitter = (async () => {
    const began = Date.now();
    for (let i = 0; i < start.length; i += chunk) {
      const wait = began + (i / chunk) * gapMs - Date.now();
      if (wait > 0) await delay(wait);
      await Promise.all(
        start.slice(i, i + chunk).map(async (p) => {
          await spawn(p);
          if (p.cancelAfterMs !== undefined && p.uuid) cancels.push(cancelLater(p));
        }),
      );
    }
  })();

  let kills = 0;
  const killer = (async () => {
    for (let k = 0; k < o.kills; k++) {
      await delay(o.killDelayMs[0] + killRandom() * (o.killDelayMs[1] - o.killDelayMs[0]));
      await target.kill();
      kills++;
    }
  })();

  let saves = 0;
  const saver = (async () => {
    if (o.mode !== "dev" || !o.saves) return;
    const span = o.kills * meanKillMs;
    for (let s = 0; s < o.saves; s++) {
      await delay(saveRandom() * ((span / o.saves) * 1.5));
      (target as DevTarget).save();
      saves++;
    }
  })();

  await Promise.all([submitter, killer, saver]);
  await Promise.all(cancels);

  // Every task ends: wait until no task is unfinished (or give up and report them).
  const settleTimeoutMs = o.settleTimeoutMs ?? 60_000;
  let settled = true;
  try {
    await waitFor(async () => {
      for (const status of UNFINISHED) {
        const list = await send("GET", `/v1/tasks?status=${status}&limit=1`, undefined, 10_000);
        if (list?.status !== 200 || list.body.tasks.length > 0) return false;
      }
      return true;
    }, settleTimeoutMs, "every task to end");
  } catch {
    settled = false;
    // While the servers are still up: who holds the unfinished tasks and the instance locks.
    if (o.mode === "cluster") for (const line of await stuckInPostgres(target.storePath)) problem(line);
  }
  const exit = await target.stop();
  for (const line of target.stuck?.() ?? []) problem(line);
  const expectedExit = o.mode === "dev" ? 130 : 143;
  if (exit !== expectedExit) problem(`the runtime exited with ${exit} on a clean stop, not ${expectedExit}`);
  if (!settled) problem(`tasks were still unfinished ${settleTimeoutMs / 1000} s after the last kill`);

  const verdict = verdictOf(o.mode === "cluster" ? await readPostgres(target.storePath) : readSqlite(target.storePath, problem), workload, log, problem);
  const ms = Date.now() - t0;
  const summary =
    `chaos ${o.mode}: ${verdict.tasks} tasks, ${kills} kills, ${verdict.lost} lost, ${verdict.duplicated} duplicated, ` +
    `${(ms / 1000).toFixed(1)} s (seed ${o.seed}${o.mode === "dev" ? `, ${saves + 1} saves` : ""}; ` +
    `${verdict.cancelled} cancelled, ${verdict.aborted} aborted, ${verdict.interrupted} attempts interrupted, ${verdict.reruns} atLeastOnce re-runs, ${verdict.unknown} atMostOnce cut short)`;
  return { summary, tasks: verdict.tasks, kills, saves, lost: verdict.lost, duplicated: verdict.duplicated, ms, problems };
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(50);
  }
}

// --- The verdict ----------------------------------------------------------------

interface TaskRow {
  uuid: string;
  state_type: string;
  state_id: string;
  method: string;
  request: string;
  status: string;
  attempts: number;
  response: string | null;
  error: string | null;
  parent_uuid: string | null;
}

interface StoreRows {
  tasks: TaskRow[];
  attempts: { task_uuid: string; number: number; started_at: number; outcome: string | null }[];
  memos: { task_uuid: string; kind: string; step: string; status: string }[];
  states: { state_id: string; state: string }[];
}

const QUERIES = {
  tasks: "SELECT * FROM tasks",
  attempts: "SELECT task_uuid, number, started_at, outcome FROM attempts ORDER BY task_uuid, number",
  memos: "SELECT task_uuid, kind, step, status FROM memos",
  states: "SELECT state_id, state FROM states WHERE state_type = 'Counter'",
};

/** The store's rows, once the runtime is gone; its integrity checked by SQLite. */
function readSqlite(storePath: string, problem: (line: string) => void): StoreRows {
  if (!existsSync(storePath)) throw new Error(`no store at ${storePath}`);
  const db = new Database(storePath);
  try {
    const integrity = db.pragma("integrity_check", { simple: true });
    if (integrity !== "ok") problem(`PRAGMA integrity_check: ${String(integrity)}`);
    const fk = db.pragma("foreign_key_check") as unknown[];
    if (fk.length > 0) problem(`PRAGMA foreign_key_check: ${JSON.stringify(fk.slice(0, 5))}`);
    return {
      tasks: db.prepare(QUERIES.tasks).all() as StoreRows["tasks"],
      attempts: db.prepare(QUERIES.attempts).all() as StoreRows["attempts"],
      memos: db.prepare(QUERIES.memos).all() as StoreRows["memos"],
      states: db.prepare(QUERIES.states).all() as StoreRows["states"],
    };
  } finally {
    db.close();
  }
}

/** The store's rows in PostgreSQL, once every server is gone (its foreign keys are enforced as it goes). */
async function readPostgres(url: string): Promise<StoreRows> {
  const client = new pg.Client({ connectionString: url, types: { getTypeParser: ((oid: number, format: "text") => (oid === 20 ? Number : pg.types.getTypeParser(oid, format))) as never } });
  await client.connect();
  try {
    const all = async <T>(sql: string) => (await client.query(sql)).rows as T[];
    return { tasks: await all(QUERIES.tasks), attempts: await all(QUERIES.attempts), memos: await all(QUERIES.memos), states: await all(QUERIES.states) };
  } finally {
    await client.end();
  }
}

/** The unfinished tasks (with their owner and lease), the instance locks and the servers, as the store has them now. */
async function stuckInPostgres(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const now = Date.now();
    const rows = async (sql: string) => (await client.query(sql)).rows as Record<string, unknown>[];
    const tasks = await rows(
      `SELECT uuid, state_type, state_id, method, status, owner, due_at, attempts FROM tasks WHERE status IN ('SCHEDULED', 'STARTED', 'SCHEDULED_RETRY', 'SCHEDULED_ITERATION') ORDER BY due_at LIMIT 20`,
    );
    const locks = await rows(`SELECT state_type, state_id, owner, until FROM instance_locks ORDER BY until LIMIT 20`);
    const servers = await rows(`SELECT id, heartbeat_at FROM servers`);
    const at = (v: unknown) => (v === null ? "null" : `now${Number(v) - now >= 0 ? "+" : ""}${Number(v) - now} ms`);
    return [
      `store at settle time: ${servers.length} servers (${servers.map((r) => `${r.id} heartbeat ${at(r.heartbeat_at)}`).join(", ")})`,
      ...tasks.map((t) => `  unfinished ${t.method} ${t.state_type}('${t.state_id}') ${t.status} owner ${t.owner} due ${at(t.due_at)} attempts ${t.attempts}`),
      ...locks.map((l) => `  lock ${l.state_type}('${l.state_id}') owner ${l.owner} until ${at(l.until)}`),
    ];
  } catch (e) {
    return [`could not read the store at settle time: ${(e as Error).message}`];
  } finally {
    await client.end().catch(() => {});
  }
}

function verdictOf(rows: StoreRows, workload: Planned[], log: string, problem: (line: string) => void) {
  {
    const { tasks, attempts, memos, states } = rows;

    let lost = 0;
    let duplicated = 0;
    const byToken = new Map<string, TaskRow[]>();
    for (const t of tasks) {
      const token = (JSON.parse(t.request) as { token: string }).token;
      byToken.set(token, [...(byToken.get(token) ?? []), t]);
    }
    const planned = new Map(workload.map((p) => [p.token, p]));
    const attemptsOf = new Map<string, typeof attempts>();
    for (const a of attempts) attemptsOf.set(a.task_uuid, [...(attemptsOf.get(a.task_uuid) ?? []), a]);

    // Tasks: each acknowledged spawn exists once; nothing exists that nobody spawned.
    for (const p of workload) if (p.spawn === "created" && !byToken.has(p.token)) (lost++, problem(`${p.token} (${p.kind}) was acknowledged but is not in the store`));
    for (const [token, rows] of byToken) {
      if (rows.length > 1) (duplicated += rows.length - 1, problem(`${token} exists ${rows.length} times`));
      const parent = token.startsWith("child:") ? token.slice(6) : undefined;
      if (!planned.has(token) && !(parent && planned.has(parent))) problem(`a task nobody spawned: ${token}`);
      if (parent && rows[0]!.parent_uuid !== byToken.get(parent)?.[0]?.uuid) problem(`${token} is not the child of ${parent}'s task`);
    }

    let cancelled = 0;
    let aborted = 0;
    for (const t of tasks) {
      const token = (JSON.parse(t.request) as { token: string }).token;
      const p = planned.get(token);
      const its = attemptsOf.get(t.uuid) ?? [];
      if (UNFINISHED.includes(t.status)) (lost++, problem(`${token} (${t.method}) never ended: ${t.status} after ${t.attempts} attempts`));
      if (t.status === "CANCELLED") cancelled++;
      if (t.status === "ABORTED") aborted++;
      const completions = its.filter((a) => a.outcome === "COMPLETED").length;
      if (completions > 1) (duplicated += completions - 1, problem(`${token} completed ${completions} times`));
      if (its.some((a) => a.outcome === null)) problem(`${token} has an attempt that never ended`);
      if (t.status === "COMPLETED" && its.at(-1)?.outcome !== "COMPLETED") problem(`${token} is COMPLETED but its last attempt is ${its.at(-1)?.outcome}`);

      // The status it should have.
      let expected: string[] = ["COMPLETED"];
      if (p?.kind === "abort") expected = ["ABORTED"];
      if (p?.kind === "cancel" && p.cancel === "cancelled") expected = ["CANCELLED"];
      if (p?.kind === "cancel" && p.cancel === "unknown") expected = ["CANCELLED", "COMPLETED"];
      if (!UNFINISHED.includes(t.status) && !expected.includes(t.status)) problem(`${token} (${p?.kind ?? "child"}) is ${t.status}, expected ${expected.join(" or ")}`);
      if (t.status === "ABORTED" && JSON.parse(t.error ?? "null")?.type !== "Refused") problem(`${token} aborted with ${t.error}`);
      if (p?.kind === "flaky" && t.status === "COMPLETED" && t.attempts < p.failUntil!) problem(`${token} completed after ${t.attempts} attempts, but fails until attempt ${p.failUntil}`);
      // Never before `when`.
      if (p?.whenMs !== undefined && p.sentAt !== undefined) {
        const first = its.find((a) => a.number === 1);
        if (first && first.started_at < p.sentAt + p.whenMs) problem(`${token} started ${p.sentAt + p.whenMs - first.started_at} ms before it was due`);
      }
    }

    // Counters: each holds exactly the tokens of its completed increments, each once.
    const expectedTokens = new Map<string, Set<string>>();
    const expect = (counter: string, token: string) => expectedTokens.set(counter, (expectedTokens.get(counter) ?? new Set()).add(token));
    const flows = tasks.filter((t) => t.state_type === "Flow");
    const flowMemo = new Map<string, typeof memos>();
    for (const m of memos) flowMemo.set(m.task_uuid, [...(flowMemo.get(m.task_uuid) ?? []), m]);
    for (const t of tasks) {
      if (t.state_type !== "Counter" || t.status !== "COMPLETED") continue;
      expect(t.state_id, (JSON.parse(t.request) as { token: string }).token);
    }
    for (const f of flows) {
      const req = JSON.parse(f.request) as { token: string; counter: string };
      const call = (flowMemo.get(f.uuid) ?? []).find((m) => m.kind === "call");
      if (call) {
        if (call.step !== `Counter('${req.counter}').increment()` || call.status !== "completed") problem(`${req.token}'s memo holds ${call.step} ${call.status}`);
        expect(req.counter, `wf:${req.token}`);
      } else if (f.status === "COMPLETED") problem(`${req.token} completed without a memo of its increment`);
    }
    for (const s of states) {
      const state = JSON.parse(s.state) as { count: number; tokens: string[] };
      const want = expectedTokens.get(s.state_id) ?? new Set<string>();
      const seen = new Map<string, number>();
      for (const token of state.tokens) seen.set(token, (seen.get(token) ?? 0) + 1);
      for (const [token, n] of seen) {
        if (n > 1) (duplicated += n - 1, problem(`Counter('${s.state_id}') applied ${token} ${n} times`));
        if (!want.has(token)) {
          const row = byToken.get(token)?.[0];
          const how = row ? `${row.status} after attempts ${(attemptsOf.get(row.uuid) ?? []).map((a) => a.outcome).join(", ")}; cancel: ${planned.get(token)?.cancel}` : "no such task";
          problem(`Counter('${s.state_id}') holds ${token}, which should not have changed it (${how})`);
        }
      }
      for (const token of want) if (!seen.has(token)) (lost++, problem(`Counter('${s.state_id}') lacks ${token}, a completed increment`));
      if (state.count !== state.tokens.length) problem(`Counter('${s.state_id}') counts ${state.count} but holds ${state.tokens.length} tokens`);
      if (state.count !== want.size) problem(`Counter('${s.state_id}') is ${state.count}, expected ${want.size}`);
    }
    for (const [counter, want] of expectedTokens)
      if (!states.some((s) => s.state_id === counter)) (lost += want.size, problem(`Counter('${counter}') has no state but ${want.size} completed increments`));

    // Effects: atMostOnce at most once, and once if it says so; atLeastOnce at least once.
    const effects = new Map<string, number>();
    for (const line of readFileSync(log, "utf8").split("\n")) if (/^\S+ at(Least|Most)Once$/.test(line)) effects.set(line, (effects.get(line) ?? 0) + 1);
    let reruns = 0;
    let unknown = 0;
    for (const f of flows) {
      const req = JSON.parse(f.request) as { token: string };
      const least = effects.get(`${req.token} atLeastOnce`) ?? 0;
      const most = effects.get(`${req.token} atMostOnce`) ?? 0;
      reruns += Math.max(0, least - 1);
      if (most > 1) (duplicated += most - 1, problem(`${req.token}: atMostOnce ran ${most} times`));
      if (f.status !== "COMPLETED") continue;
      const response = JSON.parse(f.response ?? "null") as { once: string; child: number } | null;
      if (least < 1) problem(`${req.token} completed, but its atLeastOnce never ran`);
      if (response?.once === "unknown") unknown++;
      if (response?.once === "done" && most !== 1) problem(`${req.token} says atMostOnce is done, but it ran ${most} times`);
      const child = byToken.get(`child:${req.token}`);
      if (!child || child[0]!.status !== "COMPLETED") (lost++, problem(`${req.token} completed without its child`));
    }

    const interrupted = attempts.filter((a) => a.outcome === "INTERRUPTED").length;
    return { tasks: tasks.length, lost, duplicated, cancelled, aborted, interrupted, reruns, unknown };
  }
}
