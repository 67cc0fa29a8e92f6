import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, gzipSync } from "node:zlib";
import type { Refusal } from "./guard.js";
import { HttpError } from "./read-json.js";

// The dashboard's page (`/__/`): its built files (dist/dashboard/, made by scripts/build.mjs
// from ui/), served compressed under a strict Content-Security-Policy, and the token its
// actions carry.

/** The page loads nothing from other hosts, runs no inline script or style, and cannot be framed. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const PAGE_HEADERS = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

const TYPES: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8",
  "favicon.svg": "image/svg+xml",
};

/** The header an action from a browser carries its token in. */
export const TOKEN_HEADER = "x-mend-token";

interface Asset {
  body: Buffer;
  etag: string;
  br?: Buffer;
  gzip?: Buffer;
}

/** Where the built page is: beside the bundle that runs (dist/), or dist/ when this module runs from its source. */
function pageFolder(): string | undefined {
  for (const candidate of ["./dashboard/", "../../dist/dashboard/"]) {
    const dir = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(`${dir}index.html`)) return dir;
  }
  return undefined;
}

/** The page's files, read once and compressed on first use. */
export class DashboardPage {
  readonly #folder = pageFolder();
  readonly #assets = new Map<string, Asset>();

  /** Serves `/__/` (the page) and its files; false for a path that is not one of them. */
  serve(req: IncomingMessage, res: ServerResponse, file: string): void {
    const name = file === "" ? "index.html" : file;
    const type = TYPES[name];
    if (!type) throw new HttpError(404, "NOT_FOUND", `The dashboard has no file ${name}.`);
    const asset = this.#asset(name);
    const headers: Record<string, string> = { ...PAGE_HEADERS, "content-type": type, "cache-control": "no-cache", etag: asset.etag, vary: "accept-encoding" };
    if (req.headers["if-none-match"] === asset.etag) {
      res.writeHead(304, headers);
      return void res.end();
    }
    const accepts = String(req.headers["accept-encoding"] ?? "");
    let body = asset.body;
    if (/\bbr\b/.test(accepts)) {
      body = asset.br ??= brotliCompressSync(asset.body);
      headers["content-encoding"] = "br";
    } else if (/\bgzip\b/.test(accepts)) {
      body = asset.gzip ??= gzipSync(asset.body, { level: 9 });
      headers["content-encoding"] = "gzip";
    }
    headers["content-length"] = String(body.length);
    res.writeHead(200, headers);
    res.end(req.method === "HEAD" ? undefined : body);
  }

  #asset(name: string): Asset {
    let asset = this.#assets.get(name);
    if (asset) return asset;
    if (!this.#folder) throw new HttpError(404, "NOT_FOUND", "The dashboard was not built with this copy of mend (npm run build makes it).");
    const body = readFileSync(`${this.#folder}${name}`);
    asset = { body, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"` };
    this.#assets.set(name, asset);
    return asset;
  }
}

/** A new random token for one server's page. */
export function newToken(): string {
  return randomBytes(24).toString("base64url");
}

/**
 * Whether an action (cancel, retry, rerun) may proceed as far as the token goes. A request a
 * browser sends (it carries `Origin` or `Sec-Fetch-Site`) must carry the page's token, which
 * only a page that could read `GET /v1/dashboard` has: no link or form of another site can
 * act. Clients that are not browsers (the CLI, scripts) are no such risk and need none.
 */
export function tokenRefusal(headers: { origin?: string; "sec-fetch-site"?: string; [TOKEN_HEADER]?: string }, token: string): Refusal | undefined {
  if (headers.origin === undefined && headers["sec-fetch-site"] === undefined) return undefined;
  const given = Buffer.from(headers[TOKEN_HEADER] ?? "");
  const wanted = Buffer.from(token);
  if (given.length === wanted.length && timingSafeEqual(given, wanted)) return undefined;
  return {
    status: 403,
    code: "MISSING_TOKEN",
    message: `An action sent by a browser must carry the dashboard's token in ${TOKEN_HEADER} (the page gets it from GET /v1/dashboard); refused.`,
  };
}

/** The default editor link of a stack frame (as Vite's error overlay opens files). */
export const DEFAULT_EDITOR_URL = "vscode://file/{file}:{line}:{column}";

/** Why an editor URL template cannot be used, or undefined if it can. */
export function editorUrlProblem(template: string): string | undefined {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(template)?.[1]?.toLowerCase();
  if (!scheme) return `--editor-url must start with a scheme (vscode:, idea:, …), got '${template}'.`;
  if (["javascript", "data", "vbscript", "blob", "file"].includes(scheme)) return `--editor-url may not be a ${scheme}: URL.`;
  if (!template.includes("{file}")) return `--editor-url must contain {file} (and may contain {line} and {column}), got '${template}'.`;
  return undefined;
}
