import type { IdempotencyRow } from "./idempotency.js";
import type { HistoryRow, InstanceRow, StepRow } from "./inspect-statements.js";
import type { AttemptRow, MemoRow, TaskFilter, TaskHeader, TaskListRow, TaskRow, VersionRow } from "./statements.js";

/**
 * What the engine, the executor and the rest of the runtime ask of a store: reads, which
 * may go over the network (PostgreSQL), and writes, which are grouped into one transaction
 * per turn of the event loop (group commit). SQLite answers its reads at once; PostgreSQL
 * answers them from a pool of connections.
 * @internal
 */
export interface Store {
  readonly kind: "sqlite" | "postgresql";
  /** The store's file, or its URL without a password: for messages. */
  readonly location: string;
  /** What an acknowledged write survives: SQLite's `synchronous`, or PostgreSQL's `synchronous_commit` (`FULL` when on). */
  readonly synchronous: "FULL" | "NORMAL" | "OFF" | "EXTRA";

  /**
   * Queues writes: `op` is run with a writer whose writes commit in one transaction with
   * everything else queued in this turn of the event loop. Settles once they are durable.
   * `keys` name what the writes were computed from (state instances, the task): if a group
   * fails and this write fails alone, the later writes of the group with one of its keys
   * fail too.
   */
  commit(op: (w: StoreWriter) => void, keys?: readonly string[]): Promise<void>;

  getTask(uuid: string): Promise<TaskRow | undefined>;
  /** Several tasks at once, in no order; the ones that do not exist are left out. */
  getTasks(uuids: readonly string[]): Promise<TaskRow[]>;
  listAttempts(uuid: string): Promise<AttemptRow[]>;
  getMemo(taskUuid: string, alias: string): Promise<MemoRow | undefined>;
  /** The durable state of an instance; undefined if it was never written. */
  readState(type: string, id: string): Promise<StoredState | undefined>;
  getRecord(seed: string, alias: string): Promise<IdempotencyRow | undefined>;
  /** A page of tasks, newest first, without their values (see TaskListRow). */
  listTasks(filter: TaskFilter): Promise<TaskListRow[]>;
  /** Up to `limit` tasks whose uuid starts with `prefix`, in uuid order. */
  tasksWithUuidPrefix(prefix: string, limit: number): Promise<TaskHeader[]>;
  /** The uuids just before and after `uuid`, to find how much of it no other task shares. */
  neighbourUuids(uuid: string): Promise<string[]>;
  /** The greatest version number recorded (0 if none). */
  lastVersion(): Promise<number>;
  /**
   * A version numbered after every recorded one (and at least `atLeast`): its number, and
   * the write that records it (which a store held by one process makes with its next commit).
   */
  newVersion(atLeast: number, loadedAt: number): Promise<{ number: number; recorded: Promise<void> }>;

  /** The dashboard's reads: none is on a task's path. */
  readonly inspect: InspectReads;

  /** Only a store that one process holds (SQLite): the window's reads and recovery. */
  readonly local?: LocalStore;
  /** Only a store several servers share (PostgreSQL): claims, leases, locks, news. */
  readonly shared?: SharedStore;

  /** Writes what is pending, then closes; later writes are refused. */
  close(): Promise<void>;
}

/** A state instance as stored: its JSON, and its version (each write makes a new one; what PostgreSQL fences writes with). */
export interface StoredState {
  json: string;
  version: number;
}

/** A task to insert. `created_at` is when it was asked for (its `when` counts from then); `now` is the commit. */
export interface NewTaskRow {
  uuid: string;
  state_type: string;
  state_id: string;
  method: string;
  request: string;
  due_at: number;
  created_at: number;
  now: number;
  parent_uuid: string | null;
}

export interface ErrorInfo {
  name: string;
  message: string;
  stack?: string | undefined;
}

/** A task changed by a write: enough to name it. */
export interface TaskKey {
  uuid: string;
  state_type: string;
  state_id: string;
}

/**
 * The writes of a commit. Each either happens with the rest of its commit or not at all.
 * On a shared store, the end of an attempt (complete, abort, fail, iterate, waitForCode)
 * happens only if the task is still this server's, in that attempt: if another server took
 * it over (its lease ended) or a cancel ended it, the write fails, and with it everything
 * committed with it (a writer's change).
 */
export interface StoreWriter {
  insertTask(t: NewTaskRow): void;
  /** A task starts its attempt `number` (a store one process holds; a shared one claims instead). */
  startTask(uuid: string, number: number, version: string, now: number): void;
  completeTask(uuid: string, attempt: number, response: string | null, now: number): void;
  abortTask(uuid: string, attempt: number, error: string, message: string, now: number): void;
  /** The attempt failed; the task runs again at `dueAt`. */
  failTask(uuid: string, attempt: number, dueAt: number, backoffStep: number, error: ErrorInfo, now: number): void;
  /** The method of the task does not exist in the loaded code: it waits, with no due time, for code that has it. */
  waitForCode(uuid: string, reason: string, now: number): void;
  /** An iteration of the task's loop is done; the next one is due at `dueAt`. */
  iterateTask(uuid: string, attempt: number, dueAt: number, iteration: number, now: number): void;
  /** Ends an unfinished task CANCELLED (and its open attempt); `result` says whether it did. */
  cancelTask(uuid: string, now: number, result: (changed: boolean) => void): void;
  /**
   * A task that has not started, or is failing, due now; `result` is false if it is running
   * or finished. With `also`: only if the task is at attempt `also.attempts` still (nothing
   * ran since it was read), and then `also.then` writes too (a rerun forgetting steps).
   */
  retryTask(uuid: string, now: number, result?: (changed: boolean) => void, also?: RetryAlso): void;
  /** Forgets a workflow step (a rerun from it). */
  forgetStep(uuid: string, alias: string): void;
  /** Sets a loop's counter, and its task's, back to `iteration`. */
  setLoopIteration(uuid: string, alias: string, iteration: number): void;
  /** Records what an operator did to a task. */
  addHistory(h: { uuid: string; at: number; action: string; by: string; detail: string }): void;
  /** Every failing task due now, its backoff reset; `result` gets those it changed. */
  retryFailing(now: number, result: (rows: TaskKey[]) => void): void;
  /**
   * `basis`: the version of the state the change was computed from (0: none); `version`: the
   * one it makes. A store several servers share refuses it if the state is at another version.
   */
  writeState(type: string, id: string, json: string, basis: number, version: number): void;
  /**
   * The writes of this commit are made by attempt `attempt` of the task `uuid`: on a store
   * several servers share, they are refused unless this server still runs it in that attempt.
   */
  checkTask(uuid: string, attempt: number): void;
  putMemo(m: Omit<MemoRow, "updated_at"> & { now: number }): void;
  /** A second record under the same key fails the commit it is part of. */
  putRecord(r: IdempotencyRow): void;
  recordVersion(v: VersionRow): void;
}

/** Writes made with a retry, only if it retries the task at the attempt it was read at. */
export interface RetryAlso {
  attempts: number;
  then: (w: StoreWriter) => void;
}

/** Reads of the store for the dashboard (and `mend task steps`). */
export interface InspectReads {
  /** A task's steps in the order they were first recorded; values over `maxBytes` only previewed. */
  listSteps(uuid: string, maxBytes: number): Promise<StepRow[]>;
  history(uuid: string): Promise<HistoryRow[]>;
  stateTypes(): Promise<string[]>;
  /** Instances of a type, counted up to COUNT_CAP + 1. */
  countInstances(type: string): Promise<number>;
  /** A page of instances in id order, after `after`, whose id starts with `prefix`. */
  instances(type: string, prefix: string, after: string, limit: number): Promise<InstanceRow[]>;
  /** Tasks of a status, counted up to COUNT_CAP + 1. */
  countStatus(status: string): Promise<number>;
  /** The newest `limit` code versions, newest first. */
  versions(limit: number): Promise<{ number: number; loaded_at: number; changed: string; build_ms: number | null; load_ms: number | null }[]>;
}

/** A position in due order: (due time, uuid). */
export interface DueKey {
  due: number;
  uuid: string;
}

/** What only a store held by one process offers: reads made at once, for the window and for recovery. */
export interface LocalStore {
  /** Tasks that can run, due after the key `after` and at the latest at `until`, in due order. */
  dueTasks(after: DueKey, until: number, limit: number): TaskRow[];
  /** Records the attempts that were running as interrupted (at `stoppedAt`), and parks tasks. */
  recover(stoppedAt: number, park: readonly { taskUuid: string; reason: string }[], now: number): void;
}

/** A task claimed by this server: running under its lease, its attempt recorded. */
export type ClaimedTask = TaskRow;

/** News from other servers (and this one) on a shared store. */
export interface SharedNews {
  /** Tasks became due at `at` (ms since the epoch) or earlier. */
  due(at: number): void;
  /** These tasks finished. */
  finished(uuids: readonly string[]): void;
  /** These tasks were cancelled. */
  cancelled(uuids: readonly string[]): void;
  /** An instance lock another server held was let go. */
  unlocked(): void;
  /** The connection that brings news was lost and is back: news may have been missed. */
  resumed(): void;
}

/** What a store several servers share offers: claims under leases, instance locks, news. */
export interface SharedStore {
  /** This server, as the store knows it. */
  readonly serverId: string;
  /** How long a claim or a lock lasts without renewal. */
  readonly leaseMs: number;
  /** Starts listening for news; told to `news`. */
  listen(news: SharedNews): Promise<void>;
  /** Tells this server's methods (`Type\u0001method`) and version, so others know what it can run. */
  announce(version: string, methods: readonly string[], now: number): Promise<void>;
  /**
   * Claims up to `limit` due tasks of these methods: each is STARTED under this server's
   * lease, with its attempt recorded (an attempt of a server whose lease ended recorded
   * INTERRUPTED). Also tells when the next task is due (undefined: none).
   */
  claim(limit: number, now: number, version: string, methods: readonly string[]): Promise<{ tasks: ClaimedTask[]; next: number | undefined }>;
  /** Tasks due that no live server can run: each waits for code (`reason` says why); the ones it changed. */
  orphans(now: number, methods: readonly string[], reason: (type: string, method: string) => string): Promise<(TaskKey & { method: string })[]>;
  /** Tasks waiting for code that these methods can run are due now; how many. */
  wake(now: number, methods: readonly string[]): Promise<number>;
  /**
   * Renews the leases of these running tasks and of these instance locks: the tasks it renewed
   * (one missing was taken over by another server, or cancelled); undefined if the store
   * could not be reached.
   */
  renew(uuids: readonly string[], locks: readonly string[], now: number): Promise<Set<string> | undefined>;
  /** Takes instance locks (`Type\u0000id`) for this server: those it got. */
  lock(keys: readonly string[], now: number): Promise<Set<string>>;
  /** Lets instance locks go. */
  unlock(keys: readonly string[]): Promise<void>;
  /** At a clean stop: this server's running tasks are due now (another server interrupts and reruns them), its locks go. */
  release(now: number): Promise<void>;
}
