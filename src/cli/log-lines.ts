// Every line `mend dev run` and `mend serve` print about a task, in one place, so that the
// two speak the same words.
import pc from "picocolors";

/** One attempt's end, as the runtime reports it. */
export interface AttemptReport {
  /** `Type/id/uuid` */
  taskId: string;
  method: string;
  attempt: number;
  version: string;
  outcome: "COMPLETED" | "ABORTED" | "FAILED" | "ITERATED";
  error?: { name: string; message: string; stack?: string };
  retryInMs?: number;
  /** From the attempt's start (once stored) to its end (once stored), on a monotonic clock. */
  durationMs?: number;
}

/** A task that waits for a code version that has its method. */
export interface WaitingReport {
  taskId: string;
  method: string;
  reason: string;
}

/** A task the dev watcher stopped: it was running when the runtime stopped answering or died. */
export interface StoppedTask {
  taskId: string;
  method: string;
  version: string;
  /** How long its attempt had run when the runtime stopped. */
  ranMs: number;
}

export type LogFormat = "text" | "json";

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** "41 ms", "3.4 s" */
export function seconds(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** A limit as set: "3 s", "1.5 s", "250 ms". */
export function limit(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${Number((ms / 1000).toFixed(1))} s`;
}

/**
 * How much of a task uuid a line shows: `01a2230e-d536-735d`. Task uuids are UUIDv7, time
 * first: the first 8 characters are the same for every task of the same minute, the first
 * 13 for every task of the same millisecond; the next 3 digits are random.
 */
export function shortUuid(uuid: string): string {
  return uuid.slice(0, 18);
}

/** A task id `Type/id/uuid` shown as `Type('id').method [01a2230e-d536-735d]`. */
export function taskLabel(taskId: string, method: string): string {
  const [type, id, uuid] = taskId.split("/");
  return `${type}('${safeDecode(id ?? "")}').${method} ${pc.dim(`[${shortUuid(uuid ?? "")}]`)}`;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * Keeps a stack's frames that point at the user's code, dropping Node's and packages'.
 * mend's own frames are already left out where the stack was made (src/server/stacks.ts).
 */
export function userStack(stack: string | undefined): string {
  if (!stack) return "";
  return stack
    .split("\n")
    .slice(1)
    .filter((l) => /^\s+at /.test(l) && !l.includes("node:") && !l.includes("/node_modules/"))
    .map((l) => `    ${l.trim()}`)
    .join("\n");
}

/** `  ✗ Account('carol').statement [01a2230e-d536-735d] failed on v1 (attempt 1): Error: … — retry in 60.0 s, or save a fix` */
export function attemptLine(r: AttemptReport, withStack: boolean, saveHint = true): string {
  const label = taskLabel(r.taskId, r.method);
  if (r.outcome === "COMPLETED") return `  ${pc.green("✓")} ${label} completed on ${r.version} (attempt ${r.attempt})`;
  if (r.outcome === "ITERATED") return `  ${pc.green("↻")} ${label} finished iteration on ${r.version}`;
  if (r.outcome === "ABORTED") return `  ${pc.yellow("■")} ${label} aborted on ${r.version}: ${r.error?.message ?? "declared error"}`;
  const retry = r.retryInMs === undefined ? "" : pc.dim(` — retry in ${(r.retryInMs / 1000).toFixed(1)} s${saveHint ? ", or save a fix" : ""}`);
  const head = `  ${pc.red("✗")} ${label} failed on ${r.version} (attempt ${r.attempt}): ${r.error?.name ?? "Error"}: ${r.error?.message ?? ""}${retry}`;
  const stack = withStack ? userStack(r.error?.stack) : "";
  return stack ? `${head}\n${stack}` : head;
}

/** `  … Account('dora').statement [01a2230e-d536-735d] waits: The method Account.statement does not exist in …` */
export function waitingLine(w: WaitingReport): string {
  return `  ${pc.yellow("…")} ${taskLabel(w.taskId, w.method)} waits: ${w.reason}`;
}

/** The error a stuck task is parked with. */
export function stuckReason(hangMs: number): string {
  return `stuck: ran for more than ${limit(hangMs)} without yielding; parked until new code or a retry`;
}

/** The error a task that stopped the runtime twice in a row is parked with. */
export function crashReason(how: string): string {
  return `stopped the runtime twice in a row (it ${how}); parked until new code or a retry`;
}

/** `  ⏸ Account('carol').statement [01a2230e-d536-735d] on v2, after 3.4 s: stuck: …` */
export function parkedLine(t: StoppedTask, reason: string): string {
  const uuid = t.taskId.split("/")[2] ?? "";
  return `  ${pc.red("⏸")} ${taskLabel(t.taskId, t.method)} on ${t.version}, after ${seconds(t.ranMs)}: ${reason} ${pc.dim(`(mend task retry ${uuid})`)}`;
}

/** A task that was running when the runtime died: parked if it happens again. */
export function suspectLine(t: StoppedTask): string {
  return `  ${pc.yellow("!")} ${taskLabel(t.taskId, t.method)} on ${t.version} was running (for ${seconds(t.ranMs)}); if the runtime stops again while it runs, it is parked`;
}

/** One JSON object per line, for log collectors. */
export function attemptJson(r: AttemptReport, at = new Date()): string {
  return JSON.stringify({
    time: at.toISOString(),
    event: "attempt",
    taskId: r.taskId,
    method: r.method,
    attempt: r.attempt,
    version: r.version,
    outcome: r.outcome,
    error: r.error ?? null,
    durationMs: r.durationMs === undefined ? null : Math.round(r.durationMs * 10) / 10,
    ...(r.retryInMs === undefined ? {} : { retryInMs: r.retryInMs }),
  });
}

export function waitingJson(w: WaitingReport, at = new Date()): string {
  return JSON.stringify({ time: at.toISOString(), event: "waiting", taskId: w.taskId, method: w.method, reason: w.reason });
}
