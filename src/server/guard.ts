import { timingSafeEqual } from "node:crypto";

const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_NAMES.has(host) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host.endsWith(".localhost");
}

/** The host name of a Host header, without its port. */
export function hostName(header: string): string {
  if (header.startsWith("[")) return header.slice(0, header.indexOf("]") + 1);
  return header.split(":")[0]!.toLowerCase();
}

export interface GuardOptions {
  /** Serving on loopback only: then foreign Host headers are refused (DNS rebinding). */
  loopback: boolean;
  adminSecret?: string;
}

export interface Refusal {
  status: number;
  code: string;
  message: string;
}

/**
 * Decides whether a request may proceed, before its body is read. Pure, so that every
 * rule has a unit test.
 */
export function checkRequest(
  headers: { host?: string; origin?: string; "sec-fetch-site"?: string },
  options: GuardOptions,
): Refusal | undefined {
  if (options.loopback) {
    if (!headers.host || !isLoopbackHost(hostName(headers.host)))
      return { status: 403, code: "FORBIDDEN_HOST", message: `Host '${headers.host ?? ""}' is not a loopback name; refused (DNS rebinding protection).` };
  }
  const site = headers["sec-fetch-site"];
  if (site === "cross-site" || site === "same-site")
    return { status: 403, code: "CROSS_ORIGIN", message: "Cross-origin browser requests are refused." };
  if (headers.origin !== undefined) {
    let originHost: string;
    try {
      originHost = new URL(headers.origin).host;
    } catch {
      return { status: 403, code: "CROSS_ORIGIN", message: `Origin '${headers.origin}' is not a URL; refused.` };
    }
    if (originHost !== headers.host)
      return { status: 403, code: "CROSS_ORIGIN", message: `Cross-origin request from '${headers.origin}' refused.` };
  }
  return undefined;
}

/** Whether an Authorization header carries the admin secret. */
export function hasAdminSecret(authorization: string | undefined, secret: string): boolean {
  const match = /^Bearer (.+)$/.exec(authorization ?? "");
  if (!match) return false;
  const given = Buffer.from(match[1]!);
  const wanted = Buffer.from(secret);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}
