import { timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";

// Pure decisions about who may reach the server, made before a request's body is read.

const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_NAMES.has(host) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host.endsWith(".localhost");
}

/** The host name of a Host header, without its port. */
export function hostName(header: string): string {
  if (header.startsWith("[")) {
    // An IPv6 literal: `[addr]` or `[addr]:port`, nothing else after the bracket.
    const end = header.indexOf("]");
    const rest = header.slice(end + 1);
    if (end < 0 || (rest !== "" && !/^:\d+$/.test(rest))) return header.toLowerCase();
    return header.slice(0, end + 1).toLowerCase();
  }
  return header.split(":")[0]!.toLowerCase();
}

/** Where the server listens and whom it lets in, as `startServer` resolved its options. */
export interface GuardOptions {
  /** Serving on loopback only. */
  loopback: boolean;
  /** The address the server is bound to (`--host`). */
  boundHost?: string;
  /** More accepted Host names (`--allowed-host`); one starting with a dot also accepts its subdomains. */
  allowedHosts?: readonly string[];
  /** Origins whose cross-origin requests are accepted (`--allowed-origin`), e.g. `https://app.example`. */
  allowedOrigins?: readonly string[];
}

export interface Refusal {
  status: number;
  code: string;
  message: string;
}

/** An IP literal as a Host header carries it: no DNS name, so no DNS rebinding. */
function isIpLiteral(name: string): boolean {
  if (name.startsWith("[")) return name.endsWith("]") && isIP(name.slice(1, -1)) === 6;
  return isIP(name) === 4;
}

/**
 * Whether a Host name may reach the server. On loopback: loopback names and the allowed
 * names. Beyond it, as Vite's `server.allowedHosts`: loopback names, IP literals, the bound
 * name, and the allowed names. Either way a page on a foreign domain that rebinds its DNS to this
 * address sends its own name, and is refused.
 */
export function isAllowedHost(name: string, options: GuardOptions): boolean {
  if (isLoopbackHost(name)) return true;
  for (const allowed of options.allowedHosts ?? []) {
    const a = allowed.toLowerCase();
    if (a.startsWith(".") ? name === a.slice(1) || name.endsWith(a) : name === a) return true;
  }
  if (options.loopback) return false;
  return isIpLiteral(name) || name === options.boundHost?.toLowerCase();
}

/** The origin of a URL as a browser sends it (`scheme://host[:port]`), or undefined if it is not one. */
export function originOf(text: string): string | undefined {
  try {
    const origin = new URL(text).origin;
    return origin === "null" ? undefined : origin;
  } catch {
    return undefined;
  }
}

/** Whether `origin` is one of the allowed origins. */
export function isAllowedOrigin(origin: string | undefined, options: GuardOptions): boolean {
  if (origin === undefined) return false;
  const normal = originOf(origin);
  return normal !== undefined && (options.allowedOrigins ?? []).some((a) => originOf(a) === normal);
}

/**
 * Decides whether a request may proceed, before its body is read: its Host must be an
 * accepted name (DNS rebinding), and a browser's cross-origin request is refused unless
 * its origin is allowed.
 */
export function checkRequest(
  headers: { host?: string; origin?: string; "sec-fetch-site"?: string },
  options: GuardOptions,
): Refusal | undefined {
  if (!headers.host || !isAllowedHost(hostName(headers.host), options)) {
    const accepted = options.loopback ? "a loopback name" : "an accepted name (the bound address, an IP address, or --allowed-host)";
    return { status: 403, code: "FORBIDDEN_HOST", message: `Host '${headers.host ?? ""}' is not ${accepted}; refused (DNS rebinding protection).` };
  }
  if (isAllowedOrigin(headers.origin, options)) return undefined;
  const site = headers["sec-fetch-site"];
  if (site === "cross-site" || site === "same-site")
    return { status: 403, code: "CROSS_ORIGIN", message: "Cross-origin browser requests are refused (allow an origin with --allowed-origin)." };
  if (headers.origin !== undefined) {
    let originHost: string;
    try {
      originHost = new URL(headers.origin).host;
    } catch {
      return { status: 403, code: "CROSS_ORIGIN", message: `Origin '${headers.origin}' is not a URL; refused.` };
    }
    if (originHost !== headers.host)
      return { status: 403, code: "CROSS_ORIGIN", message: `Cross-origin request from '${headers.origin}' refused (allow it with --allowed-origin).` };
  }
  return undefined;
}

/** What a route does, as far as who may use it is concerned. */
export type RouteName =
  | "health" | "call" | "spawn" | "wait" | "list" | "show" | "cancel" | "retry"
  // The dashboard: its page's files, its session (the token), the event stream, its reads, rerun from a step.
  | "page" | "dashboard" | "events" | "inspect" | "rerun";

/** Routes that act on tasks other than one's own, or show them: they need the admin secret whenever the server has one. */
const ADMIN_ROUTES: ReadonlySet<RouteName> = new Set(["list", "show", "cancel", "retry", "dashboard", "events", "inspect", "rerun"]);

/**
 * Whether a route needs the admin secret. On loopback, the task-admin routes need it when
 * the server has one. Beyond loopback every route but `/health` needs it, whatever the
 * client's address (a proxy on the same machine makes every client look local).
 *
 * Authorizers (per state type, declared by the application) let `call`, `spawn` and `wait`
 * through without the secret (see passesToAuthorizer); that decision needs the state type,
 * so it is made where http.ts `authorize()` has the parsed body.
 */
export function needsAdminSecret(route: RouteName, options: { loopback: boolean; adminSecret?: string }): boolean {
  // The page's own files hold no data (the same for every server): the page loads, then asks for the secret.
  if (!options.adminSecret || route === "health" || route === "page") return false;
  return !options.loopback || ADMIN_ROUTES.has(route);
}

/**
 * Routes that act on one method of one state type (call, spawn, and wait for a task of it):
 * beyond loopback, when that type's servicer has an authorizer, they need no admin secret,
 * and the authorizer decides instead. The other routes keep needing the secret.
 */
export function passesToAuthorizer(route: RouteName): boolean {
  return route === "call" || route === "spawn" || route === "wait";
}

/** The token of an `Authorization: Bearer …` header, if it has one. */
export function bearerToken(authorization: string | undefined): string | undefined {
  return /^Bearer (.+)$/.exec(authorization ?? "")?.[1];
}

/** Whether an Authorization header carries the admin secret. */
export function hasAdminSecret(authorization: string | undefined, secret: string): boolean {
  const match = /^Bearer (.+)$/.exec(authorization ?? "");
  if (!match) return false;
  const given = Buffer.from(match[1]!);
  const wanted = Buffer.from(secret);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}
