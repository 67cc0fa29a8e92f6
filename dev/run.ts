import { watch, type FSWatcher } from "chokidar";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import pc from "picocolors";
import picomatch from "picomatch";
import { RELOADING_FLAGS } from "../src/server/load.js";
import { Builder, type BuildResult } from "./builder.js";
import type { FromRuntime, RuntimeConfig, VersionInfo } from "./messages.js";
import { attemptLine, readyLine } from "./output.js";
import { serial } from "./serial.js";
import { Supervisor, type Exit } from "./supervisor.js";

export interface DevRunOptions {
  application: string;
  name?: string;
  watch: string[];
  port: number;
  host: string;
  stateDirectory: string;
  effectValidation?: string;
  /** `swap` loads new code into the running runtime; `restart` starts a new runtime for it. @defaultValue "swap" */
  reload?: "swap" | "restart";
  /** The dashboard's editor link of a stack frame (`{file}`, `{line}`, `{column}`). */
  editorUrl?: string;
}

interface Version {
  version: string;
  file: string;
  info?: VersionInfo;
}

interface Change {
  path: string;
  at: number;
}

const log = (line: string) => console.log(line);
const warn = (line: string) => console.error(line);

/** `mend dev run`: build, run, watch, reload; resolves with the exit code once stopped. */
export async function devRun(o: DevRunOptions): Promise<number> {
  const cwd = process.cwd();
  const entry = resolve(o.application);
  let directory: string;
  let temporary = false;
  if (o.name) directory = join(resolve(o.stateDirectory), ".mend", o.name);
  else {
    directory = mkdtempSync(join(tmpdir(), "mend-dev-"));
    temporary = true;
    warn(pc.yellow(`mend: no --name, so state goes to ${directory} and is deleted on exit. Use --name NAME to keep it.`));
  }
  const show = (p: string) => relative(cwd, p) || p;
  // Each watcher builds into a folder of its own: a second one on the same state (which the
  // store will refuse) must not overwrite the first one's bundles.
  const buildRoot = join(directory, "build");
  pruneBuilds(buildRoot);
  const buildDir = join(buildRoot, String(process.pid));
  const builder = new Builder(entry, buildDir);
  const config: RuntimeConfig = { directory, host: o.host, port: o.port, effectValidation: o.effectValidation, editorUrl: o.editorUrl };

  let current: Version | undefined; // the newest version a runtime accepted
  let latest: Version | undefined; // the newest good build that no runtime has rejected
  let next = 1;
  let url: string | undefined;
  let fresh = true; // the runtime has no version loaded yet
  let finished: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => (finished = resolve));
  const causes = new Map<string, Change[]>(); // version -> the saves that led to it
  const failures = new Map<string, string>(); // task id -> last error message printed with its stack

  const send = (v: Version) => supervisor.send({ type: "load", version: v.version, file: v.file, info: v.info });

  const onLoaded = (m: Extract<FromRuntime, { type: "loaded" | "load-failed" }>) => {
    const v = latest?.version === m.version ? latest : current?.version === m.version ? current : undefined;
    if (!v) return;
    const changes = causes.get(m.version) ?? [];
    causes.delete(m.version);
    if (m.type === "load-failed") {
      warn(`${pc.red(`${m.version} rejected`)}: ${m.message}`);
      warn(current && current !== v ? `${current.version} keeps serving.` : "Waiting for a save that fixes it.");
      if (latest === v) latest = current;
      if (v !== current) builder.remove(v.version);
      // A runtime that just started has nothing loaded: give it the last good version.
      if (fresh && current && current !== v) send(current);
      return;
    }
    fresh = false;
    if (current && current !== v) builder.remove(current.version);
    current = v;
    const started = changes.length > 0 ? Math.min(...changes.map((c) => c.at)) : undefined;
    const ms = started === undefined ? m.ms : Date.now() - started;
    log(readyLine(v.version, ms, [...new Set(changes.map((c) => show(c.path)))], m.retrying.length));
  };

  const onMessage = (m: FromRuntime) => {
    if (m.type === "started") {
      if (!url) {
        log(`mend: serving ${o.name ?? "the application"} at ${m.url}`);
        log(`mend: dashboard at ${m.url}/__/`);
      }
      url = m.url;
      config.port = Number(new URL(m.url).port);
    } else if (m.type === "loaded" || m.type === "load-failed") onLoaded(m);
    else if (m.type === "attempt") {
      const r = m.report;
      const first = r.outcome === "FAILED" && failures.get(r.taskId) !== r.error?.message;
      if (r.outcome === "FAILED") failures.set(r.taskId, r.error?.message ?? "");
      else failures.delete(r.taskId);
      log(attemptLine(r, first).replaceAll(`${cwd}/`, ""));
    } else if (m.type === "effect-validation") log(pc.dim(`  effect validation: ${m.message}`));
    else if (m.type === "waiting") log(`  ${pc.yellow("…")} ${m.taskId} waits: ${m.reason}`);
    else if (m.type === "fatal") {
      warn(`mend: ${m.message}`);
      void stop(1);
    }
  };

  let restarts = 0;
  const onExit = (exit: Exit) => {
    if (stopping) return;
    if (exit.planned) {
      supervisor.start();
      // Restart reload mode: the new runtime retries failing tasks at once, as a swap does.
      if (latest) supervisor.send({ type: "load", version: latest.version, file: latest.file, retryFailing: true });
      return;
    }
    restarts++;
    fresh = true;
    const v = latest ?? current;
    warn(pc.red(`mend: the runtime ${exit.reason}; restarting it on ${v?.version ?? "the next good build"}`));
    // A runtime that dies again and again at start waits a little between starts.
    setTimeout(() => {
      if (stopping) return;
      supervisor.start();
      supervisor.send({ type: "dev", report: { kind: "restarted", reason: `The runtime ${exit.reason}; restarted on ${v?.version ?? "the next good build"}.` } });
      if (v) send(latest ?? v);
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
    config,
    onMessage,
    onExit,
  });

  let watched = new Set<string>();
  const globs = o.watch.map((g) => picomatch(resolve(g)));
  const watcher: FSWatcher = watch([dirname(entry), ...o.watch.map((g) => resolve(picomatch.scan(g).base || "."))], {
    ignoreInitial: true,
    ignored: (p) => p.includes("/node_modules/") || p.startsWith(directory) || p.includes("/.git/"),
  });

  const updateWatched = (result: Extract<BuildResult, { ok: true }>) => {
    const inputs = new Set(result.inputs);
    const added = [...inputs].filter((p) => !watched.has(p) && !p.startsWith(dirname(entry)));
    if (added.length > 0) watcher.add(added);
    watched = inputs;
  };

  // `undefined` is the first build, which no save caused.
  // chokidar drops a file's change events within 50 ms of the previous one: after each
  // build, a file whose mtime moved past what the build saw is rebuilt again.
  const mtimes = new Map<string, number>();
  const mtimeOf = (p: string) => {
    try {
      return statSync(p).mtimeMs;
    } catch {
      return -1;
    }
  };
  const recheck = () => {
    for (const [p, seen] of mtimes) if (mtimeOf(p) !== seen) rebuild({ path: p, at: Date.now() });
  };

  const rebuild = serial<Change | undefined>(async (reasons) => {
    const changes = reasons.filter((c): c is Change => c !== undefined);
    for (const p of watched) mtimes.set(p, mtimeOf(p));
    const result = await builder.build();
    setTimeout(recheck, 60).unref();
    if (!result.ok) {
      supervisor.send({ type: "dev", report: { kind: "build-failed", message: result.message } });
      warn(`${pc.red("Build failed")}:\n${result.message}`);
      warn(current ? `${current.version} keeps serving; fix it and save.` : "Waiting for a save that fixes it.");
      return;
    }
    updateWatched(result);
    const version = `v${next++}`;
    const superseded = latest !== current ? latest : undefined;
    latest = { version, file: builder.write(version, result.code, result.map), info: { changed: [...new Set(changes.map((c) => show(c.path)))], buildMs: result.ms } };
    causes.set(version, changes);
    if (superseded) builder.remove(superseded.version);
    if (o.reload === "restart" && current) supervisor.restart();
    else send(latest);
  }, 5);

  const debug = process.env.MEND_DEBUG ? (line: string) => warn(pc.dim(`[debug] ${line}`)) : () => {};
  watcher.on("all", (event, path) => {
    debug(`${event} ${path}`);
    if (event === "addDir" || event === "unlinkDir") return;
    const abs = resolve(path);
    // Before the first good build any file beside the entry may matter; after it, only what esbuild read.
    const relevant = watched.has(abs) || globs.some((m) => m(abs)) || (!current && abs.startsWith(dirname(entry)));
    if (relevant) rebuild({ path: abs, at: Date.now() });
  });

  let stopping = false;
  async function stop(code: number): Promise<void> {
    if (stopping) return;
    stopping = true;
    await watcher.close();
    await supervisor.stop();
    await builder.dispose();
    rmSync(buildDir, { recursive: true, force: true });
    if (temporary) rmSync(directory, { recursive: true, force: true });
    finished(code);
  }

  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const)
    process.on(signal, () => {
      if (stopping) {
        supervisor.kill();
        process.exit(code);
      }
      log(pc.dim("mend: stopping (Ctrl+C again to force)"));
      void stop(code);
    });

  log(`mend: building ${show(entry)}`);
  // The runtime boots while the first build runs.
  supervisor.start();
  await watcherReady(watcher);
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

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === "EPERM";
  }
}

function watcherReady(watcher: FSWatcher): Promise<void> {
  return new Promise((resolve) => watcher.once("ready", () => resolve()));
}
