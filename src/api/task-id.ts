import { randomUUID } from "node:crypto";
import { InvalidArgument } from "./errors.js";

/** Names a task: the state instance it runs on and its uuid. */
export interface TaskId {
  readonly stateType: string;
  readonly stateId: string;
  readonly taskUuid: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const TaskId = {
  /** `Account/alice/0190…`: the state id is URI-encoded so that the string splits on `/`. */
  format(id: TaskId): string {
    return `${id.stateType}/${encodeURIComponent(id.stateId)}/${id.taskUuid}`;
  },
  parse(text: string): TaskId {
    const parts = text.split("/");
    if (parts.length !== 3 || !parts[0] || !UUID.test(parts[2]!))
      throw new InvalidArgument(`'${text}' is not a task id (expected TYPE/STATE_ID/UUID).`);
    let stateId: string;
    try {
      stateId = decodeURIComponent(parts[1]!);
    } catch {
      throw new InvalidArgument(`'${text}' is not a task id: its state id is not URI-encoded.`);
    }
    return { stateType: parts[0], stateId, taskUuid: parts[2]! };
  },
  isUuid(text: string): boolean {
    return UUID.test(text);
  },
  /**
   * A UUIDv7: the time in ms first, so that new tasks' keys sit side by side in the
   * store's indexes (random v4 keys dirty a different page per task, and each commit
   * writes them all).
   */
  newUuid(): string {
    const time = Date.now().toString(16).padStart(12, "0");
    return `${time.slice(0, 8)}-${time.slice(8)}-7${randomUUID().slice(15)}`;
  },
};

/** When a task should start: a Date, or a duration from now. */
export type When = Date | { ms?: number; secs?: number; mins?: number; hours?: number; days?: number };

export interface TaskOptions {
  /** Start at or after this time. Omitted: as soon as possible. */
  when?: When;
}

/** The absolute due time in ms since the epoch. */
export function dueTime(when: When | undefined, now: number): number {
  if (when === undefined) return now;
  if (when instanceof Date) {
    const t = when.getTime();
    if (Number.isNaN(t)) throw new InvalidArgument("`when` is an invalid Date.");
    return t;
  }
  let ms = 0;
  for (const [key, unit] of [["ms", 1], ["secs", 1e3], ["mins", 6e4], ["hours", 3.6e6], ["days", 8.64e7]] as const) {
    const v = when[key];
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
      throw new InvalidArgument(`\`when.${key}\` must be a finite number >= 0, got ${String(v)}.`);
    ms += v * unit;
  }
  return now + Math.ceil(ms);
}
