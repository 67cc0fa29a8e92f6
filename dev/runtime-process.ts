// The runtime child of `mend dev run`: loads each version it is sent into one running
// Runtime, serves HTTP, and reports attempts to the watcher. Never started by users.
import { performance } from "node:perf_hooks";
import { TaskId } from "../src/api/task-id.js";
import { Runtime, type RuntimeOptions } from "../src/runtime/runtime.js";
import { handleUnownedErrors } from "../src/runtime/stray.js";
import { DevLoop } from "../src/server/dev-loop.js";
import { startServer, type RunningServer } from "../src/server/http.js";
import { loadApp } from "../src/server/load.js";
import type { FromRuntime, RuntimeConfig, ToRuntime, VersionInfo } from "./messages.js";

// An error of the app's code outside any call or task is reported; the runtime goes on.
handleUnownedErrors((error) => console.error(`mend: an error outside any task or call: ${error.stack ?? error.message}`));
const config = JSON.parse(process.argv[2] ?? "{}") as RuntimeConfig;
const send = (message: FromRuntime) => process.send?.(message);

let runtime: Runtime | undefined;
let server: RunningServer | undefined;
let stopping = false;
// What the dashboard shows of the dev loop: this process's loads, and what the watcher tells.
const devLoop = new DevLoop();

async function load(version: string, file: string, retryFailing = false, info?: VersionInfo): Promise<void> {
  const t0 = performance.now();
  let app;
  try {
    app = await loadApp(file);
  } catch (e) {
    devLoop.add({ kind: "rejected", version, message: (e as Error).message });
    return void send({ type: "load-failed", version, message: (e as Error).message });
  }
  const loaded = (retrying: number) =>
    devLoop.add({ kind: "loaded", version, changed: info?.changed ?? [], buildMs: info?.buildMs ?? null, loadMs: performance.now() - t0, retrying });
  if (runtime) {
    const { retrying } = runtime.load(app, version);
    loaded(retrying.length);
    return void send({ type: "loaded", version, ms: performance.now() - t0, retrying: retrying.map(TaskId.format) });
  }
  let retrying: string[] = [];
  try {
    const options: RuntimeOptions = { directory: config.directory, version };
    if (config.effectValidation) options.effectValidation = config.effectValidation as RuntimeOptions["effectValidation"];
    runtime = await Runtime.start(app, options);
    watch(runtime);
    // Loading the same code again retries every failing task on it (restart reload mode).
    if (retryFailing) retrying = runtime.load(app, version).retrying.map(TaskId.format);
    server = await startServer(runtime, { host: config.host, port: config.port, editorUrl: config.editorUrl, devLoop });
  } catch (e) {
    const code = (e as { code?: string }).code;
    const message = code === "EADDRINUSE" ? `Port ${config.port} on ${config.host} is in use; pick another with --port (0 picks a free one).` : (e as Error).message;
    send({ type: "fatal", message });
    await runtime?.stop({ graceMs: 0 });
    process.exit(1);
  }
  loaded(retrying.length);
  send({ type: "started", url: server.url });
  send({ type: "loaded", version, ms: performance.now() - t0, retrying });
}

function watch(rt: Runtime): void {
  rt.on("attempt:end", (e) =>
    send({
      type: "attempt",
      report: {
        taskId: TaskId.format(e.taskId), method: e.method, attempt: e.attempt, version: e.version, outcome: e.outcome,
        error: e.error && { name: e.error.name, message: e.error.message, stack: e.error.stack }, retryInMs: e.retryInMs,
      },
    }),
  );
  rt.on("effect-validation", (e) => send({ type: "effect-validation", method: e.method, message: e.message }));
  rt.on("task:waiting", (e) => send({ type: "waiting", taskId: TaskId.format(e.taskId), method: e.method, reason: e.reason }));
}

async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await server?.close();
  await runtime?.stop({ graceMs: 2000 });
  process.exit(0);
}

// Loads arrive one after another; run them in order.
let queue = Promise.resolve();
process.on("message", (message: ToRuntime) => {
  if (message.type === "ping") return void send({ type: "pong", n: message.n });
  if (message.type === "stop") return void stop();
  if (message.type === "dev") return void devLoop.add(message.report);
  if (message.type === "load") queue = queue.then(() => load(message.version, message.file, message.retryFailing, message.info));
});
// Ctrl+C reaches the whole process group: the watcher decides when this process stops.
process.on("SIGINT", () => {});
// If the watcher goes away, so does this process.
process.on("disconnect", () => void stop());
