import { randomUUID } from "node:crypto";
import { InvalidArgument } from "./errors.js";
import { toWellFormed } from "./ids.js";

/** Names a task: the state instance it runs on and its uuid. */
export interface TaskId {
  readonly stateType: string;
  readonly stateId: string;
  readonly taskUuid: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const TaskId = {
  /**
   * `Account/alice/0190…`: the state id is URI-encoded so that the string splits on `/`.
   * Never throws: ids are checked to be well-formed when they enter, and a lone surrogate
   * that got into an old store is written as U+FFFD rather than failing an answer.
   */
  format(id: TaskId): string {
    return `${id.stateType}/${encodeURIComponent(toWellFormed(id.stateId))}/${id.taskUuid}`;
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

/** The furthest a task may be scheduled ahead: 100 years. Further is a mistake, and past year 275760 not even a Date. */
export const MAX_DELAY_MS = 100 * 365.25 * 86_400_000;

/** The absolute due time in ms since the epoch. */
export function dueTime(when: When | undefined, now: number): number {
  if (when === undefined) return now;
  if (when instanceof Date) {
    const t = when.getTime();
    if (Number.isNaN(t)) throw new InvalidArgument("`when` is an invalid Date.");
    if (t - now > MAX_DELAY_MS) throw new InvalidArgument(`\`when\` is ${when.toISOString()}, more than 100 years from now.`);
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
  if (ms > MAX_DELAY_MS) throw new InvalidArgument(`\`when\` is more than 100 years from now.`);
  return now + Math.ceil(ms);
}


/**
 * The start of a task uuid in its stored form (lower case, dashes where a uuid has them),
 * from what a person typed: any case, with or without dashes. Undefined if it cannot be
 * the start of a uuid.
 */
export function normalUuidPrefix(text: string): string | undefined {
  const hex = text.toLowerCase().replaceAll("-", "");
  if (!/^[0-9a-f]{1,32}$/.test(hex)) return undefined;
  // Dashes follow the 8th, 12th, 16th and 20th digit; a typed dash elsewhere means it is not a uuid.
  let out = "";
  for (let i = 0; i < hex.length; i++) out += (i === 8 || i === 12 || i === 16 || i === 20 ? "-" : "") + hex[i];
  const typed = text.toLowerCase();
  if (typed.includes("-") && !out.startsWith(typed.replace(/-$/, ""))) return undefined;
  return out;
}

/** How much of `uuid` tells it from its neighbours in sorted order: at least `min` characters, never ending on a dash. */
export function shortestUniquePrefix(uuid: string, neighbours: readonly string[], min = 8): string {
  let length = min;
  for (const other of neighbours) {
    let common = 0;
    while (common < uuid.length && uuid[common] === other[common]) common++;
    length = Math.max(length, common + 1);
  }
  if (uuid[length - 1] === "-") length++;
  return uuid.slice(0, Math.min(length, uuid.length));
}
