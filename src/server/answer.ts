import type { ServerResponse } from "node:http";
import { MendError } from "../api/errors.js";
import { isDiskFull } from "../store/open.js";
import { HttpError } from "./read-json.js";

// How the server writes its answers, and which status an error leaves it with.

const STATUS_OF_CODE: Record<string, number> = {
  INVALID_ARGUMENT: 400, AMBIGUOUS_TASK: 400, NOT_FOUND: 404, TASK_NOT_FOUND: 404, NOT_ALLOWED: 403, STOPPED: 503,
  PERMISSION_DENIED: 403, IDEMPOTENCY_CONFLICT: 409,
};

/**
 * JSON that cannot fail: an answer is formatted after its effect committed, and must not
 * turn a done request into an error (a value mutated into a cycle after it was checked).
 */
export function safeJson(body: unknown): string {
  try {
    return JSON.stringify(body);
  } catch {
    const seen = new WeakSet<object>();
    return JSON.stringify(body, (_key, value: unknown) => {
      if (typeof value === "bigint") return value.toString();
      if (typeof value === "object" && value !== null) {
        if (seen.has(value)) return "[Circular]";
        seen.add(value);
      }
      return value;
    });
  }
}

export function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = safeJson(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  res.end(text);
}

/** The status, code and message an error leaves the server with. */
export function errorAnswer(e: unknown): { status: number; error: { code: string; message: string } } {
  if (e instanceof HttpError) return { status: e.status, error: { code: e.code, message: e.message } };
  if (isDiskFull(e)) return { status: 507, error: { code: "DISK_FULL", message: "The disk is full: nothing was written. Free some space and try again." } };
  if (e instanceof MendError) return { status: STATUS_OF_CODE[e.code] ?? 500, error: { code: e.code, message: e.message } };
  return { status: 500, error: { code: "INTERNAL", message: (e as Error)?.message ?? String(e) } };
}

