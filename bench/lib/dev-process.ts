import { execa } from "execa";
import { performance } from "node:perf_hooks";
import { stopChild, track } from "./cleanup.js";

function spawnDev(cli: string, cwd: string, args: readonly string[]) {
  return execa("node", [cli, "dev", "run", "--port", "0", "--host", "127.0.0.1", ...args], {
    cwd,
    all: true,
    reject: false,
    stdin: "ignore",
    buffer: false,
    env: { NO_COLOR: "1", FORCE_COLOR: "0", ...(process.env.BENCH_DEBUG ? { MEND_DEBUG: "1" } : {}) },
  });
}

/** `mend dev run` in a child process, its output read as it comes. */
export class DevProcess {
  readonly child: ReturnType<typeof spawnDev>;
  /** performance.now() when the process was spawned. */
  readonly spawnedAt: number;
  #output = "";
  #listeners = new Set<() => void>();

  constructor(cli: string, cwd: string, args: readonly string[]) {
    this.spawnedAt = performance.now();
    this.child = track(spawnDev(cli, cwd, args));
    this.child.all!.setEncoding("utf8");
    this.child.all!.on("data", (chunk: string) => {
      this.#output += chunk;
      for (const f of this.#listeners) f();
    });
    void this.child.then(() => {
      for (const f of this.#listeners) f();
    });
  }

  get output(): string {
    return this.#output;
  }

  /** Where the output ends now: pass it to `until` to look only at what comes after. */
  mark(): number {
    return this.#output.length;
  }

  /**
   * Resolves with the first match of `pattern` in the output after `from`, and the
   * performance.now() at which it was seen; rejects after `timeoutMs` or if the process exits.
   */
  until(pattern: RegExp, from = 0, timeoutMs = 20_000): Promise<{ match: RegExpMatchArray; end: number; at: number }> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = this.#output.slice(from).match(pattern);
        if (match) {
          finish();
          resolve({ match, end: from + match.index! + match[0].length, at: performance.now() });
        } else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          finish();
          reject(new Error(`mend dev run exited before printing ${pattern}; output:\n${this.tail()}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`mend dev run printed no ${pattern} within ${timeoutMs} ms; output:\n${this.tail()}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.#listeners.delete(check);
      };
      this.#listeners.add(check);
      check();
    });
  }

  /** The URL it serves at. */
  async url(timeoutMs?: number): Promise<string> {
    const { match } = await this.until(/serving \S+ at (http:\/\/\S+)/, 0, timeoutMs);
    return match[1]!;
  }

  tail(lines = 40): string {
    return this.#output.split("\n").slice(-lines).join("\n");
  }

  stop(): Promise<void> {
    return stopChild(this.child);
  }
}
