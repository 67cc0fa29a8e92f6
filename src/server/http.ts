import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { MendError } from "../api/errors.js";
import { TaskId } from "../api/task-id.js";
import type { Runtime } from "../runtime/runtime.js";
import { checkRequest, hasAdminSecret, isLoopbackHost } from "./guard.js";

export interface ServerOptions {
  /** @defaultValue "127.0.0.1" */
  host?: string;
  /** 0 picks a free port. @defaultValue 9991 */
  port?: number;
  /** The task endpoints demand it when set; required when `host` is not a loopback address. */
  adminSecret?: string;
  /** @defaultValue 1 MiB */
  maxBodyBytes?: number;
}

export interface RunningServer {
  url: string;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const STATUS_OF_CODE: Record<string, number> = {
  INVALID_ARGUMENT: 400, NOT_FOUND: 404, TASK_NOT_FOUND: 404, NOT_ALLOWED: 403, STOPPED: 503,
};

const name = z.string().min(1).max(1000);
const target = { stateType: name, stateId: name, method: name };
const CallBody = z.object({ ...target, request: z.unknown().optional() });
const When = z.union([
  z.object({ at: z.union([z.iso.datetime({ offset: true }), z.number().int().nonnegative()]) }),
  // Strict: an unknown key (a misspelt unit, an `at` that is not a date) is refused, not read as "now".
  z.strictObject({ ms: z.number(), secs: z.number(), mins: z.number(), hours: z.number(), days: z.number() }).partial(),
]);
const SpawnBody = CallBody.extend({ when: When.optional() });
const ListQuery = z.object({
  status: z.enum(["SCHEDULED", "STARTED", "SCHEDULED_RETRY", "SCHEDULED_ITERATION", "COMPLETED", "ABORTED", "CANCELLED"]).optional(),
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

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  res.end(text);
}

function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const type = req.headers["content-type"] ?? "";
  if (!/^application\/json\b/i.test(type))
    return Promise.reject(new HttpError(415, "UNSUPPORTED_MEDIA_TYPE", "Send the body as JSON with Content-Type: application/json."));
  if (Number(req.headers["content-length"] ?? 0) > limit)
    return Promise.reject(new HttpError(413, "BODY_TOO_LARGE", `The body is larger than ${limit} bytes.`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners("data");
        req.resume();
        reject(new HttpError(413, "BODY_TOO_LARGE", `The body is larger than ${limit} bytes.`));
      } else chunks.push(chunk);
    });
    req.on("error", reject);
    req.on("aborted", () => reject(new HttpError(400, "ABORTED", "The request was aborted.")));
    req.on("end", () => {
      if (size > limit) return;
      const text = Buffer.concat(chunks).toString("utf8");
      if (text.trim() === "") return resolve({});
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(new HttpError(400, "MALFORMED_JSON", `The body is not valid JSON: ${(e as Error).message}`));
      }
    });
  });
}

function taskJson(info: ReturnType<Runtime["listTasks"]>[number]) {
  return { id: TaskId.format(info.taskId), ...info };
}

/** Serves a runtime over JSON/HTTP. See the README for every route. */
export async function startServer(runtime: Runtime, options: ServerOptions = {}): Promise<RunningServer> {
  const host = options.host ?? "127.0.0.1";
  const loopback = isLoopbackHost(host);
  if (!loopback && !options.adminSecret)
    throw new MendError("INVALID_OPTION", `Serving on ${host} (beyond loopback) needs an admin secret: --admin-secret or MEND_ADMIN_SECRET.`);
  const limit = options.maxBodyBytes ?? 1024 * 1024;

  const admin = (req: IncomingMessage) => {
    if (options.adminSecret && !hasAdminSecret(req.headers.authorization, options.adminSecret))
      throw new HttpError(401, "UNAUTHENTICATED", "This endpoint needs the admin secret (mend task … --admin-credential).");
  };
  const findTask = (uuid: string) => {
    if (!TaskId.isUuid(uuid)) throw new HttpError(400, "INVALID_ARGUMENT", `'${uuid}' is not a task uuid.`);
    return runtime.getTask(uuid);
  };

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

    if (at("/health", "GET")) return send(res, 200, { ok: true, version: runtime.version, pid: process.pid, rss: process.memoryUsage.rss() });
    if (at("/v1/call", "POST")) {
      const body = parse(CallBody, await readJson(req, limit), "call");
      try {
        return send(res, 200, { outcome: await runtime.call(body, body.request) });
      } catch (e) {
        if (e instanceof MendError || e instanceof HttpError) throw e;
        const error = e as Error;
        return send(res, 500, { error: { code: "METHOD_FAILED", name: error.name, message: error.message, stack: error.stack } });
      }
    }
    if (at("/v1/tasks", "POST")) {
      const body = parse(SpawnBody, await readJson(req, limit), "task");
      const when = body.when && "at" in body.when ? new Date(body.when.at) : body.when;
      const taskId = await runtime.spawn(body, body.request, when);
      return send(res, 201, { taskId, id: TaskId.format(taskId) });
    }
    if (at("/v1/tasks", "GET")) {
      admin(req);
      const query = parse(ListQuery, Object.fromEntries(url.searchParams), "query");
      const tasks = runtime.listTasks(query);
      return send(res, 200, { tasks: tasks.map(taskJson), next: tasks.length === query.limit ? tasks.at(-1)!.cursor : null });
    }
    if (at("/v1/tasks/:uuid", "GET")) {
      admin(req);
      const { task, attempts } = findTask(parts[2]!);
      return send(res, 200, { task: taskJson(task), attempts });
    }
    if (at("/v1/tasks/:uuid/wait", "GET")) {
      const { task } = findTask(parts[2]!);
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
    if (at("/v1/tasks/:uuid/cancel", "POST")) {
      admin(req);
      findTask(parts[2]!);
      if (await runtime.cancel(parts[2]!)) return send(res, 200, { cancelled: true });
      throw new HttpError(409, "NOT_RUNNING", "Task is not running.");
    }
    if (at("/v1/tasks/:uuid/retry", "POST")) {
      admin(req);
      findTask(parts[2]!);
      if (await runtime.retry(parts[2]!)) return send(res, 200, { retrying: true });
      throw new HttpError(409, "NOT_RETRYABLE", "Task is running or has finished; nothing to retry.");
    }
    if (verbs.length > 0) throw new HttpError(405, "METHOD_NOT_ALLOWED", `${url.pathname} takes ${verbs.join(" or ")}, not ${method}.`);
    throw new HttpError(404, "NOT_FOUND", `No route ${method} ${url.pathname}.`);
  }

  const server = createServer((req, res) => {
    const refusal = checkRequest(req.headers as Record<string, string | undefined>, { loopback });
    if (refusal) return send(res, refusal.status, { error: { code: refusal.code, message: refusal.message } });
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://localhost");
    } catch {
      return send(res, 400, { error: { code: "BAD_URL", message: "Malformed URL." } });
    }
    route(req, res, url).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : e instanceof MendError ? (STATUS_OF_CODE[e.code] ?? 500) : 500;
      const code = e instanceof HttpError || e instanceof MendError ? e.code : "INTERNAL";
      send(res, status, { error: { code, message: (e as Error)?.message ?? String(e) } });
      if (status === 413) res.on("finish", () => req.destroy());
    });
  });
  server.on("clientError", (_e, socket) => socket.destroy());
  server.keepAliveTimeout = 5000;

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
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
