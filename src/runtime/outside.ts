import { checkAuthorized } from "../api/authorization.js";
import type { Auth, CallTarget, Outcome } from "../api/context.js";
import { IdempotencyConflict } from "../api/errors.js";
import type { IdempotencyKey } from "../api/idempotency.js";
import type { TaskId, When } from "../api/task-id.js";
import type { CommitQueue } from "../store/commit-queue.js";
import type { IdempotencyRow, IdempotencyStatements } from "../store/idempotency.js";
import type { Engine } from "./engine.js";
import type { Executor } from "./executor.js";
import { toStoredJson } from "./json.js";
import { describeTarget } from "./memo.js";
import type { CodeVersion, ResolvedMethod } from "./version.js";

/** Who makes a call from outside the application, and how. */
export interface CallFrom {
  /** From the bearer token, by the application's tokenVerifier. */
  auth?: Auth | undefined;
  /** Run once per key: a repeat gets the recorded result. */
  idempotency?: IdempotencyKey | undefined;
  /** The application itself (`initialize`) or the admin: no authorizer is asked. */
  trusted?: boolean;
}

/** Runs a method for a call from outside: `(method, validated request, record)`, where `record` joins the method's commit. */
export type RunMethod = (r: ResolvedMethod, request: unknown, onComplete?: (outcome: Outcome) => () => void) => Promise<Outcome>;

/**
 * Calls and spawns from outside the application: asks the servicer's authorizer, and makes
 * a call idempotent when it carries a key. The record of an idempotent writer (or
 * transaction) commits in the same SQLite transaction as its change, and that of a spawn with
 * the task, so no crash can run either twice; a declared error is recorded once it is known.
 * @internal
 */
export class Outside {
  /** Idempotent calls running now, by key: a concurrent repeat waits for the first. */
  readonly #running = new Map<string, Promise<unknown>>();

  constructor(
    private readonly sql: IdempotencyStatements,
    private readonly commits: CommitQueue,
    private readonly executor: Executor,
    private readonly engine: Engine,
    private readonly maxValueBytes: number,
  ) {}

  /** Throws PermissionDenied unless the call may go on (no authorizer: it may). */
  async authorize(version: CodeVersion, target: CallTarget, request: unknown, from: CallFrom): Promise<void> {
    if (from.trusted) return;
    const authorizer = version.authorizer(target.stateType);
    if (!authorizer) return;
    await checkAuthorized(authorizer, { auth: from.auth, stateType: target.stateType, stateId: target.stateId, method: target.method, request });
  }

  /** A call from outside; a workflow is spawned (once per key) and awaited. */
  async call(version: CodeVersion, target: CallTarget, request: unknown, from: CallFrom, run: RunMethod, signal?: AbortSignal): Promise<Outcome> {
    const r = this.executor.resolve(version, target);
    const guarded = from.idempotency !== undefined || (!from.trusted && version.authorizer(target.stateType) !== undefined);
    const req = guarded ? this.executor.validateRequest(r, request) : request;
    await this.authorize(version, target, req, from);
    const key = from.idempotency;
    if (r.method.kind === "workflow") {
      const taskId = key ? await this.#spawnOnce(key, target, req, undefined) : await this.engine.spawn(target, req, undefined, null);
      return this.engine.wait(taskId, signal);
    }
    if (!key) return run(r, req);
    return this.#once(key, async () => {
      const recorded = this.#lookup(key, "call", target, req);
      if (recorded) return outcomeOf(recorded);
      const step = describeTarget(target);
      const json = this.#requestJson(target, req);
      const outcome = await run(r, req, (o) => this.#write(key, "call", step, json, "completed", o.status === "COMPLETED" ? o.response : undefined));
      if (outcome.status === "ABORTED") {
        const op = this.#write(key, "call", step, json, "failed", { error: outcome.error, message: outcome.message });
        await this.commits.commit(op);
      }
      return outcome;
    });
  }

  /** A spawn from outside; with a key, the same task for every repeat (its record commits with the task). */
  async spawn(version: CodeVersion, target: CallTarget, request: unknown, when: When | undefined, from: CallFrom): Promise<TaskId> {
    // The engine validates the request of a plain spawn: it is validated here only when a key or an authorizer needs it.
    if (!from.idempotency && (from.trusted || !version.authorizer(target.stateType))) return this.engine.spawn(target, request, when, null);
    const r = this.executor.resolve(version, target);
    const req = this.executor.validateRequest(r, request);
    await this.authorize(version, target, req, from);
    if (!from.idempotency) return this.engine.spawn(target, req, when, null);
    return this.#spawnOnce(from.idempotency, target, req, when);
  }

  /** Whether `initialize` has run to its end on this store. */
  initialized(): boolean {
    return this.sql.getRecord(INITIALIZE.seed, INITIALIZE.alias) !== undefined;
  }

  /** Records that `initialize` ran to its end. */
  async markInitialized(): Promise<void> {
    await this.commits.commit(this.#write(INITIALIZE, "initialize", "initialize()", "{}", "completed", undefined));
  }

  #spawnOnce(key: IdempotencyKey, target: CallTarget, request: unknown, when: When | undefined): Promise<TaskId> {
    return this.#once(key, async () => {
      const recorded = this.#lookup(key, "spawn", target, request);
      if (recorded) return JSON.parse(recorded.value!) as TaskId;
      const json = this.#requestJson(target, request);
      return this.engine.spawn(target, request, when, null, (taskId) => this.#write(key, "spawn", describeTarget(target), json, "completed", taskId)());
    });
  }

  /** Runs `fn` alone for its key: a concurrent call with the same key waits for it, then finds its record. */
  async #once<T>(key: IdempotencyKey, fn: () => Promise<T>): Promise<T> {
    const id = `${key.seed}\u0000${key.alias}`;
    for (;;) {
      const running = this.#running.get(id);
      if (!running) break;
      await running.catch(() => {});
    }
    const promise = fn();
    this.#running.set(id, promise);
    try {
      return await promise;
    } finally {
      if (this.#running.get(id) === promise) this.#running.delete(id);
    }
  }

  /** The record under `key`, if any; throws if it was made for another call. */
  #lookup(key: IdempotencyKey, kind: "call" | "spawn", target: CallTarget, request: unknown): IdempotencyRow | undefined {
    const row = this.sql.getRecord(key.seed, key.alias);
    if (!row) return undefined;
    const step = describeTarget(target);
    const json = this.#requestJson(target, request);
    if (row.kind !== kind || row.step !== step || row.request !== json) {
      const was = `${row.kind === "spawn" ? "a spawn of " : ""}${row.step}(${cut(row.request)})`;
      const now = `${kind === "spawn" ? "a spawn of " : ""}${step}(${cut(json)})`;
      throw new IdempotencyConflict(
        `The idempotency key '${key.alias}' (seed '${key.seed}') was used for ${was}; this call is ${now}. ` +
          "A key stands for one call: give this one another alias.",
      );
    }
    return row;
  }

  #requestJson(target: CallTarget, request: unknown): string {
    return toStoredJson(request, `The request of ${target.stateType}.${target.method}`, this.maxValueBytes) ?? "{}";
  }

  /** The write of a record, to run inside a commit; the value is serialised now, so a bad one fails the call, not the commit. */
  #write(key: IdempotencyKey, kind: IdempotencyRow["kind"], step: string, request: string, status: IdempotencyRow["status"], value: unknown): () => void {
    const json = toStoredJson(value, `The result of ${step}`, this.maxValueBytes);
    return () => this.sql.putRecord({ seed: key.seed, alias: key.alias, kind, step, request, status, value: json, created_at: Date.now() });
  }
}

/** The record that says `initialize` ran to its end. */
const INITIALIZE: IdempotencyKey = { seed: "mend:initialize", alias: "done" };

function outcomeOf(row: IdempotencyRow): Outcome {
  const value: unknown = row.value === null ? undefined : JSON.parse(row.value);
  if (row.status === "completed") return { status: "COMPLETED", response: value };
  const { error, message } = value as { error: unknown; message: string };
  return { status: "ABORTED", error, message };
}

function cut(json: string): string {
  return json.length > 200 ? `${json.slice(0, 199)}…` : json;
}
