import { execa, type ResultPromise } from "execa";
import { afterEach } from "vitest";
import { cli } from "./cli.js";
import { OutputReader } from "./output.js";

const running: ResultPromise[] = [];
afterEach(async () => {
  for (const child of running.splice(0)) {
    child.kill("SIGKILL");
    await child.catch(() => {});
  }
});

/** `mend dev run` in `cwd`, read step by step: each `until` looks only past the previous match. */
export class DevRun {
  readonly child: ReturnType<typeof spawnDev>;
  readonly #reader: OutputReader;

  constructor(cwd: string, args: string[] = [], env: Record<string, string> = {}) {
    this.child = spawnDev(cwd, args, env);
    running.push(this.child);
    this.#reader = new OutputReader(this.child, "mend dev run");
  }

  get output(): string {
    return this.#reader.output;
  }

  /** Waits for `pattern` in the output after the last match; fails with the whole output after `timeoutMs`. */
  until(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    return this.#reader.until(pattern, timeoutMs);
  }

  /** Waits for `pattern` anywhere in the output, for lines whose order is not fixed; the cursor stays. */
  seen(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    return this.#reader.seen(pattern, timeoutMs);
  }

  #url: string | undefined;

  /** The URL it serves on, once it says so. */
  async url(): Promise<string> {
    if (!this.#url) {
      const match = /serving \S+ at (http:\/\/\S+)/.exec(this.output) ?? (await this.until(/serving \S+ at (http:\/\/\S+)/));
      this.#url = match[1]!;
    }
    return this.#url;
  }

  async stop(): Promise<number | undefined> {
    this.child.kill("SIGINT");
    const result = await this.child;
    return result.exitCode;
  }
}

function spawnDev(cwd: string, args: string[], env: Record<string, string>) {
  return execa("node", [cli, "dev", "run", "--port", "0", ...args], {
    cwd,
    all: true,
    reject: false,
    stdin: "ignore",
    env: { NO_COLOR: "1", FORCE_COLOR: "0", ...env },
  });
}
