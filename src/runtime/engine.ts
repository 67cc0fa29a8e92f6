import { EventEmitter } from "node:events";
import type { CallTarget, Outcome } from "../api/context.js";
import { Cancelled, coerceError, DeadlineExceeded, MendError, TaskNotFound } from "../api/errors.js";
import { dueTime, TaskId, type When } from "../api/task-id.js";
import { TaskLost } from "../store/pg-writes.js";
import { FINISHED, type TaskRow } from "../store/statements.js";
import type { ClaimedTask, RetryAlso, SharedStore, Store, StoreWriter, TaskKey } from "../store/store.js";
import { Claimer } from "./claimer.js";
import { retryDelay, type RetryPolicy } from "./backoff.js";
import { storedJsonOf, type EffectValidationEvent, type Executor, type NewTask, type TaskHost } from "./executor.js";
import { toStoredJson } from "./json.js";
import { runOwned, type ErrorOwner } from "./stray.js";
import type { CodeVersion } from "./version.js";
import { DueWindow, type WindowOptions, type WindowTask } from "./window.js";
import { NextIteration } from "./workflow.js";

interface Running {
  task: WindowTask;
  controller: AbortController;
  attempt: number;
  cancelled: boolean;
  /** Waiting for a child or a sleep: holds no slot meanwhile. */
  idle: boolean;
  /** The commit of this attempt's end, once queued: a cancel waits for it. */
  ending?: Promise<void>;
}

export interface EngineEvents {
  "attempt:start": [{ taskId: TaskId; method: string; attempt: number; version: string }];
  "attempt:end": [{ taskId: TaskId; method: string; attempt: number; version: string; outcome: "COMPLETED" | "ABORTED" | "FAILED" | "ITERATED"; error?: Error; retryInMs?: number }];
  "task:waiting": [{ taskId: TaskId; method: string; reason: string }];
  /**
   * On a store several servers share: this server's attempt may not end the task (it was
   * cancelled, or another server took it over once this one's lease ended); what it did is
   * discarded, and its end is recorded by whoever holds the task now.
   */
  "attempt:lost": [{ taskId: TaskId; method: string; attempt: number; version: string; reason: string }];
  "task:finished": [{ taskId: TaskId; outcome: Outcome }];
  "store:error": [{ error: unknown }];
  /** A method ran twice under effect validation (RuntimeOptions.effectValidation). */
  "effect-validation": [EffectValidationEvent];
  // Emitted only while someone listens (the dashboard's event stream): the task path does not pay for them otherwise.
  "task:created": [{ taskId: TaskId; method: string; dueAt: number; parentUuid: string | null }];
  "task:retried": [{ taskId: TaskId }];
  "task:rerun": [{ taskId: TaskId; fromStep: string; forgotten: string[]; by: string }];
  "state:written": [{ stateType: string; stateId: string }];
  "version:loaded": [{ version: string; retrying: number }];
}

/**
 * @internal How the previous process on this store stopped, told by whoever restarts it
 * (`mend dev run`'s watcher): not an option for applications.
 */
export interface Recovery {
  /** When that process stopped (ms since the epoch): its unfinished attempts ended then. @defaultValue now */
  stoppedAt?: number;
  /**
   * Tasks not to start again: each is stored as waiting for new code (no due time), with
   * `reason` as its error, so that the next load() or a retry starts it and a cancel ends it.
   */
  park?: { taskUuid: string; reason: string }[];
}

export interface EngineOptions {
  /** At most this many attempts run at once. @defaultValue 256 */
  concurrency: number;
  /** Which waiting tasks are kept in memory. */
  window: WindowOptions;
  /** The largest value stored (RuntimeOptions.maxValueBytes). */
  maxValueBytes?: number;
}

/** Someone waiting for a task's end, by the task id they gave. */
interface Waiter {
  taskId: TaskId;
  resolve: (outcome: Outcome) => void;
  reject: (e: Error) => void;
}

/** The task `uuid` ended: a waiter that named it under another state has no such task. */
function settle(waiter: Waiter, stateType: string, stateId: string, outcome: Outcome): void {
  if (waiter.taskId.stateType === stateType && waiter.taskId.stateId === stateId) waiter.resolve(outcome);
  else waiter.reject(new TaskNotFound(TaskId.format(waiter.taskId)));
}

function idOf(t: { stateType: string; stateId: string; uuid: string }): TaskId {
  return { stateType: t.stateType, stateId: t.stateId, taskUuid: t.uuid };
}

function fromRow(row: TaskRow, due: number): WindowTask {
  return {
    uuid: row.uuid, stateType: row.state_type, stateId: row.state_id, method: row.method, request: row.request,
    attempts: row.attempts, backoffStep: row.backoff_step, due,
  };
}

/**
 * Runs tasks: due times, attempts, retries with backoff, cancel, waiting for results.
 * Waiting tasks live in the store; the engine holds in memory only the ones due soon (its
 * window) and the ones running.
 * @internal
 */
export class Engine extends EventEmitter<EngineEvents> implements TaskHost {
  readonly #running = new Map<string, Running>();
  readonly #waiters = new Map<string, Waiter[]>();
  /** Tasks whose cancel is being committed: none of their attempts starts or commits its end meanwhile. */
  readonly #cancelling = new Map<string, Promise<void>>();
  /** Running attempts that hold no slot now (see idle()). */
  #idleCount = 0;
  /** Idle attempts that want their slot back, served before the backlog. */
  #resumers: (() => void)[] = [];
  /** Due tasks waiting for a free slot, oldest first from #backlogHead (shift() on a long array is O(n)). */
  #backlog: string[] = [];
  #backlogHead = 0;
  readonly #backlogged = new Set<string>();
  /** A store this process holds: the tasks due soon, in memory. */
  readonly #window: DueWindow | undefined;
  /** A store several servers share: claims due tasks for this server. */
  readonly #claimer: Claimer | undefined;
  readonly #shared: SharedStore | undefined;
  #renewal: NodeJS.Timeout | undefined;
  /** When the leases of this server's running tasks were last renewed. */
  #renewedAt = 0;
  #executor!: Executor;
  #version!: CodeVersion;
  #stopping = false;
  #onIdle: (() => void) | undefined;

  constructor(
    private readonly store: Store,
    private readonly options: EngineOptions,
  ) {
    super();
    this.#shared = store.shared;
    // Stryker disable all: runs on a shared store (PostgreSQL) only, which mutation runs do not use (stryker.config.json)
    if (this.#shared) {
      this.#claimer = new Claimer(this.#shared, {
        free: () => (this.#stopping ? 0 : this.options.concurrency - this.#busy),
        version: () => this.#version,
        run: (task) => this.#claimed(task),
        waiting: (tasks, reason) => {
          for (const t of tasks) {
            const row = { stateType: t.state_type, stateId: t.state_id, uuid: t.uuid };
            this.#emit("task:waiting", { taskId: idOf(row), method: t.method, reason: reason(t.state_type, t.method) });
          }
        },
        error: (error) => this.#emit("store:error", { error }),
      });
      return;
    }
    // Stryker restore all
    const local = store.local!;
    this.#window = new DueWindow(
      {
        dueAfter: (after, until, limit) => local.dueTasks(after, until, limit).map((row) => fromRow(row, row.due_at!)),
        owned: (uuid) => this.#running.has(uuid),
      },
      options.window,
      (task) => this.#due(task),
    );
  }

  /** Emits without letting a listener's error reach the engine. */
  #emit<K extends keyof EngineEvents>(event: K, ...args: EngineEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: EngineEvents[K]) => boolean)(event, ...args);
    } catch (e) {
      process.emitWarning(`A listener of ${String(event)} threw: ${String(e)}`);
    }
  }

  attach(executor: Executor, version: CodeVersion): void {
    this.#executor = executor;
    this.#version = version;
  }

  get version(): CodeVersion {
    return this.#version;
  }

  /** How many tasks the engine holds in memory, waiting and running: bounded, whatever the store holds. */
  get inMemory(): { waiting: number; running: number; idle: number; awaited: number } {
    return { waiting: this.#window?.size ?? 0, running: this.#running.size, idle: this.#idleCount, awaited: this.#waiters.size };
  }

  /**
   * Resumes the store's unfinished tasks: the attempts that were running are recorded as
   * interrupted (their tasks run again: they are due, unless `recovery` parks them), and the
   * first window of due tasks is read. Nothing else is read.
   */
  async recover(recovery: Recovery = {}): Promise<void> {
    const now = Date.now();
    if (this.#shared) return this.#join(this.#shared);
    this.store.local!.recover(Math.min(recovery.stoppedAt ?? now, now), recovery.park ?? [], now);
    this.#window!.refill();
  }

  // Stryker disable all: runs on a shared store (PostgreSQL) only, which mutation runs do not use (stryker.config.json)
  /**
   * Joins the servers of a shared store: says which methods this server's code has, makes
   * the tasks that waited for one of them due, listens for news, keeps the leases of its
   * running tasks, and claims what is due. The attempts of a server that died are recorded
   * interrupted by whoever claims their tasks once their lease has ended.
   */
  async #join(shared: SharedStore): Promise<void> {
    const claimer = this.#claimer!;
    await shared.listen({
      due: (at) => claimer.hint(at),
      finished: (uuids) => this.#heardFinished(uuids),
      cancelled: (uuids) => this.#heardCancelled(uuids),
      unlocked: () => this.#executor.unlocked(),
      resumed: () => {
        claimer.poke();
        this.#heardFinished([...this.#waiters.keys()]);
      },
    });
    await this.#announce(shared, true);
    this.#renewedAt = Date.now();
    const every = Math.max(50, Math.floor(shared.leaseMs / 3));
    this.#renewal = setInterval(() => void this.#renew(shared), every);
    this.#renewal.unref();
    claimer.poke();
  }

  /**
   * Tells the store this version's methods; `wake`: and makes due the tasks that waited for
   * one of them (a load retries every failing task instead).
   */
  async #announce(shared: SharedStore, wake: boolean): Promise<void> {
    const now = Date.now();
    const methods = this.#claimer!.methods();
    await shared.announce(this.#version.id, methods, now);
    if (wake && (await shared.wake(now, methods)) > 0) this.#claimer!.poke();
  }

  async #renew(shared: SharedStore): Promise<void> {
    const now = Date.now();
    const runs = [...this.#running.values()];
    const renewed = await shared.renew(runs.map((r) => r.task.uuid), this.#executor.heldLocks(), now);
    if (renewed) {
      this.#renewedAt = now;
      // Cancelled, or taken over by another server (this one's lease ended before it renewed it): stop now.
      const gone = runs.filter((run) => !renewed.has(run.task.uuid) && this.#running.get(run.task.uuid) === run && !run.ending && !run.controller.signal.aborted);
      if (gone.length > 0) {
        const rows = await this.store.getTasks(gone.map((run) => run.task.uuid)).catch(() => []);
        const cancelled = new Set(rows.filter((r) => r.status === "CANCELLED").map((r) => r.uuid));
        const lost = new MendError("LEASE_LOST", "Another server runs this task now: this server's lease on it ended before it was renewed.");
        for (const run of gone) {
          if (this.#running.get(run.task.uuid) !== run || run.ending || run.controller.signal.aborted) continue;
          if (cancelled.has(run.task.uuid)) this.#stopCancelled(run);
          else run.controller.abort(lost);
        }
      }
    } else if (now - this.#renewedAt > shared.leaseMs) {
      // Unreachable for longer than a lease: another server may run these tasks by now.
      const lost = new MendError("LEASE_LOST", "This server could not renew its lease on the task (the store could not be reached); another server may run it.");
      for (const run of this.#running.values()) if (!run.controller.signal.aborted) run.controller.abort(lost);
    }
  }

  // Stryker restore all

  /**
   * Swaps in a new code version; every failing task is retried on it at once (one update of
   * the store, then the window reads what is due now).
   */
  async load(version: CodeVersion): Promise<TaskId[]> {
    this.#version = version;
    if (this.#shared) await this.#announce(this.#shared, false);
    const now = Date.now();
    let retried: TaskKey[] = [];
    await this.store.commit((w) => w.retryFailing(now, (rows) => (retried = rows)));
    // The window reads again what is due now (the retried tasks first); a shared store's are claimed.
    if (retried.length > 0) {
      if (this.#window) this.#window.reset();
      else this.#claimer!.poke();
    }
    return retried.map((row) => ({ stateType: row.state_type, stateId: row.state_id, taskUuid: row.uuid }));
  }

  // --- TaskHost -------------------------------------------------------------

  written(writes: readonly { type: string; id: string }[]): void {
    if (this.listenerCount("state:written") > 0) for (const w of writes) this.#emit("state:written", { stateType: w.type, stateId: w.id });
  }

  created(tasks: readonly NewTask[]): void {
    if (this.listenerCount("task:created") > 0)
      for (const t of tasks) this.#emit("task:created", { taskId: idOf(t), method: t.method, dueAt: t.dueAt, parentUuid: t.parentUuid });
    if (this.#claimer) {
      for (const t of tasks) this.#claimer.hint(t.dueAt);
      return;
    }
    for (const t of tasks)
      this.#window!.offer({
        uuid: t.uuid, stateType: t.stateType, stateId: t.stateId, method: t.method, request: t.request,
        attempts: 0, backoffStep: 0, due: t.dueAt,
      });
  }

  async spawn(target: CallTarget, request: unknown, when: When | undefined, parentUuid: string | null, also?: (taskId: TaskId, w: StoreWriter) => void): Promise<TaskId> {
    const r = this.#executor.resolve(this.#version, target);
    const req = this.#executor.validateRequest(r, request);
    const now = Date.now();
    const task: NewTask = {
      uuid: TaskId.newUuid(), stateType: target.stateType, stateId: target.stateId, method: target.method,
      request: toStoredJson(req, `The request of ${target.stateType}.${target.method}`, this.options.maxValueBytes) ?? "{}",
      dueAt: dueTime(when, now), createdAt: now, parentUuid,
    };
    await this.store.commit((w) => {
      w.insertTask({ uuid: task.uuid, state_type: task.stateType, state_id: task.stateId, method: task.method, request: task.request, due_at: task.dueAt, created_at: now, now: Date.now(), parent_uuid: parentUuid });
      also?.(idOf(task), w);
    });
    this.created([task]);
    return idOf(task);
  }

  /** Waits for a task to end; `signal` gives up waiting (the task goes on). The task need not be in memory. */
  wait(taskId: TaskId, signal?: AbortSignal): Promise<Outcome> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      // Listening before reading: a task that ends while the store is read is not missed.
      const list = this.#waiters.get(taskId.taskUuid) ?? [];
      const forget = () => {
        const i = list.indexOf(waiter);
        if (i >= 0) list.splice(i, 1);
        if (list.length === 0 && this.#waiters.get(taskId.taskUuid) === list) this.#waiters.delete(taskId.taskUuid);
      };
      const onAbort = () => (forget(), reject(signal!.reason));
      const waiter: Waiter = {
        taskId,
        resolve: (outcome: Outcome) => (signal?.removeEventListener("abort", onAbort), resolve(outcome)),
        reject: (e: Error) => (signal?.removeEventListener("abort", onAbort), reject(e)),
      };
      list.push(waiter);
      this.#waiters.set(taskId.taskUuid, list);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.store.getTask(taskId.taskUuid).then(
        (row) => {
          if (!row || row.state_type !== taskId.stateType || row.state_id !== taskId.stateId) {
            forget();
            waiter.reject(new TaskNotFound(TaskId.format(taskId)));
          } else if (FINISHED.has(row.status)) {
            forget();
            waiter.resolve(outcomeOf(row));
          }
        },
        (e: unknown) => (forget(), waiter.reject(e as Error)),
      );
    });
  }

  // --- Operator actions -----------------------------------------------------

  /** Cancels a task; false if it had already finished. Throws if there is no such task. */
  async cancel(uuid: string): Promise<boolean> {
    // An attempt whose end is already on its way to the store wins if that commits.
    const ending = this.#running.get(uuid)?.ending;
    if (ending) await ending.catch(() => {});
    // From here until the cancel is committed, no attempt of the task starts or commits its end.
    let over!: () => void;
    const cancelling = new Promise<void>((resolve) => (over = resolve));
    this.#cancelling.set(uuid, cancelling);
    try {
      const row = await this.store.getTask(uuid);
      if (!row) throw new TaskNotFound(uuid);
      if (FINISHED.has(row.status)) return false;
      const running = this.#running.get(uuid);
      this.#window?.remove(uuid);
      const now = Date.now();
      let changed = false;
      await this.store.commit((w) => w.cancelTask(uuid, now, (c) => (changed = c)));
      if (!changed) return false; // it ended first, in the same commit
      // Running here: it stops now. Running on another server: that server hears of the cancel.
      if (running && this.#running.get(uuid) === running) this.#stopCancelled(running);
      this.#finish(idOf({ stateType: row.state_type, stateId: row.state_id, uuid }), { status: "CANCELLED" });
      return true;
    } finally {
      if (this.#cancelling.get(uuid) === cancelling) this.#cancelling.delete(uuid);
      over();
    }
  }

  #stopCancelled(run: Running): void {
    if (run.cancelled) return;
    run.cancelled = true;
    run.controller.abort(new Cancelled());
    this.#release(run);
  }

  // Stryker disable all: runs on a shared store (PostgreSQL) only, which mutation runs do not use (stryker.config.json)
  /** Another server (or this one) cancelled these tasks: an attempt of one running here stops. */
  #heardCancelled(uuids: readonly string[]): void {
    for (const uuid of uuids) {
      const run = this.#running.get(uuid);
      if (run) this.#stopCancelled(run);
    }
  }

  /** These tasks finished (on any server): their waiters here get what the store holds. */
  #heardFinished(uuids: readonly string[]): void {
    const waited = uuids.filter((u) => this.#waiters.has(u));
    if (waited.length === 0) return;
    this.store.getTasks(waited).then(
      (rows) => {
        for (const row of rows) {
          if (!FINISHED.has(row.status)) continue;
          const waiters = this.#waiters.get(row.uuid);
          this.#waiters.delete(row.uuid);
          for (const w of waiters ?? []) settle(w, row.state_type, row.state_id, outcomeOf(row));
        }
      },
      (error: unknown) => this.#emit("store:error", { error }),
    );
  }

  // Stryker restore all

  /** Runs a scheduled or failing task now, its backoff reset. False if it is running or finished. */
  async retryNow(uuid: string, also?: RetryAlso): Promise<boolean> {
    if (this.#running.has(uuid) || this.#backlogged.has(uuid)) return false;
    const now = Date.now();
    let changed = false;
    // `also` commits with the retry, only if it retries the task in the attempt it was read at (a rerun's forgetting of steps).
    await this.store.commit((w) => w.retryTask(uuid, now, (c) => (changed = c), also));
    const row = await this.store.getTask(uuid);
    if (!row) throw new TaskNotFound(uuid);
    if (!changed) return false;
    if (this.#claimer) this.#claimer.poke();
    else if (!this.#running.has(uuid)) this.#window!.offer(fromRow(row, now));
    if (this.listenerCount("task:retried") > 0) this.#emit("task:retried", { taskId: idOf(fromRow(row, now)) });
    return true;
  }

  // --- Attempts -------------------------------------------------------------

  /** Attempts that hold a slot. */
  get #busy(): number {
    return this.#running.size - this.#idleCount;
  }

  #due(task: WindowTask): void {
    if (this.#stopping) return;
    if (this.#busy < this.options.concurrency) return this.#start(task);
    if (this.#backlogged.has(task.uuid)) return;
    this.#backlogged.add(task.uuid);
    this.#backlog.push(task.uuid);
  }

  #start(task: WindowTask): void {
    this.#window!.remove(task.uuid);
    void this.#attempt(task, undefined);
  }

  // Stryker disable all: runs on a shared store (PostgreSQL) only, which mutation runs do not use (stryker.config.json)
  /** A task this server claimed: its attempt is on record already. */
  #claimed(row: ClaimedTask): void {
    // Still running here under a lease that ended (this server could not renew it): that attempt is over.
    const stale = this.#running.get(row.uuid);
    if (stale) {
      stale.cancelled = true;
      stale.controller.abort(new MendError("LEASE_LOST", "This server's lease on the task ended before the attempt did."));
      this.#release(stale);
    }
    void this.#attempt(fromRow(row, row.due_at ?? Date.now()), row.updated_at);
  }

  // Stryker restore all

  async idle<T>(taskUuid: string, until: Promise<T>): Promise<T> {
    const run = this.#running.get(taskUuid);
    if (!run || run.idle) return until;
    run.idle = true;
    this.#idleCount++;
    this.#fill();
    try {
      return await until;
    } finally {
      if (run.idle) {
        if (this.#busy < this.options.concurrency || this.#stopping) this.#wake(run);
        else await new Promise<void>((resolve) => this.#resumers.push(() => (this.#wake(run), resolve())));
      }
    }
  }

  #wake(run: Running): void {
    if (!run.idle) return;
    run.idle = false;
    this.#idleCount--;
  }

  #release(run: Running): void {
    const uuid = run.task.uuid;
    if (this.#running.get(uuid) !== run) return;
    this.#wake(run);
    this.#running.delete(uuid);
    this.#fill();
    if (this.#running.size === 0) this.#onIdle?.();
  }

  /** A task runs again at `task.due`: kept in the window, or claimed then. */
  #offer(task: WindowTask): void {
    if (this.#claimer) this.#claimer.hint(task.due);
    else this.#window!.offer(task);
  }

  /** Gives free slots to idle attempts that want theirs back, then to due tasks. */
  #fill(): void {
    while (this.#resumers.length > 0 && this.#busy < this.options.concurrency) this.#resumers.shift()!();
    if (this.#claimer) {
      if (this.#busy < this.options.concurrency && !this.#stopping) this.#claimer.poke();
      return;
    }
    while (this.#backlogHead < this.#backlog.length && this.#busy < this.options.concurrency && !this.#stopping) {
      const uuid = this.#backlog[this.#backlogHead++]!;
      this.#backlogged.delete(uuid);
      // Gone from the window since: cancelled, or rescheduled past it.
      const task = this.#window!.get(uuid);
      if (task && !this.#running.has(uuid) && task.due <= Date.now()) this.#start(task);
    }
    if (this.#backlogHead > 1024 && this.#backlogHead * 2 > this.#backlog.length) {
      this.#backlog = this.#backlog.slice(this.#backlogHead);
      this.#backlogHead = 0;
    }
  }

  /** `claimedAt`: the task was claimed (a shared store), its attempt recorded as starting then. */
  async #attempt(task: WindowTask, claimedAt: number | undefined): Promise<void> {
    if (this.#cancelling.has(task.uuid)) return;
    const version = this.#version;
    const taskId = idOf(task);
    const r = version.resolve(task.stateType, task.method);
    if (!r) return this.#waitForCode(task, version.describeMissing(task.stateType, task.method));

    const attempt = claimedAt === undefined ? task.attempts + 1 : task.attempts;
    task.attempts = attempt;
    const run: Running = { task, controller: new AbortController(), attempt, cancelled: false, idle: false };
    this.#running.set(task.uuid, run);
    // The start time is taken as the start is committed, just before the method runs, so the
    // attempt's recorded duration is the method's own.
    let startedAt = claimedAt ?? Date.now();
    // The task's writes carry its key into the group commit: one that fails takes the later ones with it.
    const keys = [`task\u0000${task.uuid}`];
    const started =
      claimedAt === undefined ? this.store.commit((w) => w.startTask(task.uuid, attempt, version.id, (startedAt = Date.now())), keys) : undefined;
    let limit: NodeJS.Timeout | undefined;

    const end = (outcome: Outcome) => {
      // A cancel being committed wins: this end, and a writer's change with it, is not committed.
      if (this.#cancelling.has(task.uuid)) throw new Cancelled();
      const json = storedJsonOf(outcome);
      return (w: StoreWriter) => {
        const now = Date.now();
        if (outcome.status === "COMPLETED") w.completeTask(task.uuid, attempt, json, now);
        else if (outcome.status === "ABORTED") w.abortTask(task.uuid, attempt, json ?? "null", outcome.message, now);
      };
    };
    try {
      // The method runs once its attempt is on record: a crash from here on leaves it INTERRUPTED.
      if (started) await started;
      // The time limit is kept here, on the attempt's own signal.
      if (Number.isFinite(r.timeoutMs))
        limit = setTimeout(() => run.controller.abort(new DeadlineExceeded(`${task.stateType}.${task.method}`, r.timeoutMs)), r.timeoutMs);
      if (this.listenerCount("attempt:start") > 0) this.#emit("attempt:start", { taskId, method: task.method, attempt, version: version.id });
      const request: unknown = JSON.parse(task.request);
      // An error the attempt's code lets escape where nobody awaits it fails this attempt.
      const owner: ErrorOwner = {
        fail: (error) => {
          if (this.#running.get(task.uuid) !== run || run.controller.signal.aborted) return false;
          run.controller.abort(error);
          return true;
        },
      };
      const { outcome, committed } = await runOwned(owner, () =>
        this.#executor.run(r, task.stateId, request, {
          version, signal: run.controller.signal, deadline: limit && startedAt + r.timeoutMs, task: { taskId, attempt, keys }, onComplete: end,
        }),
      );
      clearTimeout(limit);
      if (run.cancelled) return;
      run.ending = outcome.status === "ABORTED" ? this.store.commit(end(outcome), keys) : committed;
      await run.ending;
      this.#release(run);
      if (this.listenerCount("attempt:end") > 0)
        this.#emit("attempt:end", { taskId, method: task.method, attempt, version: version.id, outcome: outcome.status === "COMPLETED" ? "COMPLETED" : "ABORTED" });
      this.#finish(taskId, outcome);
    } catch (thrown) {
      clearTimeout(limit);
      await this.#cancelling.get(task.uuid)?.catch(() => {});
      if (run.cancelled) return;
      // Cancelled, or taken over by another server: nothing of this attempt was committed, and its end is not this server's to record.
      if (thrown instanceof TaskLost) return this.#lost(run, version, thrown);
      if (thrown instanceof NextIteration) return this.#iterate(run, version, thrown, r.retry);
      await this.#fail(run, version, coerceError(thrown), r.retry);
    }
  }

  /** An iteration of the task's loop is done: store its counter and schedule the next one. */
  async #iterate(run: Running, version: CodeVersion, next: NextIteration, retry: RetryPolicy): Promise<void> {
    const { task, attempt } = run;
    const now = Date.now();
    try {
      await this.store.commit((w) => {
        next.record(w, now);
        w.iterateTask(task.uuid, attempt, next.dueAt, next.iteration, now);
      });
    } catch (storeError) {
      if (storeError instanceof TaskLost) return this.#lost(run, version, storeError);
      this.#emit("store:error", { error: storeError });
      return this.#fail(run, version, coerceError(storeError), retry);
    }
    this.#release(run);
    this.#emit("attempt:end", { taskId: idOf(task), method: task.method, attempt, version: version.id, outcome: "ITERATED" });
    this.#offer({ ...task, backoffStep: 0, due: next.dueAt });
  }

  async #fail(run: Running, version: CodeVersion, error: Error, retry: RetryPolicy): Promise<void> {
    const { task, attempt } = run;
    const now = Date.now();
    const delay = retryDelay(task.backoffStep, retry);
    const step = task.backoffStep + 1;
    // A new version may have been loaded while this attempt ran: retry on it at once.
    let due = version === this.#version ? now + delay : now;
    try {
      await this.store.commit((w) => w.failTask(task.uuid, attempt, due, step, { name: error.name, message: error.message, stack: error.stack }, now));
      // Loaded while the failure was being committed: the load did not see this task failing.
      if (version !== this.#version && due > now) {
        due = Date.now();
        await this.store.commit((w) => w.retryTask(task.uuid, due));
      }
    } catch (storeError) {
      if (storeError instanceof TaskLost) return this.#lost(run, version, storeError);
      // The store has the task as it was before this attempt: try again later.
      this.#emit("store:error", { error: storeError });
    }
    this.#release(run);
    this.#emit("attempt:end", { taskId: idOf(task), method: task.method, attempt, version: version.id, outcome: "FAILED", error, retryInMs: delay });
    this.#offer({ ...task, backoffStep: step, due });
  }

  // Stryker disable all: runs on a shared store (PostgreSQL) only, which mutation runs do not use (stryker.config.json)
  /** The store refused this attempt's end: the task is no longer this server's. */
  #lost(run: Running, version: CodeVersion, error: Error): void {
    this.#release(run);
    const { task, attempt } = run;
    this.#emit("attempt:lost", { taskId: idOf(task), method: task.method, attempt, version: version.id, reason: error.message });
  }

  // Stryker restore all

  #waitForCode(task: WindowTask, reason: string): void {
    const now = Date.now();
    this.store.commit((w) => w.waitForCode(task.uuid, reason, now)).then(
      () => this.#emit("task:waiting", { taskId: idOf(task), method: task.method, reason }),
      (error: unknown) => this.#emit("store:error", { error }),
    );
  }

  #finish(taskId: TaskId, outcome: Outcome): void {
    const waiters = this.#waiters.get(taskId.taskUuid);
    this.#waiters.delete(taskId.taskUuid);
    if (waiters) {
      // Waiters get what the store holds, as a waiter after a restart would.
      const stored = asStored(outcome);
      for (const w of waiters) settle(w, taskId.stateType, taskId.stateId, stored);
    }
    this.#emit("task:finished", { taskId, outcome });
  }

  /** Stops starting attempts; waits up to `graceMs` for running ones, then aborts them. */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    this.#window?.stop();
    this.#claimer?.stop();
    clearInterval(this.#renewal);
    if (this.#running.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.#onIdle = () => (clearTimeout(timer), resolve());
      });
    }
    for (const run of this.#running.values()) run.controller.abort(new MendError("STOPPED", "The runtime is stopping."));
    const stopped = new MendError("STOPPED", "The runtime stopped before the task finished.");
    for (const list of this.#waiters.values()) for (const w of list) w.reject(stopped);
    this.#waiters.clear();
  }
}

function asStored(outcome: Outcome): Outcome {
  if (outcome.status === "CANCELLED") return outcome;
  const json = storedJsonOf(outcome);
  const value: unknown = json === null ? undefined : JSON.parse(json);
  return outcome.status === "COMPLETED" ? { status: "COMPLETED", response: value } : { ...outcome, error: value ?? null };
}

/** @internal */
export function outcomeOf(row: TaskRow): Outcome {
  if (!FINISHED.has(row.status)) throw new MendError("NOT_FINISHED", `Task ${row.uuid} has not finished.`);
  if (row.status === "COMPLETED") return { status: "COMPLETED", response: row.response === null ? undefined : JSON.parse(row.response) };
  if (row.status === "ABORTED") return { status: "ABORTED", error: row.error === null ? null : JSON.parse(row.error), message: row.last_error ?? "" };
  return { status: "CANCELLED" };
}
