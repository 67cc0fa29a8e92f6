import { EventEmitter } from "node:events";
import type { CallTarget, Outcome } from "../api/context.js";
import { Cancelled, coerceError, MendError, TaskNotFound } from "../api/errors.js";
import { dueTime, TaskId, type When } from "../api/task-id.js";
import type { CommitQueue } from "../store/commit-queue.js";
import { FINISHED, type Statements, type TaskRow, type TaskStatus } from "../store/statements.js";
import { retryDelay } from "./backoff.js";
import { storedJsonOf, type EffectValidationEvent, type Executor, type NewTask, type TaskHost } from "./executor.js";
import { toStoredJson } from "./json.js";
import { Scheduler } from "./scheduler.js";
import { runOwned, type ErrorOwner } from "./stray.js";
import { NextIteration } from "./workflow.js";
import type { CodeVersion } from "./version.js";

/** An unfinished task, as the engine keeps it in memory (the store has the same). */
interface LiveTask {
  uuid: string;
  stateType: string;
  stateId: string;
  method: string;
  request: string;
  status: TaskStatus;
  attempts: number;
  backoffStep: number;
  /** Waiting for a code version that has its method. */
  waitingForCode: boolean;
}

interface Running {
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
}

/**
 * @internal How the previous process on this store stopped, told by whoever restarts it
 * (`mend dev run`'s watcher): not an option for applications.
 */
export interface Recovery {
  /** When that process stopped (ms since the epoch): its unfinished attempts ended then. @defaultValue now */
  stoppedAt?: number;
  /**
   * Tasks not to start again: each is stored as waiting for new code, with `reason` as its
   * error, so that the next load() or a retry starts it and a cancel ends it.
   */
  park?: { taskUuid: string; reason: string }[];
}

export interface EngineOptions {
  /** At most this many attempts run at once. @defaultValue 256 */
  concurrency: number;
}

function idOf(t: { stateType: string; stateId: string; uuid: string }): TaskId {
  return { stateType: t.stateType, stateId: t.stateId, taskUuid: t.uuid };
}

function oneLine(error: Error): string {
  return `${error.name}: ${error.message}`.split("\n")[0]!.slice(0, 500);
}

/** Runs tasks: due times, attempts, retries with backoff, cancel, waiting for results. */
export class Engine extends EventEmitter<EngineEvents> implements TaskHost {
  readonly #unfinished = new Map<string, LiveTask>();
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
  readonly #scheduler = new Scheduler((uuid) => this.#due(uuid));
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

  /**
   * Resumes every unfinished task in the store; one that was STARTED runs again, unless
   * `recovery` parks it (see {@link Recovery}).
   */
  recover(recovery: Recovery = {}): void {
    const now = Date.now();
    this.sql.interruptAttempts(Math.min(recovery.stoppedAt ?? now, now));
    const parked = new Set<string>();
    for (const p of recovery.park ?? []) if (this.sql.parkTask(p.taskUuid, p.reason, now).changes > 0) parked.add(p.taskUuid);
    for (const row of this.sql.unfinishedTasks()) {
      const task = fromRow(row);
      this.#unfinished.set(task.uuid, task);
      if (!parked.has(task.uuid)) this.#scheduler.add(task.uuid, row.status === "STARTED" || row.due_at === null ? now : row.due_at);
    }
  }

  /** Swaps in a new code version; every failing task is retried on it at once. */
  load(version: CodeVersion): TaskId[] {
    this.#version = version;
    const now = Date.now();
    const retrying: LiveTask[] = [];
    for (const task of this.#unfinished.values())
      if (task.status === "SCHEDULED_RETRY" && !this.#running.has(task.uuid)) {
        task.backoffStep = 0;
        task.waitingForCode = false;
        retrying.push(task);
      }
    if (retrying.length > 0)
      void this.commits
        .commit(() => {
          for (const t of retrying) this.sql.rescheduleTask(t.uuid, now, now);
        })
        .catch((error: unknown) => this.#emit("store:error", { error }));
    for (const t of retrying) this.#scheduler.add(t.uuid, now);
    return retrying.map(idOf);
  }

  // --- TaskHost -------------------------------------------------------------

  created(tasks: readonly NewTask[]): void {
    for (const t of tasks) {
      this.#unfinished.set(t.uuid, {
        uuid: t.uuid, stateType: t.stateType, stateId: t.stateId, method: t.method, request: t.request,
        status: "SCHEDULED", attempts: 0, backoffStep: 0, waitingForCode: false,
      });
      this.#scheduler.add(t.uuid, t.dueAt);
    }
  }

  async spawn(target: CallTarget, request: unknown, when: When | undefined, parentUuid: string | null, also?: (taskId: TaskId) => void): Promise<TaskId> {
    const r = this.#executor.resolve(this.#version, target);
    const req = this.#executor.validateRequest(r, request);
    const now = Date.now();
    const task: NewTask = {
      uuid: TaskId.newUuid(), stateType: target.stateType, stateId: target.stateId, method: target.method,
      request: toStoredJson(req, `The request of ${target.stateType}.${target.method}`) ?? "{}",
      dueAt: dueTime(when, now), createdAt: now, parentUuid,
    };
    await this.commits.commit(() => {
      this.sql.insertTask({ uuid: task.uuid, state_type: task.stateType, state_id: task.stateId, method: task.method, request: task.request, due_at: task.dueAt, created_at: now, now: Date.now(), parent_uuid: parentUuid });
      also?.(idOf(task));
    });
    this.created([task]);
    return idOf(task);
  }

  /** Waits for a task to end; `signal` gives up waiting (the task goes on). */
  wait(taskId: TaskId, signal?: AbortSignal): Promise<Outcome> {
    if (this.#unfinished.has(taskId.taskUuid))
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
    const row = this.sql.getTask(taskId.taskUuid);
    if (!row || row.state_type !== taskId.stateType || row.state_id !== taskId.stateId)
      return Promise.reject(new TaskNotFound(TaskId.format(taskId)));
    return Promise.resolve(outcomeOf(row));
  }

  // --- Operator actions -----------------------------------------------------

  /** Cancels a task; false if it had already finished. Throws if there is no such task. */
  async cancel(uuid: string): Promise<boolean> {
    // An attempt whose end is already on its way to the store wins if that commits.
    const ending = this.#running.get(uuid)?.ending;
    if (ending) await ending.catch(() => {});
    const task = this.#unfinished.get(uuid);
    if (!task) {
      if (!this.sql.getTask(uuid)) throw new TaskNotFound(uuid);
      return false;
    }
    const running = this.#running.get(uuid);
    this.#scheduler.remove(uuid);
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
    this.#finish(task, { status: "CANCELLED" });
    return true;
  }

  /** Runs a scheduled or failing task now, its backoff reset. False if it is running or finished. */
  async retryNow(uuid: string): Promise<boolean> {
    const task = this.#unfinished.get(uuid);
    if (!task) {
      if (!this.sql.getTask(uuid)) throw new TaskNotFound(uuid);
      return false;
    }
    if (this.#running.has(uuid) || this.#backlog.indexOf(uuid, this.#backlogHead) >= 0) return false;
    const now = Date.now();
    task.backoffStep = 0;
    task.waitingForCode = false;
    await this.commits.commit(() => this.sql.rescheduleTask(uuid, now, now));
    this.#scheduler.add(uuid, now);
    return true;
  }

  // --- Attempts -------------------------------------------------------------

  /** Attempts that hold a slot. */
  get #busy(): number {
    return this.#running.size - this.#idleCount;
  }

  #due(uuid: string): void {
    if (this.#stopping || !this.#unfinished.has(uuid)) return;
    if (this.#busy >= this.options.concurrency) this.#backlog.push(uuid);
    else void this.#attempt(this.#unfinished.get(uuid)!);
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
      const next = this.#unfinished.get(this.#backlog[this.#backlogHead++]!);
      if (next && !this.#running.has(next.uuid)) void this.#attempt(next);
    }
    if (this.#backlogHead > 1024 && this.#backlogHead * 2 > this.#backlog.length) {
      this.#backlog = this.#backlog.slice(this.#backlogHead);
      this.#backlogHead = 0;
    }
  }

  async #attempt(task: LiveTask): Promise<void> {
    if (this.#cancelling.has(task.uuid)) return;
    const version = this.#version;
    const taskId = idOf(task);
    const r = version.resolve(task.stateType, task.method);
    if (!r) return this.#waitForCode(task, version.describeMissing(task.stateType, task.method));

    const attempt = task.attempts + 1;
    task.attempts = attempt;
    task.status = "STARTED";
    const run: Running = { controller: new AbortController(), attempt, cancelled: false, idle: false };
    this.#running.set(task.uuid, run);
    // The start time is taken when the start is written, as the end time is: a start that
    // waits for its group commit has not started yet.
    const started = this.commits.commit(() => this.sql.startTask(task.uuid, attempt, version.id, Date.now()));

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
      await started;
      this.#emit("attempt:start", { taskId, method: task.method, attempt, version: version.id });
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
        this.#executor.run(r, task.stateId, request, { version, signal: run.controller.signal, task: { taskId, attempt }, onComplete: end }),
      );
      if (run.cancelled) return;
      run.ending = outcome.status === "ABORTED" ? this.commits.commit(end(outcome)) : committed;
      await run.ending;
      this.#release(task.uuid);
      this.#emit("attempt:end", { taskId, method: task.method, attempt, version: version.id, outcome: outcome.status === "COMPLETED" ? "COMPLETED" : "ABORTED" });
      this.#finish(task, outcome);
    } catch (thrown) {
      await this.#cancelling.get(task.uuid)?.catch(() => {});
      if (run.cancelled) return;
      if (thrown instanceof NextIteration) return this.#iterate(task, attempt, version, thrown, r.retry);
      await this.#fail(task, attempt, version, coerceError(thrown), r.retry);
    }
  }

  /** An iteration of the task's loop is done: store its counter and schedule the next one. */
  async #iterate(task: LiveTask, attempt: number, version: CodeVersion, next: NextIteration, retry: import("./backoff.js").RetryPolicy): Promise<void> {
    const now = Date.now();
    try {
      await this.commits.commit(() => {
        next.record();
        this.sql.iterateTask(task.uuid, next.dueAt, next.iteration, now);
        this.sql.endAttempt(task.uuid, attempt, now, "ITERATED");
      });
    } catch (storeError) {
      this.#emit("store:error", { error: storeError });
      return this.#fail(task, attempt, version, coerceError(storeError), retry);
    }
    task.status = "SCHEDULED_ITERATION";
    task.backoffStep = 0;
    this.#release(task.uuid);
    this.#emit("attempt:end", { taskId: idOf(task), method: task.method, attempt, version: version.id, outcome: "ITERATED" });
    this.#scheduler.add(task.uuid, next.dueAt);
  }

  async #fail(task: LiveTask, attempt: number, version: CodeVersion, error: Error, retry: import("./backoff.js").RetryPolicy): Promise<void> {
    const now = Date.now();
    const delay = retryDelay(task.backoffStep, retry);
    const step = task.backoffStep + 1;
    try {
      await this.commits.commit(() => {
        this.sql.failTask(task.uuid, now + delay, step, oneLine(error), now);
        this.sql.endAttempt(task.uuid, attempt, now, "FAILED", { name: error.name, message: error.message, stack: error.stack });
      });
    } catch (storeError) {
      // The store has the task as it was before this attempt: try again later.
      this.#emit("store:error", { error: storeError });
    }
    task.status = "SCHEDULED_RETRY";
    task.backoffStep = step;
    this.#release(task.uuid);
    this.#emit("attempt:end", { taskId: idOf(task), method: task.method, attempt, version: version.id, outcome: "FAILED", error, retryInMs: delay });
    // A new version may have been loaded while this attempt ran: retry on it at once.
    this.#scheduler.add(task.uuid, version === this.#version ? now + delay : now);
  }

  #waitForCode(task: LiveTask, reason: string): void {
    task.status = "SCHEDULED_RETRY";
    task.waitingForCode = true;
    const now = Date.now();
    this.commits.commit(() => this.sql.failTask(task.uuid, null, task.backoffStep, reason, now)).then(
      () => this.#emit("task:waiting", { taskId: idOf(task), method: task.method, reason }),
      (error: unknown) => this.#emit("store:error", { error }),
    );
  }

  #finish(task: LiveTask, outcome: Outcome): void {
    task.status = outcome.status === "COMPLETED" ? "COMPLETED" : outcome.status === "ABORTED" ? "ABORTED" : "CANCELLED";
    this.#unfinished.delete(task.uuid);
    const waiters = this.#waiters.get(task.uuid);
    this.#waiters.delete(task.uuid);
    if (waiters) {
      // Waiters get what the store holds, as a waiter after a restart would.
      const stored = asStored(outcome);
      for (const w of waiters) w.resolve(stored);
    }
    this.#emit("task:finished", { taskId: idOf(task), outcome });
  }

  get runningCount(): number {
    return this.#running.size;
  }

  /** Stops starting attempts; waits up to `graceMs` for running ones, then aborts them. */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    this.#scheduler.stop();
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

function fromRow(row: TaskRow): LiveTask {
  return {
    uuid: row.uuid, stateType: row.state_type, stateId: row.state_id, method: row.method, request: row.request,
    status: row.status, attempts: row.attempts, backoffStep: row.backoff_step,
    waitingForCode: row.status === "SCHEDULED_RETRY" && row.due_at === null,
  };
}

function asStored(outcome: Outcome): Outcome {
  if (outcome.status === "CANCELLED") return outcome;
  const json = storedJsonOf(outcome);
  const value: unknown = json === null ? undefined : JSON.parse(json);
  return outcome.status === "COMPLETED" ? { status: "COMPLETED", response: value } : { ...outcome, error: value ?? null };
}

export function outcomeOf(row: TaskRow): Outcome {
  if (!FINISHED.has(row.status)) throw new MendError("NOT_FINISHED", `Task ${row.uuid} has not finished.`);
  if (row.status === "COMPLETED") return { status: "COMPLETED", response: row.response === null ? undefined : JSON.parse(row.response) };
  if (row.status === "ABORTED") return { status: "ABORTED", error: row.error === null ? null : JSON.parse(row.error), message: row.last_error ?? "" };
  return { status: "CANCELLED" };
}
