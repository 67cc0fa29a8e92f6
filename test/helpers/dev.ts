import { execa, type ResultPromise } from "execa";
import { afterEach } from "vitest";
import { cli } from "./cli.js";

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
  #output = "";
  #cursor = 0;
  #listeners = new Set<() => void>();

  constructor(cwd: string, args: string[] = [], env: Record<string, string> = {}) {
    this.child = spawnDev(cwd, args, env);
    running.push(this.child);
    this.child.all!.on("data", (chunk: Buffer) => {
      this.#output += chunk.toString();
      for (const f of this.#listeners) f();
    });
    this.child.once("exit", () => {
      for (const f of this.#listeners) f();
    });
  }

  get output(): string {
    return this.#output;
  }

  /** Waits for `pattern` in the output after the last match; fails with the whole output after `timeoutMs`. */
  until(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const rest = this.#output.slice(this.#cursor);
        const match = rest.match(pattern);
        if (match) {
          this.#cursor += match.index! + match[0].length;
          finish();
          resolve(match);
        } else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          finish();
          reject(new Error(`mend dev run exited before ${pattern}:\n${this.#output}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`no ${pattern} within ${timeoutMs} ms; output:\n${this.#output}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.#listeners.delete(check);
      };
      this.#listeners.add(check);
      check();
    });
  }

  /** Waits for `pattern` anywhere in the output, for lines whose order is not fixed; the cursor stays. */
  async seen(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    const found = this.#output.match(pattern);
    if (found) return found;
    const cursor = this.#cursor;
    this.#cursor = 0;
    try {
      return await this.until(pattern, timeoutMs);
    } finally {
      this.#cursor = Math.max(cursor, this.#cursor);
    }
  }

  #url: string | undefined;

  /** The URL it serves on, once it says so. */
  async url(): Promise<string> {
    if (!this.#url) {
      const match = /serving \S+ at (http:\/\/\S+)/.exec(this.#output) ?? (await this.until(/serving \S+ at (http:\/\/\S+)/));
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
