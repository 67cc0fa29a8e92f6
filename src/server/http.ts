import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import type { CallTarget } from "../api/context.js";
import { MendError, MethodFailed } from "../api/errors.js";
import type { CallFrom } from "../runtime/outside.js";
import { nameProblem } from "../api/ids.js";
import { TaskId } from "../api/task-id.js";
import type { Runtime, TaskInfo, TaskSummary } from "../runtime/runtime.js";
import { isDiskFull } from "../store/open.js";
import { bearerToken, checkRequest, hasAdminSecret, isAllowedOrigin, isLoopbackHost, needsAdminSecret, passesToAuthorizer, type GuardOptions, type RouteName } from "./guard.js";
import { errorAnswer, send } from "./answer.js";
import { HttpError, readJson } from "./read-json.js";
import { cancelRefusal, cutLargeValues, retryRefusal } from "./task-answers.js";
import { DashboardPage, DEFAULT_EDITOR_URL, editorUrlProblem, newToken, TOKEN_HEADER } from "./dashboard.js";
import type { DevLoop } from "./dev-loop.js";
import { EventHub } from "./events.js";
import { dashboardRoutes, requireToken, type RouteContext } from "./inspect-routes.js";

export interface ServerOptions {
  /** @defaultValue "127.0.0.1" */
  host?: string;
  /** 0 picks a free port. @defaultValue 9991 */
  port?: number;
  /**
   * On loopback, the task-admin routes demand it when set. Beyond loopback it is required,
   * and every route but `/health` demands it.
   */
  adminSecret?: string;
  /**
   * Host names accepted besides loopback names, IP addresses and `host` itself (as Vite's
   * `server.allowedHosts`); one that starts with a dot also accepts its subdomains.
   */
  allowedHosts?: string[];
  /** Origins whose cross-origin (browser) requests are accepted, e.g. `https://app.example`. */
  allowedOrigins?: string[];
  /** @defaultValue 1 MiB */
  maxBodyBytes?: number;
  /** Connections beyond this many are closed at once. @defaultValue 1024 */
  maxConnections?: number;
  /** A request's headers must arrive within this time. @defaultValue 10 s */
  headersTimeoutMs?: number;
  /** A request's body must arrive within this time after its headers. @defaultValue 30 s */
  bodyTimeoutMs?: number;
  /**
   * The link of a stack frame on the dashboard (`/__/`): `{file}`, `{line}` and `{column}` are
   * replaced, e.g. `idea://open?file={file}&line={line}`. @defaultValue "vscode://file/{file}:{line}:{column}"
   */
  editorUrl?: string;
  /** @internal What `mend dev run` did (builds, versions, restarts), for the dashboard. */
  devLoop?: DevLoop;
}

export interface RunningServer {
  url: string;
  close(): Promise<void>;
}

const name = z.string().superRefine((value, ctx) => {
  const problem = nameProblem(value);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});
const target = { stateType: name, stateId: name, method: name };
/** An idempotency key: the client's seed and the call's alias (ExternalContext sends both). */
const Idempotency = z.object({ seed: name, alias: name });
const CallBody = z.object({ ...target, request: z.unknown().optional(), idempotency: Idempotency.optional() });
const When = z.union([
  z.object({ at: z.union([z.iso.datetime({ offset: true }), z.number().int().nonnegative()]) }),
  // Strict: an unknown key (a misspelt unit, an `at` that is not a date) is refused, not read as "now".
  z.strictObject({ ms: z.number(), secs: z.number(), mins: z.number(), hours: z.number(), days: z.number() }).partial(),
]);
const SpawnBody = CallBody.extend({ when: When.optional() });
const ListQuery = z.object({
  status: z.enum(["SCHEDULED", "STARTED", "SCHEDULED_RETRY", "SCHEDULED_ITERATION", "COMPLETED", "ABORTED", "CANCELLED"]).optional(),
  parent: z.string().optional(),
  text: z.string().max(1000).optional(),
  stateType: z.string().optional(),
  stateId: z.string().optional(),
  method: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  before: z.coerce.number().int().optional(),
});

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new HttpError(400, "INVALID_ARGUMENT", `Invalid ${what}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

function summaryJson(info: TaskSummary) {
  return { id: TaskId.format(info.taskId), ...info };
}

function taskJson(info: TaskInfo) {
  return { id: TaskId.format(info.taskId), ...info };
}

/** Serves a runtime over JSON/HTTP. See the README for every route. */
export async function startServer(runtime: Runtime, options: ServerOptions = {}): Promise<RunningServer> {
  const host = options.host ?? "127.0.0.1";
  const loopback = isLoopbackHost(host);
  if (!loopback && !options.adminSecret)
    throw new MendError("INVALID_OPTION", `Serving on ${host} (beyond loopback) needs an admin secret: --admin-secret or MEND_ADMIN_SECRET.`);
  const limit = options.maxBodyBytes ?? 1024 * 1024;
  const guard: GuardOptions = { loopback, boundHost: host, allowedHosts: options.allowedHosts, allowedOrigins: options.allowedOrigins };
  const headersTimeout = options.headersTimeoutMs ?? 10_000;
  const bodyTimeout = options.bodyTimeoutMs ?? 30_000;
  const maxConnections = options.maxConnections ?? 1024;
  for (const [key, value] of Object.entries({ headersTimeoutMs: headersTimeout, bodyTimeoutMs: bodyTimeout, maxConnections }))
    if (!Number.isSafeInteger(value) || value < 1) throw new MendError("INVALID_OPTION", `${key} must be an integer >= 1, got ${String(value)}.`);

  const editorUrl = options.editorUrl ?? DEFAULT_EDITOR_URL;
  const editorProblem = editorUrlProblem(editorUrl);
  if (editorProblem) throw new MendError("INVALID_OPTION", editorProblem);
  const token = newToken();
  const events = new EventHub(runtime, options.devLoop ? [options.devLoop] : []);
  const dashboard = { token, page: new DashboardPage(), events, editorUrl, loopback, devLoop: options.devLoop, startedAt: Date.now() };

  const hasSecret = (req: IncomingMessage) => !!options.adminSecret && hasAdminSecret(req.headers.authorization, options.adminSecret);

  /**
   * Lets a request through to a route, or refuses it for want of the admin secret, and says
   * who calls: the admin (whom no authorizer checks), or a caller with `auth` from its bearer
   * token. A call, spawn or wait of a state type whose servicer has an authorizer needs no
   * secret: the authorizer decides (in the runtime).
   */
  const authorize = async (req: IncomingMessage, route: RouteName, target?: CallTarget): Promise<CallFrom> => {
    const admin = hasSecret(req);
    if (!admin && needsAdminSecret(route, { loopback, adminSecret: options.adminSecret })) {
      if (!(target && passesToAuthorizer(route) && runtime.hasAuthorizer(target.stateType))) {
        const message = loopback
          ? "This endpoint needs the admin secret (mend task … --admin-credential)."
          : "This server is served beyond loopback: every request needs the admin secret (Authorization: Bearer …; mend task … --admin-credential, ExternalContext({ adminCredential })).";
        throw new HttpError(401, "UNAUTHENTICATED", message);
      }
    }
    if (admin) return { trusted: true };
    return { auth: await runtime.verifyToken(bearerToken(req.headers.authorization)) };
  };

  /** The idempotency key of a call or spawn: the body's, or the `Idempotency-Key` header's. */
  const idempotencyOf = (req: IncomingMessage, body: { idempotency?: { seed: string; alias: string } | undefined }) => {
    if (body.idempotency) return body.idempotency;
    const header = req.headers["idempotency-key"];
    if (header === undefined) return undefined;
    const alias = Array.isArray(header) ? header[0]! : header;
    const problem = nameProblem(alias);
    if (problem) throw new HttpError(400, "INVALID_ARGUMENT", `The Idempotency-Key header ${problem}.`);
    return { seed: "Idempotency-Key", alias };
  };

  /** The task a path names by its uuid or a unique start of it. */
  const findTask = async (idOrPrefix: string) => runtime.getTask(await runtime.resolveTaskUuid(decodeURIComponentSafe(idOrPrefix)));

  async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const method = req.method ?? "GET";
    const parts = url.pathname.split("/").filter(Boolean);
    const verbs: string[] = [];
    const at = (path: string, verb: string) => {
      const want = path.split("/").filter(Boolean);
      if (want.length !== parts.length || !want.every((w, i) => w.startsWith(":") || w === parts[i])) return false;
      verbs.push(verb);
      return method === verb;
    };

    if (at("/health", "GET")) {
      // Beyond loopback, anyone may ask whether it is up; only the admin learns more.
      if (!loopback && !hasSecret(req)) return send(res, 200, { ok: true });
      return send(res, 200, { ok: true, version: runtime.version, pid: process.pid, rss: process.memoryUsage.rss() });
    }
    if (at("/v1/call", "POST")) {
      const body = parse(CallBody, await readJson(req, limit, bodyTimeout), "call");
      const from: CallFrom = { ...(await authorize(req, "call", body)), idempotency: idempotencyOf(req, body) };
      // A client that goes away gives up its call: the method's ctx.signal aborts and nothing it did is committed.
      const gone = new AbortController();
      res.on("close", () => {
        if (!res.writableFinished) gone.abort(new MendError("CLIENT_GONE", "The client closed its connection before the call ended."));
      });
      try {
        return send(res, 200, { outcome: await runtime.call(body, body.request, gone.signal, from) });
      } catch (e) {
        if (e instanceof MethodFailed)
          return send(res, 500, { error: { code: "METHOD_FAILED", name: e.remoteName, message: e.message, stack: e.stack } });
        if (e instanceof MendError || e instanceof HttpError || isDiskFull(e)) throw e;
        const error = e as Error;
        return send(res, 500, { error: { code: "METHOD_FAILED", name: error.name, message: error.message, stack: error.stack } });
      }
    }
    if (at("/v1/tasks", "POST")) {
      const body = parse(SpawnBody, await readJson(req, limit, bodyTimeout), "task");
      const from: CallFrom = { ...(await authorize(req, "spawn", body)), idempotency: idempotencyOf(req, body) };
      const when = body.when && "at" in body.when ? new Date(body.when.at) : body.when;
      const taskId = await runtime.spawn(body, body.request, when, from);
      return send(res, 201, { taskId, id: TaskId.format(taskId) });
    }
    if (at("/v1/tasks", "GET")) {
      await authorize(req, "list");
      const { parent, ...query } = parse(ListQuery, Object.fromEntries(url.searchParams), "query");
      const tasks = await runtime.listTasks({ ...query, ...(parent !== undefined ? { parentUuid: parent } : {}) });
      return send(res, 200, { tasks: tasks.map(summaryJson), next: tasks.length === query.limit ? tasks.at(-1)!.cursor : null });
    }
    if (at("/v1/tasks/:id", "GET")) {
      await authorize(req, "show");
      const { task, attempts } = await findTask(parts[2]!);
      const history = await runtime.inspector.history(task.taskId.taskUuid);
      const full = url.searchParams.get("full");
      if (full === "true" || full === "1") return send(res, 200, { task: taskJson(task), attempts, history });
      const { task: shown, cut } = cutLargeValues(task);
      return send(res, 200, { task: taskJson(shown), attempts, history, ...(cut ? { cut } : {}) });
    }
    if (at("/v1/tasks/:id/wait", "GET")) {
      const { task } = await findTask(parts[2]!);
      const target = { ...task.taskId, method: task.method };
      const from = await authorize(req, "wait", target);
      // A waiter who is not the admin may wait only for tasks the authorizer lets it call.
      if (!from.trusted) await runtime.authorize(target, task.request, from);
      const timeout = Math.min(Math.max(Number(url.searchParams.get("timeout") ?? 30_000) || 0, 0), 120_000);
      const abort = new AbortController();
      req.on("close", () => abort.abort());
      const timer = setTimeout(() => abort.abort(), timeout);
      try {
        const outcome = await runtime.wait(task.taskId, abort.signal);
        return send(res, 200, { done: true, outcome });
      } catch (e) {
        if (abort.signal.aborted) return send(res, 200, { done: false });
        throw e;
      } finally {
        clearTimeout(timer);
      }
    }
    if (at("/v1/tasks/:id/cancel", "POST")) {
      await authorize(req, "cancel");
      requireToken(req, token);
      const { task } = await findTask(parts[2]!);
      const uuid = task.taskId.taskUuid;
      const refused = cancelRefusal(task) ?? ((await runtime.cancel(uuid)) ? undefined : cancelRefusal((await runtime.getTask(uuid)).task));
      if (refused) throw new HttpError(refused.status, refused.code, refused.message);
      return send(res, 200, { cancelled: true });
    }
    if (at("/v1/tasks/:id/retry", "POST")) {
      await authorize(req, "retry");
      requireToken(req, token);
      const { task } = await findTask(parts[2]!);
      const uuid = task.taskId.taskUuid;
      const refused =
        retryRefusal(task) ??
        ((await runtime.retry(uuid)) ? undefined : (retryRefusal((await runtime.getTask(uuid)).task) ?? { status: 409, code: "RUNNING", message: "Task is about to run; nothing to retry." }));
      if (refused) throw new HttpError(refused.status, refused.code, refused.message);
      return send(res, 200, { retrying: true });
    }
    const context: RouteContext = {
      req, res, url, parts, at,
      authorize: async (r) => void (await authorize(req, r)),
      body: () => readJson(req, limit, bodyTimeout),
      taskUuid: (part) => runtime.resolveTaskUuid(decodeURIComponentSafe(part)),
    };
    if (await dashboardRoutes(runtime, dashboard, context)) return;
    if (verbs.length > 0) throw new HttpError(405, "METHOD_NOT_ALLOWED", `${url.pathname} takes ${verbs.join(" or ")}, not ${method}.`);
    throw new HttpError(404, "NOT_FOUND", `No route ${method} ${url.pathname}.`);
  }

  const server = createServer(
    {
      headersTimeout,
      // Node's requestTimeout runs from the first byte until the request (headers and body) is in;
      // a long poll's wait for its answer comes after that and is not bounded by it.
      requestTimeout: headersTimeout + bodyTimeout,
      // How often those timeouts are checked (Node's default is 30 s, which would stretch them).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(Math.min(headersTimeout, bodyTimeout) / 4))),
    },
    (req, res) => {
      const refusal = checkRequest(req.headers as Record<string, string | undefined>, guard);
      if (refusal) return send(res, refusal.status, { error: { code: refusal.code, message: refusal.message } });
      const origin = req.headers.origin;
      if (origin !== undefined && isAllowedOrigin(origin, guard)) {
        res.setHeader("access-control-allow-origin", origin);
        res.setHeader("vary", "origin");
        if (req.method === "OPTIONS") {
          res.writeHead(204, {
            "access-control-allow-methods": "GET, POST",
            "access-control-allow-headers": `authorization, content-type, last-event-id, ${TOKEN_HEADER}`,
            "access-control-max-age": "600",
          });
          return void res.end();
        }
      }
      let url: URL;
      try {
        url = new URL(req.url ?? "/", "http://localhost");
      } catch {
        return send(res, 400, { error: { code: "BAD_URL", message: "Malformed URL." } });
      }
      route(req, res, url).catch((e: unknown) => {
        const { status, error } = errorAnswer(e);
        if (status === 401) res.setHeader("www-authenticate", "Bearer");
        send(res, status, { error });
        // The rest of a refused body may still be on its way: close rather than read it.
        if (status === 413 || status === 408) res.on("finish", () => req.destroy());
      });
    },
  );
  server.on("clientError", (e: NodeJS.ErrnoException, socket) => {
    // Headers (or a body nobody read) that did not arrive in time: say so, then close.
    if (e.code === "ERR_HTTP_REQUEST_TIMEOUT" && socket.writable) socket.end("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    socket.destroy();
  });
  server.keepAliveTimeout = 5000;
  // Each connection holds a file descriptor: past the cap, new ones are closed at once rather than exhausting them.
  server.maxConnections = maxConnections;

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 9991, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${shown}:${address.port}`,
    close: () =>
      new Promise((resolve) => {
        events.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
