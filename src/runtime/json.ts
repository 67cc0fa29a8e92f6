import { MendError } from "../api/errors.js";

/** The largest value (a request, a response, a state, a recorded step) stored by default: 16 MiB. */
export const DEFAULT_MAX_VALUE_BYTES = 16 * 1024 * 1024;

/** Deeper values are refused: checking and parsing them would exhaust the stack. */
export const MAX_DEPTH = 512;

/** "12.3 MB", "4.0 kB", "312 B". */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(1)} kB`;
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

/**
 * Serialises a value that must be stored, refusing what JSON would silently drop or
 * change (functions, symbols, BigInts, cycles, NaN and ±Infinity, which JSON writes as
 * null), what is nested deeper than MAX_DEPTH, and a value whose JSON is larger than
 * `maxBytes`, each with an error that says where or how large.
 * `undefined` at the top is stored as NULL.
 */
export function toStoredJson(value: unknown, what: string, maxBytes = DEFAULT_MAX_VALUE_BYTES): string | null {
  if (value === undefined) return null;
  const seen: unknown[] = [];
  const refuse = (path: string, why: string): never => {
    throw new MendError("NOT_STORABLE", `${what} cannot be stored: ${path} ${why}.`);
  };
  const check = (v: unknown, path: string, depth: number): void => {
    switch (typeof v) {
      case "function":
      case "symbol":
        return refuse(path, `is a ${typeof v}`);
      case "bigint":
        return refuse(path, "is a BigInt");
      case "number":
        if (!Number.isFinite(v)) refuse(path, `is ${String(v)}, which JSON cannot hold`);
        return;
      case "object": {
        if (v === null) return;
        if (v instanceof Date) {
          if (Number.isNaN(v.getTime())) refuse(path, "is an invalid Date, which JSON cannot hold");
          return;
        }
        if (depth >= MAX_DEPTH) refuse(path, `is nested more than ${MAX_DEPTH} levels deep`);
        if (seen.includes(v)) refuse(path, "refers back to itself (a cycle)");
        seen.push(v);
        if (Array.isArray(v)) v.forEach((item, i) => check(item, `${path}[${i}]`, depth + 1));
        else for (const [k, item] of Object.entries(v)) if (item !== undefined) check(item, `${path}.${k}`, depth + 1);
        seen.pop();
      }
    }
  };
  check(value, "the value", 0);
  const json = JSON.stringify(value);
  // Cheap bound first: a UTF-8 byte is at most 3 per UTF-16 code unit here.
  if (json.length * 3 > maxBytes) {
    const bytes = Buffer.byteLength(json);
    if (bytes > maxBytes)
      throw new MendError(
        "TOO_LARGE",
        `${what} is ${formatBytes(bytes)} as JSON, over the limit of ${formatBytes(maxBytes)} (maxValueBytes).`,
      );
  }
  return json;
}
