import { createHash } from "node:crypto";
import { InvalidArgument } from "./errors.js";

/** The longest state id, state type or method name, in UTF-16 code units. */
export const MAX_NAME_LENGTH = 1000;

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Whether a string is well-formed UTF-16 (String.prototype.isWellFormed, which ES2022 lacks). */
export function isWellFormed(text: string): boolean {
  return text.search(LONE_SURROGATE) < 0;
}

/** The string with each lone surrogate replaced by U+FFFD. */
export function toWellFormed(text: string): string {
  return text.replace(LONE_SURROGATE, "\ufffd");
}

/**
 * Why `value` cannot name a state instance, a state type or a method, or undefined if it
 * can. A name must be a non-empty string of well-formed Unicode (a lone surrogate would
 * be stored as another string, and could not be written in a task id), and not too long.
 */
export function nameProblem(value: unknown): string | undefined {
  if (typeof value !== "string") return `must be a string, got ${value === null ? "null" : typeof value}`;
  if (value === "") return "must not be empty";
  if (value.length > MAX_NAME_LENGTH) return `must be at most ${MAX_NAME_LENGTH} characters long, got ${value.length}`;
  if (!isWellFormed(value)) return "is not well-formed Unicode (it has a lone surrogate)";
  return undefined;
}

/** Throws InvalidArgument unless `value` is a valid name; `what` says which ("The state id of Account.ref()"). */
export function checkName(value: unknown, what: string): string {
  const problem = nameProblem(value);
  if (problem) throw new InvalidArgument(`${what} ${problem}.`);
  return value as string;
}

/** Checks the three names of a call or a task before anything is written. */
export function checkTarget(target: { stateType: unknown; stateId: unknown; method: unknown }): void {
  checkName(target.stateType, "The state type");
  checkName(target.stateId, "The state id");
  checkName(target.method, "The method");
}

/**
 * A state id made from `parts`, the same every time: for a constructor called without an id
 * where a repeat must find the same instance (an idempotent call, a workflow's retry). Shaped
 * as a UUID (version 8, "custom"), as Reboot's generated ids are UUIDs.
 */
export function deriveId(...parts: string[]): string {
  const hex = createHash("sha256").update(parts.join("\u0000")).digest("hex");
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
