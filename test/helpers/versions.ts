// A process that builds and loads versions of an app as `mend dev run`'s runtime does
// (version-driver.ts, bundled from the sources and run with RELOADING_FLAGS).
import { build } from "esbuild";
import { execa, type ResultPromise } from "execa";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach } from "vitest";
import { RELOADING_FLAGS } from "../../src/server/load.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
// Inside node_modules, so that the bundle's packages (esbuild, zod) resolve.
const driver = join(root, `node_modules/.cache/mend-test/version-driver-${process.pid}.mjs`);
let bundled: Promise<unknown> | undefined;

const running: ResultPromise[] = [];
afterEach(async () => {
  for (const child of running.splice(0)) {
    child.kill("SIGKILL");
    await child.catch(() => {});
  }
});
afterAll(() => rmSync(driver, { force: true }));

export interface LoadAnswer {
  ok: boolean;
  version?: string;
  compiled: number;
  runs: string[];
  error?: string;
}

export class Versions {
  readonly #child: ResultPromise;
  readonly #answers: string[] = [];
  readonly #waiting: ((line: string) => void)[] = [];

  private constructor(child: ResultPromise) {
    this.#child = child;
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const waiter = this.#waiting.shift();
      if (waiter) waiter(line);
      else this.#answers.push(line);
    });
  }

  /** Starts a driver for the app whose entry is `entry`, building into `outdir`. */
  static async start(entry: string, outdir: string): Promise<Versions> {
    bundled ??= build({
      entryPoints: [join(root, "test/helpers/version-driver.ts")],
      outfile: driver,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      packages: "external",
      logLevel: "warning",
    });
    await bundled;
    const child = execa("node", [...RELOADING_FLAGS, "--expose-gc", driver, entry, outdir], { stdin: "pipe", stdout: "pipe", stderr: "inherit", reject: false });
    running.push(child);
    return new Versions(child);
  }

  async #ask<T>(op: string): Promise<T> {
    const line = new Promise<string>((resolve, reject) => {
      const queued = this.#answers.shift();
      if (queued !== undefined) return resolve(queued);
      this.#waiting.push(resolve);
      void this.#child.then((r) => reject(new Error(`the driver exited (${r.exitCode ?? r.signal}) before answering ${op}`)));
    });
    this.#child.stdin!.write(`${JSON.stringify({ op })}\n`);
    return JSON.parse(await line) as T;
  }

  /** Builds, writes and loads the next version. */
  load(): Promise<LoadAnswer> {
    return this.#ask("load");
  }

  /** Waits until the modules made ahead for the next version are made; how many were compiled. */
  spares(): Promise<{ compiled: number }> {
    return this.#ask("spares");
  }

  /** Forgets every version but the last and collects garbage; the labels of tracked objects now gone. */
  drop(): Promise<{ freed: string[] }> {
    return this.#ask("drop");
  }
}
