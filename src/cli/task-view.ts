import type { TaskId } from "../api/task-id.js";
import type { AttemptInfo, TaskInfo, TaskSummary, ValuePreview } from "../runtime/runtime.js";
import { formatBytes } from "../runtime/json.js";
import { cut, duration, fitWidths, isoDate, printable, relativeTime, tableLine, type Column } from "./format.js";

// How `mend task list` and `mend task show` print tasks: pure, from the server's JSON.

export type SummaryJson = TaskSummary & { id: string };
export type TaskJson = TaskInfo & { id: string };
export type CutValues = Partial<Record<"request" | "response" | "error", ValuePreview>>;

/** `Account('carol')`, its id escaped. */
export function stateOf(id: Pick<TaskId, "stateType" | "stateId">): string {
  return `${printable(id.stateType)}('${printable(id.stateId)}')`;
}

function ago(at: number, now: number): string {
  const text = relativeTime(at, now);
  return text === "now" ? "just now" : text;
}

/** The WHEN of a task: `due in 41 s`, `ran 3 s ago`, `running 2 s`. */
export function whenOf(t: Pick<TaskSummary, "status" | "dueAt" | "updatedAt">, now: number): string {
  switch (t.status) {
    case "COMPLETED":
    case "ABORTED":
      return `ran ${ago(t.updatedAt, now)}`;
    case "CANCELLED":
      return `ended ${ago(t.updatedAt, now)}`;
    case "STARTED":
      return `running ${duration(Math.max(0, now - t.updatedAt)).replace(/\.\d s$/, " s")}`;
  }
  if (t.dueAt === null) return "waiting";
  if (Math.abs(t.dueAt - now) < 1000) return "due now";
  return `due ${relativeTime(t.dueAt, now)}`;
}

/** A task still failing shows its last error; one that completed after failing, or ended, does not. */
export function stillFailing(t: Pick<TaskSummary, "status" | "lastError">): boolean {
  return !!t.lastError && (t.status === "SCHEDULED_RETRY" || t.status === "STARTED");
}

/** Below this many characters, a row's error goes on a line of its own under the row. */
const ERROR_MIN_WIDTH = 16;

/**
 * The task table, its lines at most `width` long: short uuids, the state and method cut
 * if they must be, and the last error of a task still failing in what is left of the line
 * (or, if too little is left, on a line of its own under the task's).
 */
export function renderTaskList(tasks: SummaryJson[], now: number, width: number): string {
  if (tasks.length === 0) return "No tasks.";
  const rows = tasks.map((t) => [t.shortUuid, stateOf(t.taskId), printable(t.method), t.status, whenOf(t, now), String(t.attempts)]);
  const errors = tasks.map((t) => (stillFailing(t) ? printable(t.lastError!) : ""));
  const columns: Column[] = [
    { header: "TASK" },
    { header: "STATE", min: 10 },
    { header: "METHOD", min: 10 },
    { header: "STATUS" },
    { header: "WHEN" },
    { header: "TRIES" },
  ];
  if (errors.some((e) => e !== "")) {
    const withErrors = [...columns, { header: "LAST ERROR" }];
    const cells = rows.map((r, i) => [...r, errors[i]!]);
    const widths = fitWidths(withErrors, cells, width);
    if (widths.at(-1)! >= ERROR_MIN_WIDTH)
      return [tableLine(withErrors.map((c) => c.header), widths), ...cells.map((r) => tableLine(r, widths))].join("\n");
  }
  const widths = fitWidths(columns, rows, width);
  const lines = [tableLine(columns.map((c) => c.header), widths)];
  rows.forEach((r, i) => {
    lines.push(tableLine(r, widths));
    if (errors[i]) lines.push(`  ↳ ${cut(errors[i]!, width - 4)}`);
  });
  return lines.join("\n");
}

/** A value on one line of `show`: its JSON, cut at `max` characters with its size said. */
function valueLine(value: unknown, cutValue: ValuePreview | undefined, max: number): string | undefined {
  if (cutValue) return `${printable(cutValue.preview)}… (${formatBytes(cutValue.bytes)} in all; --full prints it)`;
  if (value === undefined) return undefined;
  const json = printable(JSON.stringify(value));
  if (json.length <= max) return json;
  return `${json.slice(0, max)}… (${formatBytes(Buffer.byteLength(JSON.stringify(value)))} in all; --json --full prints it)`;
}

/** A task and every attempt, for `mend task show`; `full` prints values whole. */
export function renderTask(t: TaskJson, attempts: AttemptInfo[], now: number, cutValues: CutValues = {}, full = false): string {
  const max = full ? Infinity : 500;
  const lines = [
    `Task      ${printable(t.id)}`,
    `State     ${stateOf(t.taskId)}`,
    `Method    ${printable(t.method)}`,
    `Status    ${t.status}`,
    `Created   ${isoDate(t.createdAt)} (${relativeTime(t.createdAt, now)})`,
  ];
  if (t.dueAt !== null) lines.push(`Due       ${isoDate(t.dueAt)} (${relativeTime(t.dueAt, now)})`);
  if (t.lastError) lines.push(`Error     ${cut(printable(t.lastError), 200)}`);
  for (const [label, key] of [["Request   ", "request"], ["Response  ", "response"], ["Declared  ", "error"]] as const) {
    const line = valueLine(t[key], cutValues[key], max);
    if (line !== undefined) lines.push(`${label}${line}`);
  }
  lines.push("", attempts.length === 0 ? "No attempts yet." : `Attempts (${attempts.length}):`);
  for (const a of attempts) {
    const took = a.endedAt === null ? "running" : duration(a.endedAt - a.startedAt);
    lines.push(`  #${a.number}  ${printable(a.version)}  ${isoDate(a.startedAt)}  ${took}  ${a.outcome ?? "RUNNING"}`);
    if (a.error) {
      const stack = a.error.stack ?? `${a.error.name ?? "Error"}: ${a.error.message ?? ""}`;
      for (const l of stack.split("\n")) lines.push(`      ${printable(l)}`);
    }
  }
  return lines.join("\n");
}
