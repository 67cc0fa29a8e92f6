/** Messages between the watcher and the runtime child, over Node's IPC channel. */

export interface AttemptReport {
  taskId: string;
  method: string;
  attempt: number;
  version: string;
  outcome: "COMPLETED" | "ABORTED" | "FAILED" | "ITERATED";
  error?: { name: string; message: string; stack?: string };
  retryInMs?: number;
}

export type ToRuntime =
  | { type: "load"; version: string; file: string; retryFailing?: boolean }
  | { type: "ping"; n: number }
  | { type: "stop" };

export type FromRuntime =
  | { type: "started"; url: string }
  | { type: "loaded"; version: string; ms: number; retrying: string[] }
  | { type: "load-failed"; version: string; message: string }
  | { type: "pong"; n: number }
  | { type: "attempt"; report: AttemptReport }
  | { type: "waiting"; taskId: string; method: string; reason: string }
  | { type: "effect-validation"; method: string; message: string }
  | { type: "fatal"; message: string };

/** How the watcher starts the runtime child: passed as one JSON argument. */
export interface RuntimeConfig {
  directory: string;
  host: string;
  port: number;
  effectValidation?: string;
}
