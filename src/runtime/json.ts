import { MendError } from "../api/errors.js";

/**
 * Serialises a value that must be stored, refusing what JSON would silently drop or
 * cannot hold (functions, symbols, BigInts, cycles) with an error that says where.
 * `undefined` at the top is stored as NULL.
 */
export function toStoredJson(value: unknown, what: string): string | null {
  if (value === undefined) return null;
  const seen: unknown[] = [];
  const check = (v: unknown, path: string): void => {
    switch (typeof v) {
      case "function":
      case "symbol":
        throw new MendError("NOT_STORABLE", `${what} cannot be stored: ${path} is a ${typeof v}.`);
      case "bigint":
        throw new MendError("NOT_STORABLE", `${what} cannot be stored: ${path} is a BigInt.`);
      case "number":
        return;
      case "object": {
        if (v === null || v instanceof Date) return;
        if (seen.includes(v)) throw new MendError("NOT_STORABLE", `${what} cannot be stored: ${path} refers back to itself (a cycle).`);
        seen.push(v);
        if (Array.isArray(v)) v.forEach((item, i) => check(item, `${path}[${i}]`));
        else for (const [k, item] of Object.entries(v)) if (item !== undefined) check(item, `${path}.${k}`);
        seen.pop();
      }
    }
  };
  check(value, "the value");
  return JSON.stringify(value);
}
