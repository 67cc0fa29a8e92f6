import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import { accessSync, constants, existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { MendError } from "../api/errors.js";
import { Runtime, type RuntimeOptions } from "../runtime/runtime.js";
import { isPostgresUrl } from "../store/pg-open.js";
import { handleUnownedErrors } from "../runtime/stray.js";
import { buildApp } from "../server/build.js";
import { startServer, type RunningServer } from "../server/http.js";
import { loadApp } from "../server/load.js";
import { isDiskFull } from "../store/open.js";
import { applicationUrlExportLine } from "./application-url.js";
import type { LogFormat } from "./log-lines.js";
import { parseCount, parseName, parsePort } from "./options.js";
import { reportAttempts, TaskLog } from "./task-log.js";

export interface ServeOptions {
  application: string;
  name: string;
  port: number;
  host: string;
  stateDirectory: string;
  adminSecret?: string;
  allowedHost: string[];
  allowedOrigin: string[];
  maxConnections?: number;
  editorUrl?: string;
  concurrency?: number;
  logFormat: LogFormat;
  store?: string;
  leaseMs?: number;
}

/** Where a named application keeps its state. */
export function stateDirectoryOf(stateDirectory: string, name: string): string {
  return join(resolve(stateDirectory), ".mend", name);
}

const WHY: Record<string, string> = {
  EROFS: "the file system is read-only",
  EACCES: "permission denied",
  EPERM: "permission denied",
  ENOSPC: "the disk is full",
  ENOTDIR: "a file is in the way",
  ENOENT: "it cannot be created there",
};

/** Creates a folder the server writes to, or says in one line why it cannot. */
export function writableDirectory(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (e) {
    // A recursive mkdir under a read-only folder says ENOENT: ask the nearest folder that exists why.
    let code = (e as { code?: string }).code ?? "";
    for (let up = dirname(dir); code === "ENOENT" && up !== dirname(up); up = dirname(up)) {
      if (!existsSync(up)) continue;
      try {
        accessSync(up, constants.W_OK);
      } catch (denied) {
        code = (denied as { code?: string }).code ?? code;
      }
      break;
    }
    throw new MendError(
      "STATE_DIRECTORY",
      `Cannot write the state folder ${dir}: ${WHY[code] ?? (e as Error).message}. Pass --state-directory with a folder you can write.`,
      { cause: e },
    );
  }
}

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description("build the application once and serve it over HTTP")
    .requiredOption("--application <path>", "the entry module, which default-exports an Application")
    .requiredOption("--name <name>", "the application's name: its state lives in <state-directory>/.mend/<name>/", parseName)
    .option("--port <port>", "the port; 0 picks a free one", parsePort, 9991)
    .option("--host <host>", "the address to bind; beyond loopback needs an admin secret", "127.0.0.1")
    .option("--state-directory <dir>", "where .mend/ lives", ".")
    .addOption(
      new Option("--admin-secret <secret>", "the secret every request beyond loopback (and task admin on loopback) must carry; prefer MEND_ADMIN_SECRET, since a flag shows in ps").env(
        "MEND_ADMIN_SECRET",
      ),
    )
    .option("--allowed-host <name>", "also accept requests whose Host is this name; '.example.com' accepts its subdomains (repeatable)", collect, [])
    .option("--allowed-origin <origin>", "accept cross-origin browser requests from this origin, e.g. https://app.example (repeatable)", collect, [])
    .option("--max-connections <n>", "close connections beyond this many (default 1024)", parseCount)
    .option("--editor-url <template>", "the dashboard's link of a stack frame: {file}, {line}, {column} (default vscode://file/{file}:{line}:{column})")
    .option("--concurrency <n>", "at most this many task attempts at once (default 256)", parseCount)
    .addOption(new Option("--log-format <format>", "how failing attempts are logged to stderr: text, or JSON lines for log collectors").choices(["text", "json"]).default("text"))
    .addOption(
      new Option("--store <url>", "keep state and tasks in PostgreSQL (postgresql://user@host/db) instead of <state-directory>/.mend/<name>/mend.sqlite; every server started on it shares the work")
        .env("MEND_STORE_URL")
        .argParser(parseStoreUrl),
    )
    .option("--lease-ms <ms>", "with --store: how long this server's claim on a running task lasts unless renewed (default 10000)", parseCount)
    .action(async (o: ServeOptions) => {
      if (o.store === undefined && o.leaseMs !== undefined) throw new MendError("INVALID_OPTION", "--lease-ms applies to a PostgreSQL store (--store) only.");
      process.setSourceMapsEnabled(true);
      // An error of the app's code outside any call or task is reported; the server goes on.
      handleUnownedErrors((error) => console.error(`mend: an error outside any task or call: ${error.stack ?? error.message}`));
      const directory = stateDirectoryOf(o.stateDirectory, o.name);
      // A folder of this process's own: a second server on the same state must not overwrite it.
      const buildDir = join(directory, "build", String(process.pid));
      writableDirectory(directory);
      let runtime: Runtime | undefined;
      let server: RunningServer | undefined;
      // Registered before anything starts: a signal at any moment (also during the build)
      // closes what is open and removes the holder file and the build folder.
      stopOnSignals(async () => {
        await server?.close();
        await runtime?.stop();
        rmSync(buildDir, { recursive: true, force: true });
      });
      try {
        const store: RuntimeOptions = o.store === undefined ? { directory } : { store: o.store, ...(o.leaseMs === undefined ? {} : { leaseMs: o.leaseMs }) };
        runtime = await Runtime.start(await loadApp(await build(o.application, buildDir)), { ...store, ...(o.concurrency ? { concurrency: o.concurrency } : {}) });
        logTasks(runtime, o.logFormat);
        server = await startServer(runtime, {
          host: o.host,
          port: o.port,
          adminSecret: o.adminSecret,
          allowedHosts: o.allowedHost,
          allowedOrigins: o.allowedOrigin,
          maxConnections: o.maxConnections,
          editorUrl: o.editorUrl,
        });
      } catch (e) {
        await runtime?.stop();
        rmSync(buildDir, { recursive: true, force: true });
        if ((e as { code?: string }).code === "EADDRINUSE") throw new MendError("ADDRESS_IN_USE", `Port ${o.port} on ${o.host} is in use; pick another with --port (0 picks a free one).`);
        throw e;
      }
      console.log(`mend: serving ${o.name} at ${server.url}`);
      if (o.port === 0) console.log(applicationUrlExportLine(server.url));
      console.log(`mend: dashboard at ${server.url}/__/`);
    });
}

/** Builds the app; a build that could not be written for want of space says so in one line. */
async function build(application: string, buildDir: string): Promise<string> {
  try {
    return await buildApp(application, buildDir);
  } catch (e) {
    if (isDiskFull(e) || /no space left on device/i.test((e as Error)?.message ?? ""))
      throw new MendError("DISK_FULL", `Cannot write the build of the application to ${buildDir}: the disk is full.`, { cause: e });
    throw e;
  }
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

function parseStoreUrl(value: string): string {
  if (!isPostgresUrl(value)) throw new InvalidArgumentError("expected a PostgreSQL URL (postgresql://user@host/db).");
  return value;
}

function collect(value: string, all: string[]): string[] {
  return [...all, value];
}

const SIGNALS = [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]] as const;

/**
 * First SIGINT, SIGTERM or SIGHUP (the terminal closed) stops cleanly; a second forces.
 * Exits with 128 + the signal's number.
 */
export function stopOnSignals(stop: () => Promise<void>): void {
  let stopping = false;
  for (const [signal, code] of SIGNALS)
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
