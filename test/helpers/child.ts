import { build } from "esbuild";
import { execa, type ResultPromise } from "execa";
import { once } from "node:events";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));
export const distIndex = join(root, "dist/index.js");

/** Bundles an app for a child process; `mend` stays an import of the built package. */
export async function bundleApp(entry: string, outfile: string): Promise<string> {
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: "esm",
    platform: "node",
    logLevel: "silent",
    plugins: [
      {
        name: "mend-external",
        setup(b) {
          b.onResolve({ filter: /^mend$/ }, () => ({ path: distIndex, external: true }));
        },
      },
    ],
  });
  return outfile;
}

const children: ResultPromise[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await child.catch(() => {});
    }
  }
});

export type Child = ResultPromise<{ reject: false; buffer: false }> & {
  /** Resolves with the first JSON line on stdout that `match` accepts. */
  line<T = Record<string, unknown>>(match: (line: T) => boolean, timeoutMs?: number): Promise<T>;
};

/** Runs test/helpers/run-app.mjs: a runtime on `directory` with the bundled app, in a child process. */
export function runApp(directory: string, bundle: string, actions: unknown[] = [], env: Record<string, string> = {}): Child {
  const child = execa("node", [join(root, "test/helpers/run-app.mjs"), directory, bundle, JSON.stringify(actions)], {
    env,
    reject: false,
    buffer: false,
    stdin: "ignore",
    stderr: "inherit",
  }) as Child;
  children.push(child);
  const seen: Record<string, unknown>[] = [];
  const listeners = new Set<() => void>();
  let rest = "";
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (chunk: string) => {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop()!;
    for (const l of lines) if (l.trim()) seen.push(JSON.parse(l) as Record<string, unknown>);
    for (const f of listeners) f();
  });
  child.line = <T>(match: (line: T) => boolean, timeoutMs = 15_000) =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`No matching line from the child within ${timeoutMs} ms; saw ${JSON.stringify(seen)}`));
      }, timeoutMs);
      const check = () => {
        const found = seen.find((l) => match(l as T));
        if (found) {
          clearTimeout(timer);
          listeners.delete(check);
          resolve(found as T);
        }
      };
      listeners.add(check);
      check();
      void once(child, "exit").then(() => setTimeout(check, 0));
    });
  return child;
}
