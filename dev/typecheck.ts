import { relative } from "node:path";
import { Worker } from "node:worker_threads";
import pc from "picocolors";
import type { FromTypeChecker, TypeCheckData } from "./typecheck-worker.js";

/**
 * `--typecheck`: asks the checker worker for a check after each build, never two at once
 * (saves during a check fold into one more), and prints the app's type errors until they are
 * fixed. The swap never waits for it.
 */
export class TypeChecker {
  readonly #worker: Worker;
  #busy = false;
  #again = false;
  #clean: boolean | undefined; // the last check found no errors
  #off = false;

  constructor(
    script: string,
    data: TypeCheckData,
    private readonly log: (line: string) => void,
    private readonly warn: (line: string) => void,
  ) {
    this.#worker = new Worker(script, { workerData: data });
    this.#worker.unref();
    this.#worker.on("message", (m: FromTypeChecker) => this.#message(m, data.appDir));
    this.#worker.on("error", (e) => {
      this.#off = true;
      this.warn(`mend: the type checker stopped: ${e.message}; type checking is off.`);
    });
  }

  /** Checks the code as it is now on disk. */
  check(): void {
    if (this.#off) return;
    if (this.#busy) return void (this.#again = true);
    this.#busy = true;
    this.#worker.postMessage({ type: "check" });
  }

  async stop(): Promise<void> {
    await this.#worker.terminate();
  }

  #message(m: FromTypeChecker, appDir: string): void {
    if (m.type === "missing") {
      this.#off = true;
      this.warn(pc.yellow("mend: --typecheck needs the typescript package in this project (npm install --save-dev typescript); type checking is off."));
    } else if (m.type === "ready") {
      this.log(pc.dim(`mend: type checking with TypeScript ${m.version}${m.config ? ` (${relative(appDir, m.config) || m.config})` : ""}`));
    } else {
      this.#busy = false;
      if (m.errors > 0) this.warn(`${pc.red(`Type errors (${m.errors})`)}:\n${m.text}`);
      else if (this.#clean !== true) this.log(pc.green(`No type errors ${pc.dim(`(checked in ${Math.round(m.ms)} ms)`)}`));
      this.#clean = m.errors === 0;
      if (this.#again) {
        this.#again = false;
        this.check();
      }
    }
  }
}

