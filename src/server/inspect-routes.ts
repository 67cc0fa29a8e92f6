import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { TaskId } from "../api/task-id.js";
import { RERUN_BY, RerunRefused } from "../runtime/inspector.js";
import type { Runtime } from "../runtime/runtime.js";
import { send } from "./answer.js";
import { DashboardPage, tokenRefusal, TOKEN_HEADER } from "./dashboard.js";
import type { DevLoop } from "./dev-loop.js";
import type { EventHub } from "./events.js";
import type { RouteName } from "./guard.js";
import { HttpError } from "./read-json.js";

// The routes of the dashboard: its page, its session, the event stream, and what it reads
// (a task's steps, state types and instances, counts, versions) or does (rerun from a step).

/** What a route module needs of the request being routed (http.ts makes it). */
export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** The path's parts, still encoded. */
  parts: string[];
  /** Whether the request is `verb` on `path` (`:name` matches any part); records the verbs of a path that matches. */
  at(path: string, verb: string): boolean;
  authorize(route: RouteName): Promise<void>;
  /** The request's JSON body, within the server's limits. */
  body(): Promise<unknown>;
  /** The uuid of the task a path part names (a uuid or a unique start of one). */
  taskUuid(part: string): Promise<string>;
}

export interface DashboardOptions {
  token: string;
  page: DashboardPage;
  events: EventHub;
  editorUrl: string;
  loopback: boolean;
  devLoop?: DevLoop;
  /** When the server started, for a version loaded before it (mend serve's only one). */
  startedAt: number;
}

const Paging = {
  limit: z.coerce.number().int().min(1).max(1000).default(100),
};
const InstancesQuery = z.object({ prefix: z.string().optional(), after: z.string().optional(), ...Paging });
const RerunBody = z.strictObject({ fromStep: z.string().min(1).max(10_000), by: z.enum(RERUN_BY).optional() });

const RERUN_STATUS: Record<string, number> = { UNKNOWN_STEP: 404, AT_MOST_ONCE: 409, FINISHED: 409, RUNNING: 409 };

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new HttpError(400, "INVALID_ARGUMENT", `Invalid ${what}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

export function decodePart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new HttpError(400, "BAD_URL", `'${part}' is not a well-formed URL part.`);
  }
}

/** Refuses an action that a browser sent without the page's token. */
export function requireToken(req: IncomingMessage, token: string): void {
  const h = req.headers;
  const refused = tokenRefusal({ origin: h.origin, "sec-fetch-site": h["sec-fetch-site"] as string | undefined, [TOKEN_HEADER]: h[TOKEN_HEADER] as string | undefined }, token);
  if (refused) throw new HttpError(refused.status, refused.code, refused.message);
}

/** Handles the dashboard's routes; false if the request is for none of them. */
export async function dashboardRoutes(runtime: Runtime, o: DashboardOptions, c: RouteContext): Promise<boolean> {
  const { req, res, url, parts } = c;
  if (parts[0] === "__" && parts.length <= 2 && (req.method === "GET" || req.method === "HEAD")) {
    await c.authorize("page");
    o.page.serve(req, res, parts[1] ?? "");
    return true;
  }
  if (c.at("/v1/dashboard", "GET")) {
    await c.authorize("dashboard");
    send(res, 200, { token: o.token, version: runtime.version, editorUrl: o.editorUrl, dev: o.devLoop !== undefined, loopback: o.loopback });
    return true;
  }
  if (c.at("/v1/events", "GET")) {
    await c.authorize("events");
    o.events.open(req, res, url);
    return true;
  }
  if (c.at("/v1/counts", "GET")) {
    await c.authorize("inspect");
    send(res, 200, { tasks: await runtime.inspector.counts() });
    return true;
  }
  if (c.at("/v1/tasks/:id/steps", "GET")) {
    await c.authorize("inspect");
    const uuid = await c.taskUuid(parts[2]!);
    send(res, 200, { steps: await runtime.inspector.steps(uuid) });
    return true;
  }
  if (c.at("/v1/tasks/:id/rerun", "POST")) {
    await c.authorize("rerun");
    requireToken(req, o.token);
    const body = parse(RerunBody, await c.body(), "rerun");
    const uuid = await c.taskUuid(parts[2]!);
    try {
      send(res, 200, { rerun: true, ...(await runtime.rerun(uuid, body.fromStep, body.by ?? "api")) });
    } catch (e) {
      if (e instanceof RerunRefused) throw new HttpError(RERUN_STATUS[e.code] ?? 409, e.code, e.message);
      throw e;
    }
    return true;
  }
  if (c.at("/v1/states", "GET")) {
    await c.authorize("inspect");
    send(res, 200, { types: await runtime.inspector.stateTypes() });
    return true;
  }
  if (c.at("/v1/states/:type", "GET")) {
    await c.authorize("inspect");
    const query = parse(InstancesQuery, Object.fromEntries(url.searchParams), "query");
    send(res, 200, { stateType: decodePart(parts[2]!), ...(await runtime.inspector.instances(decodePart(parts[2]!), query)) });
    return true;
  }
  if (c.at("/v1/states/:type/:id", "GET")) {
    await c.authorize("inspect");
    const [stateType, stateId] = [decodePart(parts[2]!), decodePart(parts[3]!)];
    const full = url.searchParams.get("full") === "true";
    const tasks = (await runtime.listTasks({ stateType, stateId, limit: 50 })).map((t) => ({ id: TaskId.format(t.taskId), ...t }));
    send(res, 200, { stateType, stateId, ...(await runtime.inspector.state(stateType, stateId, full)), tasks });
    return true;
  }
  if (c.at("/v1/versions", "GET")) {
    await c.authorize("inspect");
    send(res, 200, await versionsAnswer(runtime, o));
    return true;
  }
  return false;
}

/**
 * The versions loaded, newest first: those the store recorded (mend dev run, across its
 * runs), with how many failing tasks each retried when this process loaded it; and the dev
 * loop's log of this runtime process (empty under mend serve).
 */
async function versionsAnswer(runtime: Runtime, o: DashboardOptions) {
  const current = runtime.version;
  const log = o.devLoop?.entries() ?? [];
  const retried = new Map(log.flatMap((e) => (e.kind === "loaded" ? [[e.version, e.retrying] as const] : [])));
  const versions = (await runtime.inspector.versions()).map((v) => ({ ...v, retrying: retried.get(v.version) ?? null }));
  if (!versions.some((v) => v.version === current)) versions.unshift({ version: current, loadedAt: o.startedAt, changed: [], buildMs: null, loadMs: null, retrying: null });
  return { current, versions, log };
}
