import { Option, type Command } from "commander";
import { rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { MendError } from "../api/errors.js";
import { Runtime } from "../runtime/runtime.js";
import { handleUnownedErrors } from "../runtime/stray.js";
import { buildApp } from "../server/build.js";
import { startServer } from "../server/http.js";
import { loadBundle } from "../server/load.js";
import type { LogFormat } from "./log-lines.js";
import { parseName, parsePort } from "./options.js";
import { reportAttempts, TaskLog } from "./task-log.js";

export interface ServeOptions {
  application: string;
  name: string;
  port: number;
  host: string;
  stateDirectory: string;
  adminSecret?: string;
  logFormat: LogFormat;
}

/** Where a named application keeps its state. */
export function stateDirectoryOf(stateDirectory: string, name: string): string {
  return join(resolve(stateDirectory), ".mend", name);
}

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description("build the application once and serve it over HTTP")
    .requiredOption("--application <path>", "the entry module, which default-exports an Application")
    .requiredOption("--name <name>", "the application's name: its state lives in <state-directory>/.mend/<name>/", parseName)
    .option("--port <port>", "the port; 0 picks a free one", parsePort, 9991)
    .option("--host <host>", "the address to bind; beyond loopback needs --admin-secret", "127.0.0.1")
    .option("--state-directory <dir>", "where .mend/ lives", ".")
    .option("--admin-secret <secret>", "required by the task endpoints (or MEND_ADMIN_SECRET)")
    .addOption(new Option("--log-format <format>", "how failing attempts are logged to stderr: text, or JSON lines for log collectors").choices(["text", "json"]).default("text"))
    .action(async (o: ServeOptions) => {
      process.setSourceMapsEnabled(true);
      // An error of the app's code outside any call or task is reported; the server goes on.
      handleUnownedErrors((error) => console.error(`mend: an error outside any task or call: ${error.stack ?? error.message}`));
      const directory = stateDirectoryOf(o.stateDirectory, o.name);
      // A folder of this process's own: a second server on the same state must not overwrite it.
      const buildDir = join(directory, "build", String(process.pid));
      const bundle = await buildApp(o.application, buildDir);
      let runtime: Runtime;
      try {
        runtime = await Runtime.start(loadBundle(bundle), { directory });
        logTasks(runtime, o.logFormat);
      } catch (e) {
        rmSync(buildDir, { recursive: true, force: true });
        throw e;
      }
      let server;
      try {
        server = await startServer(runtime, { host: o.host, port: o.port, adminSecret: o.adminSecret ?? process.env.MEND_ADMIN_SECRET });
      } catch (e) {
        await runtime.stop();
        if ((e as { code?: string }).code === "EADDRINUSE") throw new MendError("ADDRESS_IN_USE", `Port ${o.port} on ${o.host} is in use; pick another with --port (0 picks a free one).`);
        throw e;
      }
      console.log(`mend: serving ${o.name} at ${server.url}`);
      stopOnSignals(async () => {
        await server.close();
        await runtime.stop();
        rmSync(buildDir, { recursive: true, force: true });
      });
    });
}

/** One line on stderr per attempt that fails or aborts, and for a task that completes after failing. */
function logTasks(runtime: Runtime, format: LogFormat): void {
  const log = new TaskLog({ format, dev: false, root: process.cwd() });
  const write = (line: string | undefined) => line !== undefined && process.stderr.write(`${line}\n`);
  reportAttempts(runtime, {
    end: (r) => write(log.attempt(r)),
    waiting: (w) => write(log.waiting(w)),
    finished: (taskId) => log.forget(taskId),
  });
}

/** First SIGINT/SIGTERM stops cleanly; a second forces. Exits with 128 + the signal's number. */
export function stopOnSignals(stop: () => Promise<void>): void {
  let stopping = false;
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const)
    process.on(signal, () => {
      if (stopping) process.exit(code);
      stopping = true;
      stop().then(
        () => process.exit(code),
        (e: unknown) => {
          console.error(`mend: ${(e as Error).message}`);
          process.exit(code);
        },
      );
    });
}
