import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Application } from "../api/application.js";
import { Context, type Auth, type Caller, type CallTarget, type Outcome } from "../api/context.js";
import { IdempotencyKeys } from "../api/idempotency.js";
import { Outside, type CallFrom } from "./outside.js";
import { InvalidArgument, MendError, TaskNotFound } from "../api/errors.js";
import { checkTarget } from "../api/ids.js";
import { normalUuidPrefix, shortestUniquePrefix, TaskId, type When } from "../api/task-id.js";
import { isPostgresUrl } from "../store/pg-open.js";
import { PgStore } from "../store/pg-store.js";
import { SqliteStore } from "../store/sqlite-store.js";
import type { AttemptRow, TaskFilter, TaskListRow, TaskRow, VersionRow } from "../store/statements.js";
import type { Store, StoreWriter } from "../store/store.js";
import { Engine, type EngineEvents, type Recovery } from "./engine.js";
import { Executor, type EffectValidation } from "./executor.js";
import { DEFAULT_MAX_VALUE_BYTES } from "./json.js";
import { describeState, States } from "./states.js";
import { DEFAULT_WINDOW, type WindowOptions } from "./window.js";
import { catchStrayErrors, runOwned } from "./stray.js";
import { CodeVersion, type ResolvedMethod } from "./version.js";
import { Inspector, type RerunBy, type RerunResult } from "./inspector.js";

export interface RuntimeOptions {
  /**
   * A PostgreSQL database to keep state and tasks in (`postgresql://user@host/db`), shared by
   * every runtime started on it: they share the work (see the README's "Running on several
   * servers"). The store is the first schema of the URL's search_path (`?options=-c%20search_path%3Dname`
   * picks another). Without it, the store is an SQLite file (`path`, `directory`).
   */
  store?: string;
  /**
   * On a PostgreSQL store: how long a server's claim on a running task (and its instance
   * locks) lasts unless the server renews it (it does, every third of it, while it lives).
   * When a server dies, another runs its tasks again once their lease has ended.
   * @defaultValue 10000
   */
  leaseMs?: number;
  /** The store file. @defaultValue `<directory>/mend.sqlite` */
  path?: string;
  /** The folder of the store; a new temporary folder, removed on stop, if neither is given. */
  directory?: string;
  /** `FULL` survives a power loss; `NORMAL` survives a crash of the process. @defaultValue "FULL" */
  synchronous?: "FULL" | "NORMAL";
  /** At most this many task attempts run at once. @defaultValue 256 */
  concurrency?: number;
  /**
   * Which waiting tasks are kept in memory: those due within `ms`, at most `tasks` of them.
   * Every other waiting task stays in the store and is read when its time comes, so memory
   * does not grow with the number of waiting tasks.
   * @defaultValue `{ ms: 60000, tasks: 10000 }`
   */
  window?: Partial<WindowOptions>;
  /** The id of the first code version. @defaultValue "v1" */
  version?: string;
  /**
   * Runs each reader, writer and transaction twice, the first run rolled back (its state
   * change and scheduled tasks dropped), so that code that is not idempotent shows itself.
   * Each double run emits an `effect-validation` event: every time with "enabled", once
   * per method with "quiet". Workflows are not run twice.
   * @defaultValue "disabled"
   */
  effectValidation?: EffectValidation;
  /**
   * The largest value stored, as JSON: a request, a response, a declared error, a state
   * or a workflow step's value. A larger one fails its call (or task attempt) with an
   * error that says how large it is.
   * @defaultValue 16 MiB
   */
  maxValueBytes?: number;
  /** @internal Set by `mend dev run` when it restarts a runtime; see {@link Recovery}. */
  recovery?: Recovery;
}

const EFFECT_VALIDATION: readonly EffectValidation[] = ["enabled", "quiet", "disabled"];

/** A task with its values, as `getTask` gives it. */
export interface TaskInfo {
  taskId: TaskId;
  method: string;
  status: TaskRow["status"];
  dueAt: number | null;
  createdAt: number;
  updatedAt: number;
  attempts: number;
  lastError: string | null;
  /** Iterations done by the task's latest loop (see `ctx.loop()`). */
  iteration: number;
  /** The task whose attempt spawned or scheduled it (null for none; always set by the runtime). */
  parentUuid?: string | null;
  request: unknown;
  response?: unknown;
  error?: unknown;
  /** A cursor for the next page of a list. */
  cursor: number;
}

/**
 * A stored value as a list shows it: its size as JSON and its first characters (none for a
 * value over 64 KiB, which would have to be read whole), never the value itself.
 */
export interface ValuePreview {
  bytes: number;
  preview: string;
}

/** A task as `listTasks` gives it: its values only previewed, so a list of large values stays small. */
export interface TaskSummary extends Omit<TaskInfo, "request" | "response" | "error"> {
  /** The shortest start of the uuid (at least 8 characters) that no other task in the store shares. */
  shortUuid: string;
  request: ValuePreview;
  response?: ValuePreview;
  error?: ValuePreview;
}

export interface AttemptInfo {
  number: number;
  version: string;
  startedAt: number;
  endedAt: number | null;
  outcome: string | null;
  error: { name: string | null; message: string | null; stack: string | null } | null;
}

const SYNCHRONOUS = ["FULL", "NORMAL"];

interface Checked {
  concurrency: number;
  window: WindowOptions;
  maxValueBytes: number;
  effectValidation: EffectValidation;
}

/** The options, checked before anything is opened: a bad one is a clear error. */
function checkOptions(options: RuntimeOptions): Checked {
  if (options.store !== undefined) {
    if (typeof options.store !== "string" || !isPostgresUrl(options.store))
      throw new MendError("INVALID_OPTION", "store must be a PostgreSQL URL (postgresql://user@host/db); an SQLite store is given with path or directory.");
    if (options.path !== undefined || options.directory !== undefined)
      throw new MendError("INVALID_OPTION", "store (PostgreSQL) and path or directory (SQLite) name two stores: give one.");
    if (options.recovery !== undefined) throw new MendError("INVALID_OPTION", "recovery applies to an SQLite store only.");
  }
  if (options.leaseMs !== undefined && (!Number.isSafeInteger(options.leaseMs) || options.leaseMs < 100))
    throw new MendError("INVALID_OPTION", `leaseMs must be an integer of at least 100, got ${String(options.leaseMs)}.`);
  if (options.synchronous !== undefined && !SYNCHRONOUS.includes(options.synchronous))
    throw new MendError("INVALID_OPTION", `synchronous must be FULL or NORMAL, got ${String(options.synchronous)}.`);
  const concurrency = options.concurrency ?? 256;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new MendError("INVALID_OPTION", "concurrency must be an integer >= 1.");
  const maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
  if (!Number.isSafeInteger(maxValueBytes) || maxValueBytes < 1) throw new MendError("INVALID_OPTION", "maxValueBytes must be an integer >= 1.");
  const effectValidation = options.effectValidation ?? "disabled";
  if (!EFFECT_VALIDATION.includes(effectValidation))
    throw new MendError("INVALID_OPTION", `effectValidation must be one of ${EFFECT_VALIDATION.join(", ")}, got ${String(effectValidation)}.`);
  const window = { ...DEFAULT_WINDOW, ...options.window };
  if (!(window.ms > 0) || !Number.isInteger(window.tasks) || window.tasks < 1)
    throw new MendError("INVALID_OPTION", "window needs ms > 0 and an integer tasks >= 1.");
  return { concurrency, window, maxValueBytes, effectValidation };
}

/** A context for calling the application from outside (`runtime.context(…)`). */
export interface ContextOptions {
  /** Names the context (`ctx.stateId`). @defaultValue "external" */
  name?: string;
  /**
   * The seed of its idempotency keys: a context with the same seed finds the records of the
   * `.idempotently()` calls another one made (also in another process, after a restart).
   * @defaultValue a new random seed
   */
  idempotencySeed?: string;
  /** A token for the application's `tokenVerifier`, which makes it `ctx.auth` for the authorizers. */
  bearerToken?: string;
}

/**
 * A running application on one store: the in-process runtime that `mend serve` and
 * `mend dev run` wrap, and that tests start directly.
 */
export class Runtime {
  /** The store's file (SQLite). */
  readonly path: string;
  readonly #store: Store;
  readonly #engine: Engine;
  readonly #executor: Executor;
  readonly #outside: Outside;
  readonly #temporary: string | undefined;
  #versions = 0;
  #stopped: Promise<void> | undefined;
  /** A started runtime keeps its process alive until stop(), as a worker does. */
  #keepAlive: NodeJS.Timeout | undefined;
  #stopCatching: (() => void) | undefined;

  private constructor(store: Store, temporary: string | undefined, path: string, checked: Checked) {
    this.#store = store;
    this.#temporary = temporary;
    this.path = path;
    const { concurrency, window, maxValueBytes, effectValidation } = checked;
    this.#engine = new Engine(store, { concurrency, window, maxValueBytes });
    this.#executor = new Executor(store, new States(store, maxValueBytes), this.#engine, {
      effectValidation,
      maxValueBytes,
      onEffectValidation: (event) => this.#engine.emit("effect-validation", event),
    });
    this.#outside = new Outside(store, this.#executor, this.#engine, maxValueBytes);
    this.inspector = new Inspector(store, this.#engine);
  }

  /** @internal The dashboard's reads of the store, and rerunning a workflow from a step. */
  readonly inspector: Inspector;

  /** Opens the store (creating it if needed), loads the application and resumes every unfinished task. */
  static async start(application: Application, options: RuntimeOptions = {}): Promise<Runtime> {
    if (!Application.is(application)) throw new MendError("INVALID_APPLICATION", "Runtime.start() needs an Application.");
    const checked = checkOptions(options);
    let store: Store;
    let temporary: string | undefined;
    let path: string;
    if (options.store !== undefined) {
      store = await PgStore.open(options.store, options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs });
      path = store.location;
    } else {
      temporary = options.path || options.directory ? undefined : mkdtempSync(join(tmpdir(), "mend-"));
      path = options.path ?? join(options.directory ?? temporary!, "mend.sqlite");
      try {
        store = new SqliteStore(path, { synchronous: options.synchronous });
      } catch (e) {
        if (temporary) rmSync(temporary, { recursive: true, force: true });
        throw e;
      }
    }
    const runtime = new Runtime(store, temporary, path, checked);
    runtime.#keepAlive = setInterval(() => {}, 2 ** 30);
    runtime.#stopCatching = catchStrayErrors();
    try {
      runtime.#versions = await store.lastVersion();
      runtime.#engine.attach(runtime.#executor, await runtime.#newVersion(application, options.version));
      await runtime.#engine.recover(options.recovery);
      await runtime.#initialize(application);
    } catch (e) {
      await runtime.stop({ graceMs: 0 });
      throw e;
    }
    return runtime;
  }

  /**
   * Runs the application's `initialize` once per store: every call it makes is idempotent
   * (keyed by its order), and its end is recorded, so a failed or interrupted run is run
   * again on the next start without repeating the calls that completed.
   */
  async #initialize(application: Application): Promise<void> {
    if (!application.initialize || (await this.#outside.initialized())) return;
    const keys = new IdempotencyKeys("mend:initialize", true);
    const ctx = new Context(this.#callerFor(keys, () => Promise.resolve(undefined), true), "external", "", "initialize", new AbortController().signal);
    try {
      await application.initialize(ctx);
    } catch (e) {
      throw new MendError("INITIALIZE_FAILED", `The application's initialize() failed: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    }
    await this.#outside.markInitialized();
  }

  /**
   * A version without a name given gets the next number of the store (`v14` after a run that
   * ended at `v13`), recorded there; `mend dev run` names and records its own.
   */
  async #newVersion(application: Application, id?: string): Promise<CodeVersion> {
    if (id !== undefined) return new CodeVersion(id, application);
    const { number, recorded } = await this.#store.newVersion(++this.#versions, Date.now());
    recorded.catch((error: unknown) => this.#engine.emit("store:error", { error }));
    this.#versions = Math.max(this.#versions, number);
    return new CodeVersion(`v${number}`, application);
  }

  /** The durability the store runs with: SQLite's `synchronous`, as the open connection reports it. */
  get synchronous(): "FULL" | "NORMAL" | "OFF" | "EXTRA" {
    return this.#store.synchronous;
  }

  /**
   * The tasks held in memory: those due soon (see `window`), those running (`idle` of them
   * wait for a child or a sleep, and hold no slot meanwhile), and those someone here awaits
   * (`awaited`). It does not grow with the number of tasks waiting in the store.
   */
  get inMemory(): { waiting: number; running: number; idle: number; awaited: number } {
    return this.#engine.inMemory;
  }

  /** The code version new attempts run. */
  get version(): string {
    return this.#engine.version.id;
  }

  /**
   * Loads a new version of the application's code. Attempts already running finish on
   * their version; later attempts run this one; every failing task is retried at once.
   */
  async load(application: Application, version?: string): Promise<{ version: string; retrying: TaskId[] }> {
    if (!Application.is(application)) throw new MendError("INVALID_APPLICATION", "load() needs an Application.");
    const v = await this.#newVersion(application, version);
    const retrying = await this.#engine.load(v);
    if (this.#engine.listenerCount("version:loaded") > 0) this.#engine.emit("version:loaded", { version: v.id, retrying: retrying.length });
    return { version: v.id, retrying };
  }

  on<K extends keyof EngineEvents>(event: K, listener: (...args: EngineEvents[K]) => void): () => void {
    (this.#engine.on as (e: K, l: (...args: EngineEvents[K]) => void) => Engine)(event, listener);
    return () => (this.#engine.off as (e: K, l: (...args: EngineEvents[K]) => void) => Engine)(event, listener);
  }

  /**
   * A context for calling the application from outside, as a test or a script would. Its
   * calls are checked by the authorizers (with `auth` from `bearerToken`), and
   * `.idempotently()` calls are recorded under `idempotencySeed`.
   */
  context(options: string | ContextOptions = {}): Context {
    const o = typeof options === "string" ? { name: options } : options;
    const keys = new IdempotencyKeys(o.idempotencySeed);
    let auth: Promise<Auth | undefined> | undefined;
    const authOf = () => (auth ??= this.verifyToken(o.bearerToken));
    return new Context(this.#callerFor(keys, authOf, false), "external", "", o.name ?? "external", new AbortController().signal);
  }

  /** The Caller behind external contexts. */
  caller(): Caller {
    return this.#callerFor(new IdempotencyKeys(undefined), () => Promise.resolve(undefined), false);
  }

  #callerFor(keys: IdempotencyKeys, auth: () => Promise<Auth | undefined>, trusted: boolean): Caller {
    return {
      call: async (target, request, mode) => this.call(target, request, undefined, { auth: await auth(), idempotency: keys.keyFor(mode), trusted }),
      enqueue: async (target, request, options) => this.spawn(target, request, options.when, { auth: await auth(), idempotency: keys.keyFor(options.call), trusted }),
      wait: (taskId) => this.#engine.wait(taskId),
      construct: (_type, _method, mode) => keys.construct(mode),
    };
  }

  /** `ctx.auth` for a bearer token, by the application's tokenVerifier; undefined without one or a token. */
  async verifyToken(token: string | undefined): Promise<Auth | undefined> {
    const verifier = this.#engine.version.application.tokenVerifier;
    if (token === undefined || !verifier) return undefined;
    return (await verifier(token)) ?? undefined;
  }

  /** Throws PermissionDenied unless the state type's authorizer (if any) allows this call from outside. */
  async authorize(target: CallTarget, request: unknown, from: CallFrom): Promise<void> {
    await this.#outside.authorize(this.#engine.version, target, request, from);
  }

  /** Whether calls of a state type are decided by its servicer's authorizer (beyond loopback, they need no admin secret). */
  hasAuthorizer(stateType: string): boolean {
    return this.#engine.version.authorizer(stateType) !== undefined;
  }

  /**
   * Calls a method from outside; a workflow is spawned and awaited. `signal` gives up the
   * call (a client that went away): the method's `ctx.signal` aborts and nothing it did is
   * committed; a spawned workflow goes on. `from` says who calls (the authorizer is asked)
   * and whether the call is made once per idempotency key.
   */
  async call(target: CallTarget, request: unknown, signal: AbortSignal = new AbortController().signal, from: CallFrom = {}): Promise<Outcome> {
    checkTarget(target);
    return this.#outside.call(this.#engine.version, target, request, from, (r, req, onComplete) => this.#run(r, target, req, signal, from.auth, onComplete), signal);
  }

  async #run(r: ResolvedMethod, target: CallTarget, request: unknown, signal: AbortSignal, auth: Auth | undefined, onComplete?: (outcome: Outcome) => (w: StoreWriter) => void): Promise<Outcome> {
    const version = this.#engine.version;
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    let running = true;
    // An error the method's code lets escape where nobody awaits it fails this call.
    const owner = { fail: (error: Error) => running && !controller.signal.aborted && (controller.abort(error), true) };
    try {
      const { outcome, committed } = await runOwned(owner, () =>
        this.#executor.run(r, target.stateId, request, { version, signal: controller.signal, auth, ...(onComplete ? { onComplete } : {}) }),
      );
      await committed;
      return outcome;
    } finally {
      running = false;
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** Spawns a task from outside; `from` as for `call`, a repeat with the same key gets the same task. */
  async spawn(target: CallTarget, request: unknown, when?: When, from: CallFrom = {}): Promise<TaskId> {
    checkTarget(target);
    return this.#outside.spawn(this.#engine.version, target, request, when, from);
  }

  wait(taskId: TaskId, signal?: AbortSignal): Promise<Outcome> {
    return this.#engine.wait(taskId, signal);
  }

  /** Cancels a task: false if it had already finished. */
  cancel(taskUuid: string): Promise<boolean> {
    return this.#engine.cancel(taskUuid);
  }

  /** Runs a scheduled or failing task now: false if it is running or finished. */
  retry(taskUuid: string): Promise<boolean> {
    return this.#engine.retryNow(taskUuid);
  }

  /**
   * Reruns a workflow task from one of its recorded steps: that step and every step recorded
   * after it (or inside it) are forgotten, so that the next attempt, due now, runs them again
   * while the steps before keep their values. Refused (a MendError saying why) for a task
   * that is running or finished, an unknown step, and an atMostOnce step that started.
   */
  rerun(taskUuid: string, fromStep: string, by: RerunBy = "api"): Promise<RerunResult> {
    return this.inspector.rerun(taskUuid, fromStep, by);
  }

  /** A task and every attempt it made. */
  async getTask(taskUuid: string): Promise<{ task: TaskInfo; attempts: AttemptInfo[] }> {
    const row = await this.#store.getTask(taskUuid);
    if (!row) throw new TaskNotFound(taskUuid);
    return { task: taskInfo({ ...row, rowid: 0 }), attempts: (await this.#store.listAttempts(taskUuid)).map(attemptInfo) };
  }

  /** A page of tasks, newest first; pass the last one's `cursor` as `before` for the next page. */
  async listTasks(filter: TaskFilter): Promise<TaskSummary[]> {
    const rows = await this.#store.listTasks(filter);
    return Promise.all(rows.map(async (row) => taskSummary(row, shortestUniquePrefix(row.uuid, await this.#store.neighbourUuids(row.uuid)))));
  }

  /**
   * The uuid of the one task whose uuid starts with `prefix` (any case, with or without
   * its dashes). Throws TaskNotFound if there is none, and AMBIGUOUS_TASK naming the
   * candidates if there are several.
   */
  async resolveTaskUuid(prefix: string): Promise<string> {
    const normal = normalUuidPrefix(prefix);
    if (normal === undefined)
      throw new InvalidArgument(`'${prefix}' is not a task uuid or the start of one (hexadecimal digits and dashes).`);
    const found = await this.#store.tasksWithUuidPrefix(normal, 11);
    if (found.length === 1) return found[0]!.uuid;
    if (found.length === 0) throw new TaskNotFound(prefix);
    const names = found.slice(0, 10).map((t) => `${t.uuid} ${describeState(t.state_type, t.state_id)}.${t.method} ${t.status}`);
    throw new MendError(
      "AMBIGUOUS_TASK",
      `'${prefix}' is the start of ${found.length > 10 ? "more than 10" : found.length} tasks; give more of the uuid: ${names.join("; ")}.`,
    );
  }

  /** @internal Records a code version `mend dev run` loaded (the dashboard shows them). */
  recordVersion(version: VersionRow): Promise<void> {
    return this.#store.commit((w) => w.recordVersion(version));
  }

  /** Stops: running attempts get `graceMs` to finish, then are left for recovery. */
  stop(options: { graceMs?: number } = {}): Promise<void> {
    this.#stopped ??= (async () => {
      clearInterval(this.#keepAlive);
      await this.#engine.stop(options.graceMs ?? 2000);
      this.#stopCatching?.();
      // Tasks still running here are due at once for the other servers (their attempts are recorded interrupted then).
      await this.#store.shared?.release(Date.now()).catch(() => {});
      await this.#store.close();
      if (this.#temporary) rmSync(this.#temporary, { recursive: true, force: true });
    })();
    return this.#stopped;
  }
}

type TaskFields = Omit<TaskInfo, "request" | "response" | "error">;

/** What a task's full record and its line in a list both say. */
function taskFields(
  row: Pick<TaskRow, "uuid" | "state_type" | "state_id" | "method" | "status" | "due_at" | "created_at" | "updated_at" | "attempts" | "last_error" | "iteration" | "parent_uuid"> & { rowid: number },
): TaskFields {
  return {
    taskId: { stateType: row.state_type, stateId: row.state_id, taskUuid: row.uuid },
    method: row.method,
    status: row.status,
    dueAt: row.due_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    attempts: row.attempts,
    lastError: row.last_error,
    iteration: row.iteration,
    parentUuid: row.parent_uuid,
    cursor: row.rowid,
  };
}

function taskInfo(row: TaskRow & { rowid: number }): TaskInfo {
  return {
    ...taskFields(row),
    request: JSON.parse(row.request),
    ...(row.response !== null ? { response: JSON.parse(row.response) } : {}),
    ...(row.error !== null ? { error: JSON.parse(row.error) } : {}),
  };
}

function taskSummary(row: TaskListRow, shortUuid: string): TaskSummary {
  return {
    ...taskFields(row),
    shortUuid,
    request: { bytes: row.request_bytes, preview: row.request_preview },
    ...(row.response_bytes !== null ? { response: { bytes: row.response_bytes, preview: row.response_preview ?? "" } } : {}),
    ...(row.error_bytes !== null ? { error: { bytes: row.error_bytes, preview: row.error_preview ?? "" } } : {}),
  };
}

function attemptInfo(row: AttemptRow): AttemptInfo {
  return {
    number: row.number,
    version: row.version,
    startedAt: row.started_at,
    endedAt: row.ended_at,
    outcome: row.outcome,
    error: row.error_class || row.error_message ? { name: row.error_class, message: row.error_message, stack: row.error_stack } : null,
  };
}
