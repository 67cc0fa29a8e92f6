import { EventEmitter } from "node:events";
import type { CallTarget, Outcome } from "../api/context.js";
import { Cancelled, coerceError, DeadlineExceeded, MendError, TaskNotFound } from "../api/errors.js";
import { dueTime, TaskId, type When } from "../api/task-id.js";
import type { CommitQueue } from "../store/commit-queue.js";
import { FINISHED, type Statements, type TaskRow } from "../store/statements.js";
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

function idOf(t: { stateType: string; stateId: string; uuid: string }): TaskId {
  return { stateType: t.stateType, stateId: t.stateId, taskUuid: t.uuid };
}

function oneLine(error: Error): string {
  return `${error.name}: ${error.message}`.split("\n")[0]!.slice(0, 500);
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
  readonly #waiters = new Map<string, { resolve: (outcome: Outcome) => void; reject: (e: Error) => void }[]>();
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
  readonly #window: DueWindow;
  #executor!: Executor;
  #version!: CodeVersion;
  #stopping = false;
  #onIdle: (() => void) | undefined;

  constructor(
    private readonly sql: Statements,
    private readonly commits: CommitQueue,
    private readonly options: EngineOptions,
  ) {
    super();
    this.#window = new DueWindow(
      {
        dueAfter: (after, until, limit) => this.sql.dueTasks(after, until, limit).map((row) => fromRow(row, row.due_at!)),
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
  get inMemory(): { waiting: number; running: number } {
    return { waiting: this.#window.size, running: this.#running.size };
  }

  /**
   * Resumes the store's unfinished tasks: the attempts that were running are recorded as
   * interrupted (their tasks run again: they are due, unless `recovery` parks them), and the
   * first window of due tasks is read. Nothing else is read.
   */
  recover(recovery: Recovery = {}): void {
    const now = Date.now();
    this.sql.interruptAttempts(Math.min(recovery.stoppedAt ?? now, now));
    for (const p of recovery.park ?? []) this.sql.parkTask(p.taskUuid, p.reason, now);
    this.#window.refill();
  }

  /**
   * Swaps in a new code version; every failing task is retried on it at once (one update of
   * the store, then the window reads what is due now).
   */
  load(version: CodeVersion): TaskId[] {
    this.#version = version;
    const now = Date.now();
    const retried = this.commits.commitNow(() => this.sql.retryFailing(now));
    for (const row of retried) {
      const task = this.#window.get(row.uuid);
      if (task) this.#window.offer({ ...task, due: now, backoffStep: 0 });
    }
    if (retried.length > 0) this.#window.reset();
    return retried.map((row) => ({ stateType: row.state_type, stateId: row.state_id, taskUuid: row.uuid }));
  }

  // --- TaskHost -------------------------------------------------------------

  written(writes: readonly { type: string; id: string }[]): void {
    if (this.listenerCount("state:written") > 0) for (const w of writes) this.#emit("state:written", { stateType: w.type, stateId: w.id });
  }

  created(tasks: readonly NewTask[]): void {
    if (this.listenerCount("task:created") > 0)
      for (const t of tasks) this.#emit("task:created", { taskId: idOf(t), method: t.method, dueAt: t.dueAt, parentUuid: t.parentUuid });
    for (const t of tasks)
      this.#window.offer({
        uuid: t.uuid, stateType: t.stateType, stateId: t.stateId, method: t.method, request: t.request,
        attempts: 0, backoffStep: 0, due: t.dueAt,
      });
  }

  async spawn(target: CallTarget, request: unknown, when: When | undefined, parentUuid: string | null, also?: (taskId: TaskId) => void): Promise<TaskId> {
    const r = this.#executor.resolve(this.#version, target);
    const req = this.#executor.validateRequest(r, request);
    const now = Date.now();
    const task: NewTask = {
      uuid: TaskId.newUuid(), stateType: target.stateType, stateId: target.stateId, method: target.method,
      request: toStoredJson(req, `The request of ${target.stateType}.${target.method}`, this.options.maxValueBytes) ?? "{}",
      dueAt: dueTime(when, now), createdAt: now, parentUuid,
    };
    await this.commits.commit(() => {
      this.sql.insertTask({ uuid: task.uuid, state_type: task.stateType, state_id: task.stateId, method: task.method, request: task.request, due_at: task.dueAt, created_at: now, now: Date.now(), parent_uuid: parentUuid });
      also?.(idOf(task));
    });
    this.created([task]);
    return idOf(task);
  }

  /** Waits for a task to end; `signal` gives up waiting (the task goes on). The task need not be in memory. */
  wait(taskId: TaskId, signal?: AbortSignal): Promise<Outcome> {
    const row = this.sql.getTask(taskId.taskUuid);
    if (!row || row.state_type !== taskId.stateType || row.state_id !== taskId.stateId)
      return Promise.reject(new TaskNotFound(TaskId.format(taskId)));
    if (FINISHED.has(row.status)) return Promise.resolve(outcomeOf(row));
    return new Promise((resolve, reject) => {
      const list = this.#waiters.get(taskId.taskUuid) ?? [];
      const waiter = { resolve, reject };
      list.push(waiter);
      this.#waiters.set(taskId.taskUuid, list);
      signal?.addEventListener("abort", () => {
        const i = list.indexOf(waiter);
        if (i >= 0) list.splice(i, 1);
        if (list.length === 0 && this.#waiters.get(taskId.taskUuid) === list) this.#waiters.delete(taskId.taskUuid);
        reject(signal.reason);
      }, { once: true });
    });
  }

  // --- Operator actions -----------------------------------------------------

  /** Cancels a task; false if it had already finished. Throws if there is no such task. */
  async cancel(uuid: string): Promise<boolean> {
    // An attempt whose end is already on its way to the store wins if that commits.
    const ending = this.#running.get(uuid)?.ending;
    if (ending) await ending.catch(() => {});
    const row = this.sql.getTask(uuid);
    if (!row) throw new TaskNotFound(uuid);
    if (FINISHED.has(row.status)) return false;
    const running = this.#running.get(uuid);
    this.#window.remove(uuid);
    const now = Date.now();
    let changed = false;
    const committed = this.commits.commit(() => {
      changed = this.sql.cancelTask(uuid, now).changes > 0;
      if (changed && running) this.sql.endAttempt(uuid, running.attempt, now, "CANCELLED");
    });
    this.#cancelling.set(uuid, committed);
    try {
      await committed;
    } finally {
      if (this.#cancelling.get(uuid) === committed) this.#cancelling.delete(uuid);
    }
    if (!changed) return false; // it ended first, in the same commit
    if (running) {
      running.cancelled = true;
      running.controller.abort(new Cancelled());
      this.#release(uuid);
    }
    this.#finish(idOf({ stateType: row.state_type, stateId: row.state_id, uuid }), { status: "CANCELLED" });
    return true;
  }

  /** Runs a scheduled or failing task now, its backoff reset. False if it is running or finished. */
  async retryNow(uuid: string, also?: () => void): Promise<boolean> {
    if (this.#running.has(uuid) || this.#backlogged.has(uuid)) return false;
    const now = Date.now();
    let changed = false;
    // `also` commits with the retry, only if the task could be retried (a rerun's forgetting of steps).
    await this.commits.commit(() => (changed = this.sql.retryTask(uuid, now)) && also?.());
    if (!changed) {
      if (!this.sql.getTask(uuid)) throw new TaskNotFound(uuid);
      return false;
    }
    const row = this.sql.getTask(uuid)!;
    if (!this.#running.has(uuid)) this.#window.offer(fromRow(row, now));
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
    this.#window.remove(task.uuid);
    void this.#attempt(task);
  }

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

  #release(uuid: string): void {
    const run = this.#running.get(uuid);
    if (run) this.#wake(run);
    this.#running.delete(uuid);
    this.#fill();
    if (this.#running.size === 0) this.#onIdle?.();
  }

  /** Gives free slots to idle attempts that want theirs back, then to due tasks. */
  #fill(): void {
    while (this.#resumers.length > 0 && this.#busy < this.options.concurrency) this.#resumers.shift()!();
    while (this.#backlogHead < this.#backlog.length && this.#busy < this.options.concurrency && !this.#stopping) {
      const uuid = this.#backlog[this.#backlogHead++]!;
      this.#backlogged.delete(uuid);
      // Gone from the window since: cancelled, or rescheduled past it.
      const task = this.#window.get(uuid);
      if (task && !this.#running.has(uuid) && task.due <= Date.now()) this.#start(task);
    }
    if (this.#backlogHead > 1024 && this.#backlogHead * 2 > this.#backlog.length) {
      this.#backlog = this.#backlog.slice(this.#backlogHead);
      this.#backlogHead = 0;
    }
  }

  async #attempt(task: WindowTask): Promise<void> {
    if (this.#cancelling.has(task.uuid)) return;
    const version = this.#version;
    const taskId = idOf(task);
    const r = version.resolve(task.stateType, task.method);
    if (!r) return this.#waitForCode(task, version.describeMissing(task.stateType, task.method));

    const attempt = task.attempts + 1;
    task.attempts = attempt;
    const run: Running = { task, controller: new AbortController(), attempt, cancelled: false, idle: false };
    this.#running.set(task.uuid, run);
    // The start time is taken as the start is committed, just before the method runs, so the
    // attempt's recorded duration is the method's own.
    let startedAt = Date.now();
    // The task's writes carry its key into the group commit: one that fails takes the later ones with it.
    const keys = [`task\u0000${task.uuid}`];
    const started = this.commits.commit(() => this.sql.startTask(task.uuid, attempt, version.id, (startedAt = Date.now())), keys);
    let limit: NodeJS.Timeout | undefined;

    const end = (outcome: Outcome) => {
      // A cancel being committed wins: this end, and a writer's change with it, is not committed.
      if (this.#cancelling.has(task.uuid)) throw new Cancelled();
      const json = storedJsonOf(outcome);
      return () => {
        const now = Date.now();
        if (outcome.status === "COMPLETED") {
          this.sql.completeTask(task.uuid, json, now);
          this.sql.endAttempt(task.uuid, attempt, now, "COMPLETED");
        } else if (outcome.status === "ABORTED") {
          this.sql.abortTask(task.uuid, json ?? "null", outcome.message, now);
          this.sql.endAttempt(task.uuid, attempt, now, "ABORTED", { name: "Aborted", message: outcome.message });
        }
      };
    };
    try {
      // The method runs once its attempt is on record: a crash from here on leaves it INTERRUPTED.
      await started;
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
      run.ending = outcome.status === "ABORTED" ? this.commits.commit(end(outcome), keys) : committed;
      await run.ending;
      this.#release(task.uuid);
      if (this.listenerCount("attempt:end") > 0)
        this.#emit("attempt:end", { taskId, method: task.method, attempt, version: version.id, outcome: outcome.status === "COMPLETED" ? "COMPLETED" : "ABORTED" });
      this.#finish(taskId, outcome);
    } catch (thrown) {
      clearTimeout(limit);
      await this.#cancelling.get(task.uuid)?.catch(() => {});
      if (run.cancelled) return;
      if (thrown instanceof NextIteration) return this.#iterate(task, attempt, version, thrown, r.retry);
      await this.#fail(task, attempt, version, coerceError(thrown), r.retry);
    }
  }

  /** An iteration of the task's loop is done: store its counter and schedule the next one. */
  async #iterate(task: WindowTask, attempt: number, version: CodeVersion, next: NextIteration, retry: RetryPolicy): Promise<void> {
    const now = Date.now();
    try {
      await this.commits.commit(() => {
        next.record(now);
        this.sql.iterateTask(task.uuid, next.dueAt, next.iteration, now);
        this.sql.endAttempt(task.uuid, attempt, now, "ITERATED");
      });
    } catch (storeError) {
      this.#emit("store:error", { error: storeError });
      return this.#fail(task, attempt, version, coerceError(storeError), retry);
    }
    this.#release(task.uuid);
    this.#emit("attempt:end", { taskId: idOf(task), method: task.method, attempt, version: version.id, outcome: "ITERATED" });
    this.#window.offer({ ...task, backoffStep: 0, due: next.dueAt });
  }

  async #fail(task: WindowTask, attempt: number, version: CodeVersion, error: Error, retry: RetryPolicy): Promise<void> {
    const now = Date.now();
    const delay = retryDelay(task.backoffStep, retry);
    const step = task.backoffStep + 1;
    // A new version may have been loaded while this attempt ran: retry on it at once.
    let due = version === this.#version ? now + delay : now;
    try {
      await this.commits.commit(() => {
        this.sql.failTask(task.uuid, due, step, oneLine(error), now);
        this.sql.endAttempt(task.uuid, attempt, now, "FAILED", { name: error.name, message: error.message, stack: error.stack });
      });
      // Loaded while the failure was being committed: the load did not see this task failing.
      if (version !== this.#version && due > now) {
        due = Date.now();
        await this.commits.commit(() => this.sql.retryTask(task.uuid, due));
      }
    } catch (storeError) {
      // The store has the task as it was before this attempt: try again later.
      this.#emit("store:error", { error: storeError });
    }
    this.#release(task.uuid);
    this.#emit("attempt:end", { taskId: idOf(task), method: task.method, attempt, version: version.id, outcome: "FAILED", error, retryInMs: delay });
    this.#window.offer({ ...task, backoffStep: step, due });
  }

  #waitForCode(task: WindowTask, reason: string): void {
    const now = Date.now();
    this.commits.commit(() => this.sql.failTask(task.uuid, null, task.backoffStep, reason, now)).then(
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
      for (const w of waiters) w.resolve(stored);
    }
    this.#emit("task:finished", { taskId, outcome });
  }

  /** Stops starting attempts; waits up to `graceMs` for running ones, then aborts them. */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    this.#window.stop();
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
