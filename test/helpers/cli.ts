import { execa, type ResultPromise } from "execa";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach } from "vitest";
import { tempDir } from "./temp.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
export const cli = join(root, "dist/cli.js");

/** A temporary copy of a fixture app; tests never touch the committed one. */
export function copyFixture(name: string, into = tempDir()): string {
  const dir = join(into, name);
  cpSync(join(root, "fixtures", name), dir, { recursive: true });
  return dir;
}

/** Runs the built CLI to completion; never throws on a non-zero exit. */
export function mend(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  return execa("node", [cli, ...args], { reject: false, cwd: options.cwd, env: { COLUMNS: "200", ...options.env }, stdin: "ignore", timeout: 20_000 });
}

const perTest: ResultPromise[] = [];
const perFile: ResultPromise[] = [];
async function stop(list: ResultPromise[]) {
  for (const s of list.splice(0)) {
    s.kill("SIGTERM");
    await s.catch(() => {});
  }
}
afterEach(() => stop(perTest));
afterAll(() => stop(perFile));

/** Reads a child's output until a line matches, or fails after `timeoutMs`. */
export function waitForOutput(child: ResultPromise, pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      const match = seen.match(pattern);
      if (match) done(() => resolve(match));
    };
    const onExit = () => done(() => reject(new Error(`exited before printing ${pattern}; output:\n${seen}`)));
    const timer = setTimeout(() => done(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms; output:\n${seen}`))), timeoutMs);
    const done = (f: () => void) => {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.stderr?.off("data", onData);
      child.off("exit", onExit);
      f();
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", onExit);
  });
}

/** `mend serve` on a free port in `appDir`; stopped after the test, or after the file with `forFile`. */
export async function serve(appDir: string, extra: string[] = [], forFile = false, env: Record<string, string> = {}) {
  const child = execa("node", [cli, "serve", "--application", "src/main.ts", "--name", "test", "--port", "0", ...extra], {
    cwd: appDir,
    env,
    reject: false,
    stdin: "ignore",
    all: true,
  });
  (forFile ? perFile : perTest).push(child);
  const [, url] = await waitForOutput(child, /serving test at (http:\/\/\S+)/);
  return { url: url!, child };
}
