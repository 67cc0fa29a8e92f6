import { performance } from "node:perf_hooks";
import { TaskId } from "../api/task-id.js";
import type { Runtime } from "../runtime/runtime.js";
import { attemptJson, attemptLine, waitingJson, waitingLine, type AttemptReport, type LogFormat, type WaitingReport } from "./log-lines.js";

export interface AttemptStart {
  taskId: string;
  method: string;
  attempt: number;
  version: string;
}

export interface AttemptListener {
  start?(s: AttemptStart): void;
  end(r: AttemptReport): void;
  waiting(w: WaitingReport): void;
  /** A task ended (also by a cancel, which has no attempt end). */
  finished?(taskId: string): void;
}

/**
 * Turns a runtime's events into reports, each attempt with its duration: from the
 * `attempt:start` event (the start is stored) to `attempt:end` (the end is stored).
 */
export function reportAttempts(runtime: Runtime, listener: AttemptListener): () => void {
  const started = new Map<string, number>(); // task uuid -> when its attempt started
  const offs = [
    runtime.on("attempt:start", (e) => {
      started.set(e.taskId.taskUuid, performance.now());
      listener.start?.({ taskId: TaskId.format(e.taskId), method: e.method, attempt: e.attempt, version: e.version });
    }),
    runtime.on("attempt:end", (e) => {
      const t0 = started.get(e.taskId.taskUuid);
      started.delete(e.taskId.taskUuid);
      listener.end({
        taskId: TaskId.format(e.taskId), method: e.method, attempt: e.attempt, version: e.version, outcome: e.outcome,
        error: e.error && { name: e.error.name, message: e.error.message, stack: e.error.stack }, retryInMs: e.retryInMs,
        durationMs: t0 === undefined ? undefined : performance.now() - t0,
      });
    }),
    // A cancelled attempt has no end event.
    runtime.on("task:finished", (e) => {
      started.delete(e.taskId.taskUuid);
      listener.finished?.(TaskId.format(e.taskId));
    }),
    runtime.on("task:waiting", (e) => listener.waiting({ taskId: TaskId.format(e.taskId), method: e.method, reason: e.reason })),
  ];
  return () => offs.forEach((off) => off());
}

export interface TaskLogOptions {
  format: LogFormat;
  /**
   * Every attempt and "or save a fix" (dev), or only failures, aborts, and the end of a
   * task that failed before or took more than one attempt (serve).
   */
  dev: boolean;
  /** The app's folder: paths under it are shown relative to it. */
  root?: string;
}

/** Decides which reports make a line, and writes it: text (with the stack of a new error) or JSON. */
export class TaskLog {
  /** Task id -> the last error printed for it (its stack is printed once per distinct error). */
  readonly #failing = new Map<string, string>();

  constructor(private readonly options: TaskLogOptions) {}

  attempt(r: AttemptReport): string | undefined {
    const failedBefore = this.#failing.has(r.taskId);
    const newError = r.outcome === "FAILED" && this.#failing.get(r.taskId) !== (r.error?.message ?? "");
    if (r.outcome === "FAILED") this.#failing.set(r.taskId, r.error?.message ?? "");
    else this.#failing.delete(r.taskId);
    // Serve: failures and aborts, and the end of a task that failed before (in this process,
    // or before a restart: then all it knows is that this was not the first attempt).
    const endAfterFailure = failedBefore || (r.outcome === "COMPLETED" && r.attempt > 1);
    if (!this.options.dev && r.outcome !== "FAILED" && r.outcome !== "ABORTED" && !endAfterFailure) return undefined;
    return this.options.format === "json" ? attemptJson(r) : this.#relative(attemptLine(r, newError, this.options.dev));
  }

  waiting(w: WaitingReport): string {
    return this.options.format === "json" ? waitingJson(w) : this.#relative(waitingLine(w));
  }

  /** Forgets a task that ended without an attempt's end (a cancel). */
  forget(taskId: string): void {
    this.#failing.delete(taskId);
  }

  #relative(line: string): string {
    return this.options.root ? line.replaceAll(`${this.options.root}/`, "") : line;
  }
}
