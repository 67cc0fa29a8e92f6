/** Messages between the watcher and the runtime child, over Node's IPC channel. */
import type { DevLoopReport } from "../src/server/dev-loop.js";
import type { AttemptReport, WaitingReport } from "../src/cli/log-lines.js";
import type { AttemptStart } from "../src/cli/task-log.js";
import type { Recovery } from "../src/runtime/engine.js";

export type { AttemptReport };

/** What the watcher knows of a version when it asks a runtime to load it (recorded in the store). */
export interface VersionInfo {
  /** The files whose saves led to it, relative to the app's folder. */
  changed: string[];
  buildMs: number;
}

export type ToRuntime =
  | { type: "load"; version: string; file: string; info?: VersionInfo; retryFailing?: boolean }
  /** What the watcher saw (a failed build, a restart), kept by the runtime for the dashboard. */
  | { type: "dev"; report: DevLoopReport }
  | { type: "ping"; n: number }
  | { type: "stop" };

export type FromRuntime =
  /** The store is open: its last recorded version, so that numbers go on across runs. */
  | { type: "store"; lastVersion: number }
  | { type: "started"; url: string }
  | { type: "loaded"; version: string; ms: number; retrying: string[] }
  | { type: "load-failed"; version: string; message: string }
  | { type: "pong"; n: number }
  | { type: "attempt-start"; start: AttemptStart }
  | { type: "attempt"; report: AttemptReport }
  | ({ type: "waiting" } & WaitingReport)
  /** A method ran twice under effect validation; `differences` says what its two runs did differently. */
  | { type: "effect-validation"; method: string; message: string; differences: string[] }
  | { type: "fatal"; message: string };

/** How the watcher starts the runtime child: passed as one JSON argument (the admin secret goes by the environment, never on a command line). */
export interface RuntimeConfig {
  directory: string;
  host: string;
  port: number;
  effectValidation?: string;
  /** The dashboard's editor link template (--editor-url). */
  editorUrl?: string;
  /** At most this many attempts at once (RuntimeOptions.concurrency). */
  concurrency?: number;
  /** Set on a restart: how the previous runtime stopped, and the tasks to park. */
  recovery?: Recovery;
}
