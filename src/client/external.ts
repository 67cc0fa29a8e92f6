import { Context, type Caller, type CallTarget, type EnqueueOptions, type Outcome } from "../api/context.js";
import { errorOfCode, MendError, MethodFailed, TaskNotFound } from "../api/errors.js";
import { IdempotencyKeys } from "../api/idempotency.js";
import { TaskId } from "../api/task-id.js";

export interface ExternalContextOptions {
  /** The application's URL, e.g. http://127.0.0.1:9991. */
  url: string;
  /** The admin secret, for servers that require it. */
  adminCredential?: string;
  /**
   * The seed of this context's idempotency keys: `.idempotently(alias)` calls are recorded in
   * the application's store under (seed, alias), so another context with the same seed (in
   * another process, after a restart) gets the recorded result instead of calling again.
   * @defaultValue a new random seed
   */
  idempotencySeed?: string;
  /** Sent as `Authorization: Bearer …`; the application's `tokenVerifier` makes it `ctx.auth` for its authorizers. */
  bearerToken?: string;
}

interface ErrorBody {
  error?: { code?: string; message?: string; name?: string; stack?: string };
}

/** Thin JSON/HTTP client of a mend server. */
export class HttpClient {
  readonly #base: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number | undefined;

  /** `timeoutMs`: give up on a request (and its answer) after this long. */
  constructor(options: ExternalContextOptions & { timeoutMs?: number }) {
    this.#timeoutMs = options.timeoutMs;
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new MendError("INVALID_ARGUMENT", `'${options.url}' is not a URL.`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:")
      throw new MendError("INVALID_ARGUMENT", `'${options.url}' is not an http(s) URL.`);
    this.#base = url.href.replace(/\/$/, "");
    this.#headers = { "content-type": "application/json" };
    const token = options.bearerToken ?? options.adminCredential;
    if (token) this.#headers.authorization = `Bearer ${token}`;
  }

  get url(): string {
    return this.#base;
  }

  /** Sends a request; answers with the parsed body, or throws a MendError naming what went wrong. */
  async request<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<{ status: number; body: T & ErrorBody }> {
    let response: Response;
    let text: string;
    const signal = this.#timeoutMs === undefined ? undefined : AbortSignal.timeout(this.#timeoutMs);
    try {
      response = await fetch(`${this.#base}${path}`, {
        method,
        headers: this.#headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
      text = await response.text();
    } catch (e) {
      if (signal?.aborted)
        throw new MendError("TIMEOUT", `The application at ${this.#base} did not answer within ${this.#timeoutMs! / 1000} s.`, { cause: e });
      const c = (e as { cause?: { code?: string; message?: string; errors?: { code?: string }[] } }).cause;
      const cause = c?.code ?? c?.errors?.[0]?.code ?? c?.message ?? (e as Error).message;
      throw new MendError("UNREACHABLE", `Cannot reach the application at ${this.#base} (${cause}). Is it running?`, { cause: e });
    }
    let parsed: T & ErrorBody;
    try {
      parsed = JSON.parse(text) as T & ErrorBody;
    } catch {
      throw new MendError("BAD_RESPONSE", `${this.#base} answered ${response.status} with a body that is not JSON; is it a mend server?`);
    }
    return { status: response.status, body: parsed };
  }

  /** Like request, but any error status becomes a thrown error. */
  async ok<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
    const { status, body: parsed } = await this.request<T>(method, path, body);
    if (status >= 400) throw errorFrom(status, parsed);
    return parsed;
  }
}

export function errorFrom(status: number, body: ErrorBody): Error {
  const e = body.error ?? {};
  if (e.code === "METHOD_FAILED") return new MethodFailed(e.name ?? "Error", e.message ?? "", e.stack);
  return errorOfCode(e.code ?? `HTTP_${status}`, e.message ?? `The server answered ${status}.`);
}

/** The Caller behind an ExternalContext: the same calls as inside the app, over HTTP. */
function httpCaller(client: HttpClient, keys: IdempotencyKeys): Caller {
  return {
    async call(target: CallTarget, request: unknown, mode): Promise<Outcome> {
      const idempotency = keys.keyFor(mode);
      const { outcome } = await client.ok<{ outcome: Outcome }>("POST", "/v1/call", { ...target, request, ...(idempotency ? { idempotency } : {}) });
      return outcome;
    },
    async enqueue(target: CallTarget, request: unknown, options: EnqueueOptions): Promise<TaskId> {
      const when = options.when instanceof Date ? { at: options.when.toISOString() } : options.when;
      const idempotency = keys.keyFor(options.call);
      const { taskId } = await client.ok<{ taskId: TaskId }>("POST", "/v1/tasks", { ...target, request, when, ...(idempotency ? { idempotency } : {}) });
      return taskId;
    },
    construct: (_type, _method, mode) => keys.construct(mode),
    async wait(taskId: TaskId): Promise<Outcome> {
      for (;;) {
        const { status, body } = await client.request<{ done: boolean; outcome?: Outcome }>("GET", `/v1/tasks/${encodeURIComponent(taskId.taskUuid)}/wait?timeout=25000`);
        if (status === 404) throw new TaskNotFound(TaskId.format(taskId));
        if (status >= 400) throw errorFrom(status, body);
        if (body.done) return body.outcome!;
      }
    },
  };
}

/** A context for calling an application from any Node script or test, over HTTP. */
export class ExternalContext extends Context {
  constructor(options: ExternalContextOptions & { name?: string }) {
    super(httpCaller(new HttpClient(options), new IdempotencyKeys(options.idempotencySeed)), "external", "", options.name ?? "external", new AbortController().signal);
  }
}
