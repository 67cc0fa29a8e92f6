import type { TaskInfo, ValuePreview } from "../runtime/runtime.js";
import { FINISHED, type TaskStatus } from "../store/statements.js";
import type { Refusal } from "./guard.js";

// Pure decisions about what the task routes answer: why a cancel or a retry does nothing,
// and how much of a task's values `show` sends.

type TaskState = Pick<TaskInfo, "status" | "dueAt" | "lastError">;

/** Why a cancel does nothing, or undefined if the task may be cancelled. */
export function cancelRefusal(task: TaskState): Refusal | undefined {
  if (task.status === "CANCELLED") return { status: 409, code: "ALREADY_CANCELLED", message: "Task is already cancelled." };
  if (FINISHED.has(task.status))
    return { status: 409, code: "ALREADY_FINISHED", message: `Task has already finished (${task.status}); nothing to cancel.` };
  return undefined;
}

const MISSING_CODE = /^(The (?:method|state type) \S+ does not exist in code version \S+?);/;

/** Whether the task waits for a code version that has its method (the engine's mark: no due time, and why). */
export function isWaitingForCode(task: TaskState): boolean {
  return task.status === "SCHEDULED_RETRY" && task.dueAt === null && MISSING_CODE.test(task.lastError ?? "");
}

/** Why a retry does nothing, or undefined if the task may be run now. */
export function retryRefusal(task: TaskState): Refusal | undefined {
  if (FINISHED.has(task.status as TaskStatus))
    return { status: 409, code: "FINISHED", message: `Task has finished (${task.status}); nothing to retry.` };
  if (task.status === "STARTED") return { status: 409, code: "RUNNING", message: "Task is running; nothing to retry." };
  if (isWaitingForCode(task)) {
    const why = MISSING_CODE.exec(task.lastError!)![1];
    return {
      status: 409,
      code: "WAITING_FOR_CODE",
      message: `${why}: the task will keep waiting until a version that has it is loaded; nothing to retry.`,
    };
  }
  return undefined;
}

/** Values larger than this, as JSON, are cut from `GET /v1/tasks/:id` unless it asks for them in full. */
export const SHOW_VALUE_BYTES = 64 * 1024;

const VALUES = ["request", "response", "error"] as const;

/**
 * The task as `show` sends it: each value over `limit` bytes as JSON is left out of the
 * task and described in `cut` by its size and its first characters.
 */
export function cutLargeValues(task: TaskInfo, limit = SHOW_VALUE_BYTES): { task: TaskInfo; cut?: Partial<Record<(typeof VALUES)[number], ValuePreview>> } {
  const cut: Partial<Record<(typeof VALUES)[number], ValuePreview>> = {};
  const kept: Record<string, unknown> = { ...task };
  for (const key of VALUES) {
    if (!(key in task) || task[key] === undefined) continue;
    const json = JSON.stringify(task[key]);
    // Cheap bound first: a UTF-16 code unit is at most 3 bytes of UTF-8.
    if (json.length * 3 <= limit) continue;
    const bytes = Buffer.byteLength(json);
    if (bytes <= limit) continue;
    cut[key] = { bytes, preview: json.slice(0, 200) };
    delete kept[key];
  }
  return Object.keys(cut).length === 0 ? { task } : { task: kept as unknown as TaskInfo, cut };
}
