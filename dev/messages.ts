/** Messages between the watcher and the runtime child, over Node's IPC channel. */
import type { DevLoopReport } from "../src/server/dev-loop.js";

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
  | { type: "load"; version: string; file: string; info?: VersionInfo; retryFailing?: boolean }
  /** What the watcher saw (a failed build, a restart), kept by the runtime for the dashboard. */
  | { type: "dev"; report: DevLoopReport }
  | { type: "ping"; n: number }
  | { type: "stop" };

/** What the watcher knows of a version's build. */
export interface VersionInfo {
  /** The files whose saves led to it, relative to the working folder. */
  changed: string[];
  buildMs: number;
}

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
  /** The dashboard's editor link template (--editor-url). */
  editorUrl?: string;
}
