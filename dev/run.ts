import { existsSync, mkdtempSync, readdirSync, rmdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import pc from "picocolors";
import { applicationUrlExportLine } from "../src/cli/application-url.js";
import { parkedLine, suspectLine } from "../src/cli/log-lines.js";
import { TaskLog } from "../src/cli/task-log.js";
import { RELOADING_FLAGS } from "../src/server/load.js";
import { Builder } from "./builder.js";
import { holdStateDirectory, isAlive } from "./lock.js";
import type { FromRuntime, RuntimeConfig, VersionInfo } from "./messages.js";
import { effectValidationNotice, noTaskLine, readyLine, rejectedLine } from "./output.js";
import { Parked, RunningAttempts, Suspects, verdict } from "./running.js";
import { serial } from "./serial.js";
import { Sources } from "./sources.js";
import { Supervisor, type Exit } from "./supervisor.js";
import { TypeChecker } from "./typecheck.js";
import { VersionNumbers } from "./versions.js";


export interface DevRunOptions {
  application: string;
  name?: string;
  watch: string[];
  port: number;
  host: string;
  stateDirectory: string;
  adminSecret?: string;
  effectValidation?: string;
  concurrency?: number;
  /** `swap` loads new code into the running runtime; `restart` starts a new runtime for it. @defaultValue "swap" */
  reload?: "swap" | "restart";
  /** The dashboard's editor link of a stack frame (`{file}`, `{line}`, `{column}`). */
  editorUrl?: string;
  /** A runtime that leaves a ping unanswered this long is stuck. @defaultValue 3000 */
  hangTimeout?: number;
  /** Run the app's TypeScript checker after each build. */
  typecheck?: boolean;
}

interface Version {
  version: string;
  file: string;
  info: VersionInfo;
}

interface Change {
  path: string;
  /** performance.now() of the save. */
  at: number;
}

const log = (line: string) => console.log(line);
const warn = (line: string) => console.error(line);

/** `mend dev run`: build, run, watch, reload; resolves with the exit code once stopped. */
export async function devRun(o: DevRunOptions): Promise<number> {
  const cwd = process.cwd();
  const entry = resolve(o.application);
  const hangMs = o.hangTimeout ?? 3000;
  let directory: string;
  let temporary = false;
  let created = false; // this run made the state folder: one that fails to start leaves nothing
  if (o.name) {
    directory = join(resolve(o.stateDirectory), ".mend", o.name);
    created = !existsSync(directory);
  } else {
    directory = mkdtempSync(join(tmpdir(), "mend-dev-"));
    temporary = true;
    warn(pc.yellow(`mend: no --name, so state goes to ${directory} and is deleted on exit. Use --name NAME to keep it.`));
  }
  // The watcher holds the state for its whole life, also while its runtime restarts.
  const release = holdStateDirectory(directory, o.name ?? "this dev run");
  const show = (p: string) => relative(cwd, p) || p;
  // Each watcher builds into a folder of its own: a second one on the same state (which the
  // store will refuse) must not overwrite the first one's bundles.
  const buildRoot = join(directory, "build");
  pruneBuilds(buildRoot);
  const buildDir = join(buildRoot, String(process.pid));
  const builder = new Builder(entry, buildDir);
  const config: RuntimeConfig = { directory, host: o.host, port: o.port, effectValidation: o.effectValidation, concurrency: o.concurrency, editorUrl: o.editorUrl };
  const taskLog = new TaskLog({ format: "text", dev: true, root: cwd });
  const running = new RunningAttempts();
  const suspects = new Suspects();
  const parked = new Parked();
  const checker = o.typecheck
    ? new TypeChecker(fileURLToPath(new URL("./dev-typecheck.js", import.meta.url)), { appDir: cwd, entry, color: pc.isColorSupported }, log, warn)
    : undefined;

  let current: Version | undefined; // the newest version a runtime accepted
  let latest: Version | undefined; // the newest good build that no runtime has rejected
  let url: string | undefined;
  let fresh = true; // the runtime has no version loaded yet
  let finished: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => (finished = resolve));

  const versions = new VersionNumbers();

  const send = (v: Version) => supervisor.send({ type: "load", version: v.version, file: v.file, info: v.info });

  const onLoaded = (m: Extract<FromRuntime, { type: "loaded" | "load-failed" }>) => {
    const v = latest?.version === m.version ? latest : current?.version === m.version ? current : undefined;
    versions.settle(m.version);
    if (!v) {
      // A version superseded meanwhile: a runtime that just started must still get one.
      if (m.type === "load-failed" && fresh && current) send(current);
      return;
    }
    if (m.type === "load-failed") {
      warn(rejectedLine(v.info.changed, m.message));
      warn(current && current !== v ? `${current.version} keeps serving.` : "Waiting for a save that fixes it.");
      if (latest === v) latest = current;
      if (v !== current) {
        builder.remove(v.file);
        versions.rejected(v.version);
      }
      // A runtime that just started has nothing loaded: give it the last good version.
      if (fresh && current && current !== v) send(current);
      return;
    }
    fresh = false;
    parked.loaded(v.version);
    if (current && current !== v) builder.remove(current.file);
    current = v;
    const changes = causes.get(v.version) ?? [];
    causes.delete(v.version);
    const started = changes.length > 0 ? Math.min(...changes.map((c) => c.at)) : undefined;
    const ms = started === undefined ? m.ms : performance.now() - started;
    log(readyLine(v.version, ms, v.info.changed, m.retrying.length));
  };
  const causes = new Map<string, Change[]>(); // version -> the saves that led to it

  const onMessage = (m: FromRuntime) => {
    if (m.type === "store") versions.storeOpened(m.lastVersion);
    else if (m.type === "started") {
      if (!url) {
        log(`mend: serving ${o.name ?? "the application"} at ${m.url}`);
        log(`mend: dashboard at ${m.url}/__/`);
        if (o.port === 0) log(pc.dim(applicationUrlExportLine(m.url)));
      }
      url = m.url;
      config.port = Number(new URL(m.url).port);
    } else if (m.type === "loaded" || m.type === "load-failed") onLoaded(m);
    else if (m.type === "attempt-start") {
      running.start(m.start, performance.now());
      parked.resumed(m.start.taskId);
    } else if (m.type === "attempt") {
      running.end(m.report.taskId);
      suspects.cleared(m.report.taskId);
      log(taskLog.attempt(m.report)!);
    } else if (m.type === "waiting") log(taskLog.waiting(m));
    else if (m.type === "effect-validation") {
      // In quiet mode a line comes only when the two runs differed; the notice at start covers the rest.
      if (o.effectValidation === "enabled" || m.differences.length > 0) log(pc.yellow(`  effect validation: ${m.message}`));
    } else if (m.type === "fatal") {
      warn(`mend: ${m.message}`);
      void stop(1, !url);
    }
  };

  let restarts = 0;
  const onExit = (exit: Exit) => {
    if (stopping) return;
    const stopped = running.stopped(performance.now());
    const v = latest ?? current;
    if (exit.planned) {
      // Restart reload mode: the new runtime retries failing tasks at once, as a swap does.
      config.recovery = { stoppedAt: exit.stoppedAt, park: v ? parked.forStart(v.version) : [] };
      supervisor.start();
      if (latest) supervisor.send({ type: "load", version: latest.version, file: latest.file, info: latest.info, retryFailing: true });
      return;
    }
    restarts++;
    fresh = true;
    versions.settle();
    warn(pc.red(`mend: the runtime ${exit.reason}; restarting it on ${v?.version ?? "the next good build"}`));
    if (exit.stuck && stopped.length === 0) warn(noTaskLine(hangMs));
    const { park, suspects: wereRunning } = verdict(exit, stopped, suspects, hangMs);
    for (const { task, reason } of park) {
      parked.park(task.taskId, task.version, reason);
      warn(parkedLine(task, reason));
    }
    for (const t of wereRunning) warn(suspectLine(t));
    config.recovery = { stoppedAt: exit.stoppedAt, park: v ? parked.forStart(v.version) : [] };
    // A runtime that dies again and again at start waits a little between starts.
    setTimeout(() => {
      if (stopping) return;
      supervisor.start();
      supervisor.send({ type: "dev", report: { kind: "restarted", reason: `The runtime ${exit.reason}; restarted on ${v?.version ?? "the next good build"}.` } });
      // A save the old runtime died before taking: the new one takes it as a swap does, retrying failing tasks.
      if (v) supervisor.send({ type: "load", version: v.version, file: v.file, info: v.info, retryFailing: current !== undefined && v !== current });
    }, restarts > 3 ? 1000 : 0);
  };

  const supervisor = new Supervisor({
    script: fileURLToPath(new URL("./dev-runtime.js", import.meta.url)),
    // Each reload allocates a burst that survives a scavenge (a new version's code and
    // schemas), so V8 grows the young generation to its 32 MB maximum and never gives it
    // back: +40 MB of RSS over 300 reloads with no object leaked. 4 MB semi-spaces keep
    // the growth under 10 MB (npm run bench -- memory).
    // RELOADING_FLAGS: each version is a vm module (ESM semantics) that is garbage once dropped.
    execArgv: ["--max-semi-space-size=4", ...RELOADING_FLAGS],
    config: () => config,
    env: o.adminSecret ? { MEND_ADMIN_SECRET: o.adminSecret } : undefined,
    stuckMs: hangMs,
    onMessage,
    onExit,
  });

  // `undefined` is the first build, which no save caused.
  const sources = new Sources(entry, o.watch, directory, (path) => rebuild({ path, at: performance.now() }), () => current !== undefined);

  const rebuild = serial<Change | undefined>(async (reasons) => {
    const changes = reasons.filter((c): c is Change => c !== undefined);
    sources.building();
    const result = await builder.build();
    sources.buildEnded(result.ok ? result.inputs : undefined);
    if (!result.ok) {
      supervisor.send({ type: "dev", report: { kind: "build-failed", message: result.message } });
      warn(`${pc.red("Build failed")}:\n${result.message}`);
      warn(current ? `${current.version} keeps serving; fix it and save.` : "Waiting for a save that fixes it.");
      return;
    }
    checker?.check();
    const version = await versions.next();
    if (stopping) return;
    const superseded = latest !== current ? latest : undefined;
    const info = { changed: [...new Set(changes.map((c) => show(c.path)))], buildMs: result.ms };
    latest = { version, file: builder.write(version, result), info };
    causes.set(version, changes);
    if (superseded) builder.remove(superseded.file);
    const loaded = versions.loaded(version);
    if (o.reload === "restart" && current) supervisor.restart();
    else send(latest);
    await loaded;
  }, 5);

  let stopping = false;
  /** Stops everything and removes what this run made; `failedToStart` also removes a state folder it created. */
  async function stop(code: number, failedToStart = false): Promise<void> {
    if (stopping) return;
    stopping = true;
    versions.settle();
    await sources.close();
    await supervisor.stop();
    await builder.dispose();
    await checker?.stop();
    rmSync(buildDir, { recursive: true, force: true });
    removeIfEmpty(buildRoot);
    release();
    if (temporary || (failedToStart && created)) rmSync(directory, { recursive: true, force: true });
    if (failedToStart && created) removeIfEmpty(dirname(directory)); // .mend/
    finished(code);
  }

  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]] as const)
    process.on(signal, () => {
      if (stopping) {
        supervisor.kill();
        process.exit(code);
      }
      log(pc.dim(signal === "SIGINT" ? "mend: stopping (Ctrl+C again to force)" : `mend: stopping (${signal})`));
      void stop(code);
    });

  log(`mend: building ${show(entry)}`);
  if ((o.effectValidation ?? "quiet") === "quiet") log(effectValidationNotice());
  // The runtime boots while the first build runs.
  supervisor.start();
  await sources.ready();
  rebuild(undefined);
  return done;
}

/** Removes the build folders of watchers that are gone. */
function pruneBuilds(root: string): void {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0 || isAlive(pid)) continue;
    rmSync(join(root, name), { recursive: true, force: true });
  }
}

/** Removes a folder that nothing else uses: `build/` (a `mend serve` on the same state may build there), `.mend/`. */
function removeIfEmpty(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // not empty, or gone
  }
}
