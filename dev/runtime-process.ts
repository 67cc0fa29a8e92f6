// The runtime child of `mend dev run`: loads each version it is sent into one running
// Runtime, serves HTTP, and reports attempts to the watcher. Never started by users.
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import { TaskId } from "../src/api/task-id.js";
import { reportAttempts } from "../src/cli/task-log.js";
import { Runtime, type RuntimeOptions } from "../src/runtime/runtime.js";
import { handleUnownedErrors } from "../src/runtime/stray.js";
import { DevLoop } from "../src/server/dev-loop.js";
import { startServer, type RunningServer } from "../src/server/http.js";
import { loadVersion } from "../src/server/load-version.js";
import { openStore, releaseHolder } from "../src/store/open.js";
import { prepareStatements } from "../src/store/statements.js";
import type { FromRuntime, RuntimeConfig, ToRuntime, VersionInfo } from "./messages.js";

// An error of the app's code outside any call or task is reported; the runtime goes on.
handleUnownedErrors((error) => console.error(`mend: an error outside any task or call: ${error.stack ?? error.message}`));
const config = JSON.parse(process.argv[2] ?? "{}") as RuntimeConfig;
const send = (message: FromRuntime) => process.send?.(message);
const storePath = join(config.directory, "mend.sqlite");

let runtime: Runtime | undefined;
let server: RunningServer | undefined;
let stopping = false;
// What the dashboard shows of the dev loop: this process's loads, and what the watcher tells.
const devLoop = new DevLoop();

/**
 * This process dies with its watcher, also when its own main thread is stuck in a task's
 * synchronous loop (it could not handle `disconnect` then): a worker thread sees the
 * watcher go (this process is re-parented) and, after the grace a clean stop would take,
 * kills the process.
 */
function dieWithWatcher(graceMs: number): void {
  const code = `
    const { workerData } = require("node:worker_threads");
    let goneAt;
    setInterval(() => {
      if (goneAt === undefined && process.ppid !== workerData.ppid) goneAt = performance.now();
      if (goneAt !== undefined && performance.now() - goneAt > workerData.graceMs) process.kill(process.pid, "SIGKILL");
    }, 100);
  `;
  new Worker(code, { eval: true, workerData: { ppid: process.ppid, graceMs } }).unref();
}

/** The number of the last version recorded in the store; opening it also tells early that it is held. */
function lastVersion(): number {
  if (!existsSync(storePath)) return 0; // a store is created only once the runtime starts
  const db = openStore(storePath);
  try {
    return prepareStatements(db).lastVersion();
  } finally {
    db.close();
    releaseHolder(storePath);
  }
}

async function load(version: string, file: string, info: VersionInfo | undefined, retryFailing = false): Promise<void> {
  if (stopping) return;
  const t0 = performance.now();
  let app;
  try {
    app = await loadVersion(file);
  } catch (e) {
    devLoop.add({ kind: "rejected", version, message: (e as Error).message });
    return void send({ type: "load-failed", version, message: (e as Error).message });
  }
  const loaded = (retrying: number) =>
    devLoop.add({ kind: "loaded", version, changed: info?.changed ?? [], buildMs: info?.buildMs ?? null, loadMs: performance.now() - t0, retrying });
  if (runtime) {
    const { retrying } = await runtime.load(app, version);
    const ms = performance.now() - t0;
    record(version, info, ms);
    loaded(retrying.length);
    return void send({ type: "loaded", version, ms, retrying: retrying.map(TaskId.format) });
  }
  let retrying: string[] = [];
  const existed = existsSync(storePath);
  try {
    const options: RuntimeOptions = { directory: config.directory, version, recovery: config.recovery };
    if (config.effectValidation) options.effectValidation = config.effectValidation as RuntimeOptions["effectValidation"];
    if (config.concurrency) options.concurrency = config.concurrency;
    runtime = await Runtime.start(app, options);
    // From here on tasks may run (none runs before); the thread starts beside the server.
    dieWithWatcher(3000);
    watch(runtime);
    // Loading the same code again retries every failing task on it (restart reload mode).
    if (retryFailing) retrying = (await runtime.load(app, version)).retrying.map(TaskId.format);
    server = await startServer(runtime, { host: config.host, port: config.port, adminSecret: process.env.MEND_ADMIN_SECRET || undefined, editorUrl: config.editorUrl, devLoop });
  } catch (e) {
    const code = (e as { code?: string }).code;
    const message = code === "EADDRINUSE" ? `Port ${config.port} on ${config.host} is in use; pick another with --port (0 picks a free one).` : (e as Error).message;
    await runtime?.stop({ graceMs: 0 });
    // A dev run that could not start leaves no store behind.
    if (!existed) for (const suffix of ["", "-wal", "-shm", ".holder"]) rmSync(storePath + suffix, { force: true });
    return fatal(message);
  }
  const ms = performance.now() - t0;
  record(version, info, ms);
  loaded(retrying.length);
  send({ type: "started", url: server.url });
  send({ type: "loaded", version, ms, retrying });
}

/** Records a loaded version in the store (once per number; a restart loads it again). */
function record(version: string, info: VersionInfo | undefined, loadMs: number): void {
  const number = /^v(\d+)$/.exec(version)?.[1];
  if (!runtime || !info || number === undefined) return;
  const row = { number: Number(number), loaded_at: Date.now(), changed: JSON.stringify(info.changed), build_ms: info.buildMs, load_ms: loadMs };
  // Only the dashboard reads these: a failed write costs nothing else.
  runtime.recordVersion(row).catch(() => {});
}

function watch(rt: Runtime): void {
  reportAttempts(rt, {
    start: (start) => send({ type: "attempt-start", start }),
    end: (report) => send({ type: "attempt", report }),
    waiting: (w) => send({ type: "waiting", ...w }),
  });
  rt.on("effect-validation", (e) => send({ type: "effect-validation", method: e.method, message: e.message, differences: e.differences }));
}

async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await server?.close();
  await runtime?.stop({ graceMs: 2000 });
  process.exit(0);
}

/** Tells the watcher why this process cannot go on, then exits once the message is out. */
function fatal(message: string): void {
  stopping = true;
  if (!process.send) process.exit(1);
  process.send({ type: "fatal", message } satisfies FromRuntime, () => process.exit(1));
}

try {
  send({ type: "store", lastVersion: lastVersion() });
} catch (e) {
  fatal((e as Error).message);
}

// Loads arrive one after another; run them in order.
let queue = Promise.resolve();
process.on("message", (message: ToRuntime) => {
  if (message.type === "ping") return void send({ type: "pong", n: message.n });
  if (message.type === "stop") return void stop();
  if (message.type === "dev") return void devLoop.add(message.report);
  if (message.type === "load") queue = queue.then(() => load(message.version, message.file, message.info, message.retryFailing));
});
// Ctrl+C (and a closing terminal's SIGHUP) reaches the whole process group: the watcher
// decides when this process stops.
process.on("SIGINT", () => {});
process.on("SIGHUP", () => {});
// If the watcher goes away, so does this process.
process.on("disconnect", () => void stop());
