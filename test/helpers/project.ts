// A user's own project outside the repository: mend packed with `npm pack`, installed with
// npm from that tarball, and driven through its own node_modules/.bin.
import { execa, type ResultPromise } from "execa";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach } from "vitest";
import { OutputReader } from "./output.js";

export const root = fileURLToPath(new URL("../..", import.meta.url));

/**
 * The environment of npm and of the project's own tools: without what `npm test` and
 * vitest set for this run (npm_* settings, VITEST_*), so that they behave as in a shell.
 */
export function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !/^(npm_|vitest|vite_)/i.test(k) && k !== "NODE_ENV" && k !== "TEST" && k !== "INIT_CWD") env[k] = v;
  return { ...env, NO_COLOR: "1", FORCE_COLOR: "0" };
}

/** Runs npm (or any command) in `cwd`; rejects with its output if it fails. */
export async function run(command: string, args: string[], cwd: string, options: { env?: Record<string, string>; timeout?: number } = {}) {
  const env = { ...cleanEnv(), ...options.env };
  const result = await execa(command, args, { cwd, env, extendEnv: false, reject: false, all: true, stdin: "ignore", timeout: options.timeout ?? 120_000 });
  if (result.exitCode !== 0) throw new Error(`${command} ${args.join(" ")} failed (${result.exitCode}) in ${cwd}:\n${result.all}`);
  return result;
}

let packed: Promise<string> | undefined;
const packDirs: string[] = [];
afterAll(() => {
  for (const dir of packDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** mend as `npm pack` makes it from the built dist/ (npm test builds it first); once per file. */
export function packMend(): Promise<string> {
  packed ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), "mend-pack-"));
    packDirs.push(dir);
    // --ignore-scripts: dist/ is already built; prepack would build it again.
    const { stdout } = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], root);
    const [info] = JSON.parse(stdout) as { filename: string }[];
    return join(dir, info!.filename);
  })();
  return packed;
}

/**
 * `npm install` in `dir` from the registry (or npm's cache), without install scripts:
 * SQLite's native binding is copied from this repository's build instead of compiled again.
 */
export async function npmInstall(dir: string, specs: string[] = []) {
  await run("npm", ["install", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline", ...specs], dir, { timeout: 180_000 });
  const release = join(dir, "node_modules/better-sqlite3/build/Release");
  mkdirSync(release, { recursive: true });
  copyFileSync(join(root, "node_modules/better-sqlite3/build/Release/better_sqlite3.node"), join(release, "better_sqlite3.node"));
}

const running: ResultPromise[] = [];
afterEach(async () => {
  for (const child of running.splice(0)) {
    signalGroup(child, "SIGKILL");
    await child.catch(() => {});
  }
});

/** Signals the child's whole process group, as Ctrl+C in a terminal does (npm, its shell, mend, mend's runtime). */
function signalGroup(child: ResultPromise, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // Already gone.
  }
}

/**
 * A long-running command in `cwd`, in a process group of its own, whose output is read
 * step by step, each `until` past the last match.
 */
export class Running {
  readonly child: ResultPromise;
  readonly #reader: OutputReader;

  constructor(command: string, args: string[], cwd: string) {
    this.child = execa(command, args, { cwd, env: cleanEnv(), extendEnv: false, all: true, reject: false, stdin: "ignore", detached: true });
    running.push(this.child);
    this.#reader = new OutputReader(this.child, `${command} ${args.join(" ")}`);
  }

  get output(): string {
    return this.#reader.output;
  }

  until(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return this.#reader.until(pattern, timeoutMs);
  }

  /** Ctrl+C: how the command ended (npm itself ends by the signal, mend with 130). */
  async stop(): Promise<{ exitCode: number | undefined; signal: string | undefined }> {
    signalGroup(this.child, "SIGINT");
    const { exitCode, signal } = await this.child;
    return { exitCode, signal };
  }
}
