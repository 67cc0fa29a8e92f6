import { execa, type ResultPromise } from "execa";
import { performance } from "node:perf_hooks";
import { limit } from "../src/cli/log-lines.js";
import { Heartbeat } from "./heartbeat.js";
import type { FromRuntime, RuntimeConfig, ToRuntime } from "./messages.js";

export interface Exit {
  /** Why, in words: "exited with code 1", "was killed by SIGKILL", "stopped answering for 3 s". */
  reason: string;
  /** We killed it because it stopped answering. */
  stuck: boolean;
  /** We killed it to start a new one (restart reload mode). */
  planned: boolean;
  /** The signal that ended it, if one did. */
  signal?: string;
  /** When it stopped (ms since the epoch): when we killed it, or saw it gone. */
  stoppedAt: number;
}

export interface SupervisorOptions {
  script: string;
  /** Node's own flags for the child. */
  execArgv?: readonly string[];
  /** Read at each start: a restart passes what the previous runtime left (see RuntimeConfig.recovery). */
  config: () => RuntimeConfig;
  /** Added to the child's environment (secrets go here, never on its command line). */
  env?: Record<string, string>;
  onMessage: (message: FromRuntime) => void;
  onExit: (exit: Exit) => void;
  /** A runtime that has left a ping unanswered for this long is killed. @defaultValue 3000 */
  stuckMs?: number;
}

/** Starts the runtime child, watches its heartbeat, stops it. One child at a time. */
export class Supervisor {
  #child: ResultPromise | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #stuck = false;
  #planned = false;
  #stopping = false;
  #stoppedAt = 0;

  constructor(private readonly options: SupervisorOptions) {}

  get running(): boolean {
    return this.#child !== undefined;
  }

  get stuckMs(): number {
    return this.options.stuckMs ?? 3000;
  }

  start(): void {
    if (this.#child || this.#stopping) return;
    const child = execa("node", [...(this.options.execArgv ?? []), this.options.script, JSON.stringify(this.options.config())], {
      ipc: true,
      serialization: "json",
      stdin: "ignore",
      stdout: "inherit",
      stderr: "inherit",
      reject: false,
      env: this.options.env,
      // The runtime dies with the watcher: never leave it behind (see also dieWithWatcher).
      cleanup: true,
    });
    this.#child = child;
    this.#stuck = false;
    this.#planned = false;
    this.#stoppedAt = 0;
    const heartbeat = new Heartbeat();
    child.on("message", (message: FromRuntime) => {
      if (message.type === "pong") heartbeat.pong(message.n);
      else this.options.onMessage(message);
    });
    const stuckMs = this.stuckMs;
    this.#heartbeat = setInterval(() => {
      const now = performance.now();
      if (heartbeat.stalledFor(now) > stuckMs) {
        clearInterval(this.#heartbeat);
        this.#stuck = true;
        this.#kill(child);
        return;
      }
      this.send({ type: "ping", n: heartbeat.ping(now) });
    }, Math.max(20, Math.min(250, stuckMs / 4)));
    void child.then((result) => {
      clearInterval(this.#heartbeat);
      this.#child = undefined;
      if (this.#stopping) return;
      const reason = this.#stuck
        ? `stopped answering for ${limit(stuckMs)}`
        : result.signal
          ? `was killed by ${result.signal}`
          : `exited with code ${result.exitCode}`;
      this.options.onExit({ reason, stuck: this.#stuck, planned: this.#planned, signal: result.signal, stoppedAt: this.#stoppedAt || Date.now() });
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
    this.#kill(this.#child);
  }

  kill(): void {
    this.#stopping = true;
    this.#child?.kill("SIGKILL");
  }

  #kill(child: ResultPromise): void {
    this.#stoppedAt ||= Date.now();
    child.kill("SIGKILL");
  }
}
