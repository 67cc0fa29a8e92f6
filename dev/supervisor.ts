import { execa, type ResultPromise } from "execa";
import type { FromRuntime, RuntimeConfig, ToRuntime } from "./messages.js";

export interface Exit {
  /** Why, in words: "exited with code 1", "was killed by SIGKILL", "stopped answering for 3 s". */
  reason: string;
  /** We killed it because it stopped answering. */
  stuck: boolean;
  /** We killed it to start a new one (restart reload mode). */
  planned: boolean;
}

export interface SupervisorOptions {
  script: string;
  /** Node's own flags for the child. */
  execArgv?: readonly string[];
  config: RuntimeConfig;
  onMessage: (message: FromRuntime) => void;
  onExit: (exit: Exit) => void;
  /** A runtime that has not answered a ping for this long is killed. @defaultValue 3000 */
  stuckMs?: number;
}

/** Starts the runtime child, watches its heartbeat, stops it. One child at a time. */
export class Supervisor {
  #child: ResultPromise | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #lastPong = 0;
  #ping = 0;
  #stuck = false;
  #planned = false;
  #stopping = false;

  constructor(private readonly options: SupervisorOptions) {}

  get running(): boolean {
    return this.#child !== undefined;
  }

  start(): void {
    if (this.#child || this.#stopping) return;
    const child = execa("node", [...(this.options.execArgv ?? []), this.options.script, JSON.stringify(this.options.config)], {
      ipc: true,
      serialization: "json",
      stdin: "ignore",
      stdout: "inherit",
      stderr: "inherit",
      reject: false,
      // The runtime dies with the watcher: never leave it behind.
      cleanup: true,
    });
    this.#child = child;
    this.#stuck = false;
    this.#planned = false;
    this.#lastPong = Date.now();
    child.on("message", (message: FromRuntime) => {
      if (message.type === "pong") this.#lastPong = Date.now();
      else this.options.onMessage(message);
    });
    const stuckMs = this.options.stuckMs ?? 3000;
    this.#heartbeat = setInterval(() => {
      if (Date.now() - this.#lastPong > stuckMs) {
        this.#stuck = true;
        child.kill("SIGKILL");
        return;
      }
      this.send({ type: "ping", n: ++this.#ping });
    }, Math.min(500, stuckMs / 3));
    void child.then((result) => {
      clearInterval(this.#heartbeat);
      this.#child = undefined;
      if (this.#stopping) return;
      const reason = this.#stuck
        ? `stopped answering for ${((this.options.stuckMs ?? 3000) / 1000).toFixed(0)} s (a task may be stuck in a synchronous loop)`
        : result.signal
          ? `was killed by ${result.signal}`
          : `exited with code ${result.exitCode}`;
      this.options.onExit({ reason, stuck: this.#stuck, planned: this.#planned });
    });
  }

  send(message: ToRuntime): void {
    const child = this.#child;
    if (!child?.connected) return;
    try {
      child.send(message);
    } catch {
      // The child is going away; its exit is reported.
    }
  }

  /** Asks the runtime to stop; kills it if it has not after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    this.#stopping = true;
    const child = this.#child;
    if (!child) return;
    this.send({ type: "stop" });
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await child;
    clearTimeout(timer);
  }

  /** Kills the runtime so that a new one starts (reported to onExit as planned). */
  restart(): void {
    if (!this.#child) return;
    this.#planned = true;
    this.#child.kill("SIGKILL");
  }

  kill(): void {
    this.#stopping = true;
    this.#child?.kill("SIGKILL");
  }
}
