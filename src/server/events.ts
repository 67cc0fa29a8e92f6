import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { TaskId } from "../api/task-id.js";
import type { EngineEvents } from "../runtime/engine.js";
import type { Runtime } from "../runtime/runtime.js";
import { EventRing, formatEventId, parseEventId } from "./event-ring.js";
import { HttpError } from "./read-json.js";

// `GET /v1/events`: one server-sent events stream of what the runtime does, fed by its
// events. Each event has an id; a client that reconnects with `Last-Event-ID` gets what it
// missed from a ring of recent events, or a `reset` event when the ring no longer holds it.

/** Something besides the runtime that tells the stream what happens (the dev loop). */
export interface StreamSource {
  subscribe(publish: (type: string, data: Record<string, unknown>) => void): () => void;
}

export interface EventHubOptions {
  /** Events kept for clients that reconnect. @defaultValue 10000 */
  ringSize?: number;
  /** How long the hub keeps listening (and its ring) after the last client left. @defaultValue 60 s */
  lingerMs?: number;
  /** Streams open at once; more are refused with 503. @defaultValue 64 */
  maxClients?: number;
  /** A comment line on every stream this often, so idle streams stay open through proxies. @defaultValue 15 s */
  keepAliveMs?: number;
}

interface Client {
  res: ServerResponse;
  /** The number of the last event written to it. */
  seen: number;
}

/** A client that has not read this much of its stream is cut off; it reconnects and resumes or resets. */
const MAX_UNREAD_BYTES = 4 * 1024 * 1024;

type Listener<K extends keyof EngineEvents> = (...args: EngineEvents[K]) => Record<string, unknown>;

function task(taskId: TaskId): Record<string, unknown> {
  return { taskId: TaskId.format(taskId), stateType: taskId.stateType, stateId: taskId.stateId, taskUuid: taskId.taskUuid };
}

/** What each engine event says on the stream. */
const ENGINE_EVENTS: { [K in keyof EngineEvents]?: Listener<K> } = {
  "task:created": (e) => ({ ...task(e.taskId), method: e.method, dueAt: e.dueAt, parentUuid: e.parentUuid }),
  "attempt:start": (e) => ({ ...task(e.taskId), method: e.method, attempt: e.attempt, version: e.version }),
  "attempt:end": (e) => ({
    ...task(e.taskId), method: e.method, attempt: e.attempt, version: e.version, outcome: e.outcome,
    ...(e.error ? { error: { name: e.error.name, message: e.error.message } } : {}),
    ...(e.retryInMs !== undefined ? { retryInMs: e.retryInMs } : {}),
  }),
  "task:finished": (e) => ({ ...task(e.taskId), status: e.outcome.status }),
  "task:waiting": (e) => ({ ...task(e.taskId), method: e.method, reason: e.reason }),
  "task:retried": (e) => task(e.taskId),
  "task:rerun": (e) => ({ ...task(e.taskId), fromStep: e.fromStep, forgotten: e.forgotten, by: e.by }),
  "state:written": (e) => ({ stateType: e.stateType, stateId: e.stateId }),
  "version:loaded": (e) => ({ version: e.version, retrying: e.retrying }),
  "effect-validation": (e) => ({ method: e.method, message: e.message, differences: e.differences }),
};

/** The server's event stream. */
export class EventHub {
  #stream = newStreamId();
  #ring: EventRing<{ type: string; json: string }>;
  readonly #clients = new Set<Client>();
  #unsubscribe: (() => void)[] | undefined;
  #linger: NodeJS.Timeout | undefined;
  #flushing = false;
  readonly #keepAlive: NodeJS.Timeout;
  readonly #options: Required<EventHubOptions>;

  constructor(
    private readonly runtime: Runtime,
    private readonly sources: readonly StreamSource[] = [],
    options: EventHubOptions = {},
  ) {
    this.#options = { ringSize: 10_000, lingerMs: 60_000, maxClients: 64, keepAliveMs: 15_000, ...options };
    this.#ring = new EventRing(this.#options.ringSize);
    this.#keepAlive = setInterval(() => {
      for (const c of this.#clients) c.res.write(": keep-alive\n\n");
    }, this.#options.keepAliveMs);
    this.#keepAlive.unref();
  }

  /** Serves one stream; `Last-Event-ID` (header, or `lastEventId` in the query for clients that cannot set headers) resumes. */
  open(req: IncomingMessage, res: ServerResponse, url: URL): void {
    if (this.#clients.size >= this.#options.maxClients)
      throw new HttpError(503, "TOO_MANY_STREAMS", `At most ${this.#options.maxClients} event streams may be open at once.`);
    this.#listen();
    const lastHeader = req.headers["last-event-id"];
    const last = (Array.isArray(lastHeader) ? lastHeader[0] : lastHeader) ?? url.searchParams.get("lastEventId") ?? undefined;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
      connection: "keep-alive",
    });
    const client: Client = { res, seen: this.#ring.last };
    let out = "retry: 1000\n\n";
    if (last !== undefined && last !== "") {
      const seen = parseEventId(last, this.#stream);
      const missed = seen === undefined ? undefined : this.#ring.since(seen);
      if (missed) out += missed.map(({ n, item }) => this.#frame(n, item.type, item.json)).join("");
      else out += this.#frame(this.#ring.last, "reset", JSON.stringify({ reason: "The events since the last one you saw are no longer held (or the server restarted): load your lists again." }));
    }
    out += this.#frame(this.#ring.last, "hello", JSON.stringify({ stream: this.#stream, version: this.runtime.version }));
    res.write(out);
    this.#clients.add(client);
    res.on("close", () => {
      this.#clients.delete(client);
      if (this.#clients.size === 0) this.#startLinger();
    });
  }

  /** Adds an event to the stream: written to every client at the end of this turn of the event loop. */
  publish(type: string, data: Record<string, unknown>): void {
    this.#ring.push({ type, json: JSON.stringify({ type, at: Date.now(), ...data }) });
    if (this.#flushing || this.#clients.size === 0) return;
    this.#flushing = true;
    setImmediate(() => this.#flush());
  }

  close(): void {
    clearInterval(this.#keepAlive);
    clearTimeout(this.#linger);
    this.#stop();
    for (const c of this.#clients) c.res.end();
    this.#clients.clear();
  }

  #flush(): void {
    this.#flushing = false;
    for (const c of this.#clients) {
      if (c.res.writableLength > MAX_UNREAD_BYTES) {
        // It does not read: let it go; it reconnects and resumes or resets.
        c.res.destroy();
        continue;
      }
      const missed = this.#ring.since(c.seen);
      const text = missed
        ? missed.map(({ n, item }) => this.#frame(n, item.type, item.json)).join("")
        : this.#frame(this.#ring.last, "reset", JSON.stringify({ reason: "More happened than the stream holds: load your lists again." }));
      c.seen = this.#ring.last;
      if (text) c.res.write(text);
    }
  }

  #frame(n: number, type: string, json: string): string {
    return `id: ${formatEventId(this.#stream, n)}\nevent: ${type}\ndata: ${json}\n\n`;
  }

  /** Listens to the runtime while anyone may want the events: engine events cost nothing while nobody listens. */
  #listen(): void {
    clearTimeout(this.#linger);
    this.#linger = undefined;
    if (this.#unsubscribe) return;
    this.#unsubscribe = [];
    for (const [name, describe] of Object.entries(ENGINE_EVENTS) as [keyof EngineEvents, Listener<keyof EngineEvents>][])
      this.#unsubscribe.push(this.runtime.on(name, ((...args: never[]) => this.publish(name, (describe as unknown as (...a: never[]) => Record<string, unknown>)(...args))) as never));
    for (const source of this.sources) this.#unsubscribe.push(source.subscribe((type, data) => this.publish(type, data)));
  }

  #startLinger(): void {
    clearTimeout(this.#linger);
    this.#linger = setTimeout(() => this.#stop(), this.#options.lingerMs);
    this.#linger.unref();
  }

  /** Stops listening; what happens from now on is not held, so ids of this stream no longer resume. */
  #stop(): void {
    for (const off of this.#unsubscribe ?? []) off();
    this.#unsubscribe = undefined;
    this.#stream = newStreamId();
    this.#ring = new EventRing(this.#options.ringSize);
  }
}

function newStreamId(): string {
  return randomBytes(4).toString("hex");
}
