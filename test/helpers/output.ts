import type { ResultPromise } from "execa";

/**
 * A child's combined output, read step by step: each `until` looks only past the previous
 * match, and fails with the whole output (not a bare timeout) when the pattern does not come.
 */
export class OutputReader {
  #output = "";
  #cursor = 0;
  readonly #listeners = new Set<() => void>();

  constructor(
    private readonly child: ResultPromise,
    /** Names the child in errors: "mend dev run", "npm run dev". */
    private readonly name: string,
  ) {
    child.all!.on("data", (chunk: Buffer) => {
      this.#output += chunk.toString();
      for (const f of this.#listeners) f();
    });
    child.once("exit", () => {
      for (const f of this.#listeners) f();
    });
  }

  get output(): string {
    return this.#output;
  }

  /** Waits for `pattern` in the output after the last match. */
  until(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = this.#output.slice(this.#cursor).match(pattern);
        if (match) {
          this.#cursor += match.index! + match[0].length;
          finish();
          resolve(match);
        } else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          finish();
          reject(new Error(`${this.name} exited before ${pattern}:\n${this.#output}`));
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
}
