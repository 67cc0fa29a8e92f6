import type { IncomingMessage } from "node:http";
import { MAX_DEPTH } from "../runtime/json.js";

/** An answer other than 200, raised anywhere while handling a request. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * How deeply arrays and objects nest in a JSON text, counted without parsing it, so that
 * a body nested too deeply for the code that checks and stores values is refused first.
 */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth);
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/** Reads a JSON body of at most `limit` bytes, arriving within `timeoutMs`; an empty body is `{}`. */
export function readJson(req: IncomingMessage, limit: number, timeoutMs: number): Promise<unknown> {
  const type = req.headers["content-type"] ?? "";
  if (!/^application\/json\b/i.test(type))
    return Promise.reject(new HttpError(415, "UNSUPPORTED_MEDIA_TYPE", "Send the body as JSON with Content-Type: application/json."));
  if (Number(req.headers["content-length"] ?? 0) > limit)
    return Promise.reject(new HttpError(413, "BODY_TOO_LARGE", `The body is larger than ${limit} bytes.`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    const refuse = (error: HttpError) => {
      refused = true;
      clearTimeout(timer);
      req.removeAllListeners("data");
      req.resume();
      reject(error);
    };
    // A body trickled slowly holds a connection: it must arrive within its time.
    const timer = setTimeout(() => refuse(new HttpError(408, "BODY_TIMEOUT", `The body did not arrive within ${timeoutMs / 1000} s.`)), timeoutMs);
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) refuse(new HttpError(413, "BODY_TOO_LARGE", `The body is larger than ${limit} bytes.`));
      else chunks.push(chunk);
    });
    req.on("error", (e) => (clearTimeout(timer), reject(e)));
    req.on("aborted", () => (clearTimeout(timer), reject(new HttpError(400, "ABORTED", "The request was aborted."))));
    req.on("end", () => {
      clearTimeout(timer);
      if (refused) return;
      const text = Buffer.concat(chunks).toString("utf8");
      if (text.trim() === "") return resolve({});
      if (jsonDepth(text) > MAX_DEPTH)
        return reject(new HttpError(400, "TOO_DEEP", `The body nests arrays or objects more than ${MAX_DEPTH} levels deep.`));
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(new HttpError(400, "MALFORMED_JSON", `The body is not valid JSON: ${(e as Error).message}`));
      }
    });
  });
}
