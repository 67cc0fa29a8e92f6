import type Database from "better-sqlite3";
import { fault } from "./faults.js";
import { prepareIdempotency } from "./idempotency.js";
import { prepareInspectStatements } from "./inspect-statements.js";
import type { ErrorInfo, NewTaskRow, StoreWriter, TaskKey } from "./store.js";

export type TaskStatus =
  | "SCHEDULED"
  | "STARTED"
  | "SCHEDULED_RETRY"
  | "SCHEDULED_ITERATION"
  | "COMPLETED"
  | "ABORTED"
  | "CANCELLED";

export const FINISHED: ReadonlySet<TaskStatus> = new Set(["COMPLETED", "ABORTED", "CANCELLED"]);

export interface TaskRow {
  uuid: string;
  state_type: string;
  state_id: string;
  method: string;
  request: string;
  status: TaskStatus;
  due_at: number | null;
  created_at: number;
  updated_at: number;
  attempts: number;
  backoff_step: number;
  response: string | null;
  error: string | null;
  last_error: string | null;
  parent_uuid: string | null;
  /** Iterations done by the task's latest loop. */
  iteration: number;
}

export type MemoStatus = "started" | "completed" | "failed";

export interface MemoRow {
  task_uuid: string;
  alias: string;
  kind: string;
  step: string;
  status: MemoStatus;
  value: string | null;
  updated_at: number;
}

export interface AttemptRow {
  task_uuid: string;
  number: number;
  version: string;
  started_at: number;
  ended_at: number | null;
  outcome: string | null;
  error_class: string | null;
  error_message: string | null;
  error_stack: string | null;
}

/** A code version that \`mend dev run\` loaded. */
export interface VersionRow {
  number: number;
  loaded_at: number;
  /** JSON array of file paths. */
  changed: string;
  build_ms: number | null;
  load_ms: number | null;
}

export interface TaskFilter {
  status?: TaskStatus;
  stateType?: string;
  stateId?: string;
  method?: string;
  /** Only the children of this task. */
  parentUuid?: string;
  /** Only tasks whose uuid starts with it, or whose state id, method or last error contains it. */
  text?: string;
  /** Tasks created before this rowid (paging, newest first). */
  before?: number;
  limit: number;
}

/** A task as a list shows it: its values only as a size in bytes and a preview. */
export type TaskListRow = Omit<TaskRow, "request" | "response" | "error"> & {
  rowid: number;
  request_bytes: number;
  request_preview: string;
  response_bytes: number | null;
  response_preview: string | null;
  error_bytes: number | null;
  error_preview: string | null;
};

/** Enough of a task to tell it from others that share a uuid prefix. */
export type TaskHeader = Pick<TaskRow, "uuid" | "state_type" | "state_id" | "method" | "status">;

/** How many characters of each value a list shows. */
export const PREVIEW_CHARS = 80;

/**
 * Values larger than this get no preview in a list: SQLite measures a value without reading
 * it, but reads all of it to take its first characters.
 */
export const PREVIEW_MAX_BYTES = 64 * 1024;

const preview = (column: string) =>
  `octet_length(${column}) AS ${column}_bytes,
  CASE WHEN octet_length(${column}) <= ${PREVIEW_MAX_BYTES} THEN substr(${column}, 1, ${PREVIEW_CHARS}) ELSE '' END AS ${column}_preview`;

const LIST_COLUMNS = `uuid, state_type, state_id, method, status, due_at, created_at, updated_at, attempts, backoff_step,
  last_error, parent_uuid, iteration, ${preview("request")}, ${preview("response")}, ${preview("error")}`;

/** Every SQL statement of the store, prepared once, named after what it does. @internal */
export function prepareStatements(db: Database.Database) {
  const s = (sql: string) => db.prepare(sql);
  const insertTask = s(`INSERT INTO tasks (uuid, state_type, state_id, method, request, status, due_at, created_at, updated_at, parent_uuid)
    VALUES (@uuid, @state_type, @state_id, @method, @request, 'SCHEDULED', @due_at, @created_at, @now, @parent_uuid)`);
  const startTask = s(`UPDATE tasks SET status = 'STARTED', attempts = @number, updated_at = @now WHERE uuid = @uuid`);
  const insertAttempt = s(`INSERT INTO attempts (task_uuid, number, version, started_at) VALUES (@uuid, @number, @version, @now)`);
  const endAttempt = s(`UPDATE attempts SET ended_at = @now, outcome = @outcome, error_class = @error_class,
    error_message = @error_message, error_stack = @error_stack WHERE task_uuid = @uuid AND number = @number`);
  const endOpenAttempt = s(`UPDATE attempts SET ended_at = @now, outcome = @outcome WHERE task_uuid = @uuid AND ended_at IS NULL`);
  const completeTask = s(`UPDATE tasks SET status = 'COMPLETED', response = @response, due_at = NULL, updated_at = @now WHERE uuid = @uuid`);
  const abortTask = s(`UPDATE tasks SET status = 'ABORTED', error = @error, last_error = @last_error, due_at = NULL, updated_at = @now WHERE uuid = @uuid`);
  const failTask = s(`UPDATE tasks SET status = 'SCHEDULED_RETRY', due_at = @due_at, backoff_step = @backoff_step,
    last_error = @last_error, updated_at = @now WHERE uuid = @uuid`);
  const waitForCode = s(`UPDATE tasks SET status = 'SCHEDULED_RETRY', due_at = NULL, last_error = @last_error, updated_at = @now WHERE uuid = @uuid`);
  const cancelTask = s(`UPDATE tasks SET status = 'CANCELLED', due_at = NULL, updated_at = @now
    WHERE uuid = @uuid AND status NOT IN ('COMPLETED', 'ABORTED', 'CANCELLED')`);
  const getTask = s(`SELECT * FROM tasks WHERE uuid = ?`);
  const listAttempts = s(`SELECT * FROM attempts WHERE task_uuid = ? ORDER BY number`);
  // Keyset paging over the due index: the tasks due after (due_at, uuid) = (@due, @uuid), up to @until.
  const dueTasks = s(`SELECT * FROM tasks WHERE due_at IS NOT NULL AND (due_at, uuid) > (@due, @uuid) AND due_at <= @until
    ORDER BY due_at, uuid LIMIT @limit`);
  const retryFailing = s(`UPDATE tasks SET due_at = @now, backoff_step = 0, updated_at = @now
    WHERE status = 'SCHEDULED_RETRY' RETURNING uuid, state_type, state_id`);
  const retryTask = s(`UPDATE tasks SET due_at = @now, backoff_step = 0, updated_at = @now
    WHERE uuid = @uuid AND status IN ('SCHEDULED', 'SCHEDULED_RETRY', 'SCHEDULED_ITERATION')`);
  const retryTaskAt = s(`UPDATE tasks SET due_at = @now, backoff_step = 0, updated_at = @now
    WHERE uuid = @uuid AND status IN ('SCHEDULED', 'SCHEDULED_RETRY', 'SCHEDULED_ITERATION') AND attempts = @attempts`);
  const inspect = prepareInspectStatements(db);
  const interruptAttempts = s(`UPDATE attempts SET outcome = 'INTERRUPTED', ended_at = max(started_at, @now),
    error_message = 'The process stopped during this attempt.' WHERE ended_at IS NULL`);
  // Parks a task that was running (or is parked already) as one waiting for new code: a
  // load() or a retry starts it again. A task retried since, or finished, is left alone.
  const parkTask = s(`UPDATE tasks SET status = 'SCHEDULED_RETRY', due_at = NULL, last_error = @reason, updated_at = @now
    WHERE uuid = @uuid AND (status = 'STARTED' OR (status = 'SCHEDULED_RETRY' AND due_at IS NULL))`);
  const recordVersion = s(`INSERT OR IGNORE INTO versions (number, loaded_at, changed, build_ms, load_ms)
    VALUES (@number, @loaded_at, @changed, @build_ms, @load_ms)`);
  const lastVersion = s(`SELECT max(number) FROM versions`).pluck();
  const iterateTask = s(`UPDATE tasks SET status = 'SCHEDULED_ITERATION', due_at = @due_at, iteration = @iteration,
    backoff_step = 0, updated_at = @now WHERE uuid = @uuid`);
  const getMemo = s(`SELECT * FROM memos WHERE task_uuid = ? AND alias = ?`);
  // A step keeps the place it was first recorded at (seq) when it is recorded again.
  const putMemo = s(`INSERT INTO memos (task_uuid, alias, kind, step, status, value, updated_at, seq)
    VALUES (@task_uuid, @alias, @kind, @step, @status, @value, @now,
      (SELECT coalesce(max(seq), 0) + 1 FROM memos WHERE task_uuid = @task_uuid))
    ON CONFLICT (task_uuid, alias) DO UPDATE SET kind = excluded.kind, step = excluded.step,
      status = excluded.status, value = excluded.value, updated_at = excluded.updated_at`);
  const readState = s(`SELECT state FROM states WHERE state_type = ? AND state_id = ?`).pluck();
  // uuids hold only [0-9a-f-], all below 'g': [prefix, prefix + 'g') is every uuid that starts with prefix.
  const tasksWithUuidPrefix = s(`SELECT uuid, state_type, state_id, method, status FROM tasks WHERE uuid >= ? AND uuid < ? ORDER BY uuid LIMIT ?`);
  const uuidBefore = s(`SELECT uuid FROM tasks WHERE uuid < ? ORDER BY uuid DESC LIMIT 1`).pluck();
  const uuidAfter = s(`SELECT uuid FROM tasks WHERE uuid > ? ORDER BY uuid LIMIT 1`).pluck();
  const writeState = s(`INSERT INTO states (state_type, state_id, state) VALUES (?, ?, ?)
    ON CONFLICT (state_type, state_id) DO UPDATE SET state = excluded.state`);
  const end = (uuid: string, number: number, now: number, outcome: string, error?: ErrorInfo) =>
    endAttempt.run({ uuid, number, now, outcome, error_class: error?.name ?? null, error_message: error?.message ?? null, error_stack: error?.stack ?? null });

  /** The writes, as the group commit runs them inside its transaction. */
  const records = prepareIdempotency(db);
  const writer: StoreWriter = {
    putRecord: records.putRecord,
    insertTask(t: NewTaskRow) {
      fault("store.insertTask");
      insertTask.run(t);
    },
    startTask(uuid, number, version, now) {
      fault("store.startTask");
      startTask.run({ uuid, number, now });
      insertAttempt.run({ uuid, number, version, now });
    },
    completeTask(uuid, attempt, response, now) {
      fault("store.completeTask");
      completeTask.run({ uuid, response, now });
      fault("store.endAttempt");
      end(uuid, attempt, now, "COMPLETED");
    },
    abortTask(uuid, attempt, error, message, now) {
      fault("store.abortTask");
      abortTask.run({ uuid, error, last_error: message, now });
      fault("store.endAttempt");
      end(uuid, attempt, now, "ABORTED", { name: "Aborted", message });
    },
    failTask(uuid, attempt, dueAt, backoffStep, error, now) {
      fault("store.failTask");
      failTask.run({ uuid, due_at: dueAt, backoff_step: backoffStep, last_error: oneLine(error), now });
      fault("store.endAttempt");
      end(uuid, attempt, now, "FAILED", error);
    },
    waitForCode(uuid, reason, now) {
      fault("store.failTask");
      waitForCode.run({ uuid, last_error: reason, now });
    },
    iterateTask(uuid, attempt, dueAt, iteration, now) {
      fault("store.iterateTask");
      iterateTask.run({ uuid, due_at: dueAt, iteration, now });
      fault("store.endAttempt");
      end(uuid, attempt, now, "ITERATED");
    },
    cancelTask(uuid, now, result) {
      fault("store.cancelTask");
      const changed = cancelTask.run({ uuid, now }).changes > 0;
      if (changed) endOpenAttempt.run({ uuid, now, outcome: "CANCELLED" });
      result(changed);
    },
    retryTask(uuid, now, result, also) {
      fault("store.retryTask");
      const changed = (also ? retryTaskAt.run({ uuid, now, attempts: also.attempts }) : retryTask.run({ uuid, now })).changes > 0;
      if (changed && also) also.then(writer);
      result?.(changed);
    },
    retryFailing(now, result) {
      fault("store.retryFailing");
      result(retryFailing.all({ now }) as TaskKey[]);
    },
    writeState(type, id, json) {
      fault("store.writeState", type, id, json);
      writeState.run(type, id, json);
    },
    forgetStep(uuid, alias) {
      inspect.forgetStep(uuid, alias);
    },
    setLoopIteration(uuid, alias, iteration) {
      inspect.setLoopIteration(uuid, alias, iteration);
    },
    addHistory(h) {
      inspect.addHistory(h);
    },
    checkTask() {
      // One process holds the store: its tasks are its own.
    },
    putMemo(m) {
      fault("store.putMemo");
      putMemo.run(m);
    },
    recordVersion(v) {
      recordVersion.run(v);
    },
  };

  return {
    writer,
    inspect,
    getRecord: records.getRecord,
    getTask: (uuid: string) => getTask.get(uuid) as TaskRow | undefined,
    listAttempts: (uuid: string) => listAttempts.all(uuid) as AttemptRow[],
    /** Tasks that can run, due after the key (due, uuid) and at the latest at `until`, in due order. */
    dueTasks: (after: { due: number; uuid: string }, until: number, limit: number) =>
      dueTasks.all({ due: after.due, uuid: after.uuid, until, limit }) as TaskRow[],
    interruptAttempts: (now: number) => interruptAttempts.run({ now }),
    parkTask: (uuid: string, reason: string, now: number) => parkTask.run({ uuid, reason, now }),
    lastVersion: () => (lastVersion.get() as number | null) ?? 0,
    getMemo: (uuid: string, alias: string) => getMemo.get(uuid, alias) as MemoRow | undefined,
    readState: (type: string, id: string) => readState.get(type, id) as string | undefined,
    /** Up to `limit` tasks whose uuid starts with `prefix`, in uuid order (the primary key's range). */
    tasksWithUuidPrefix: (prefix: string, limit: number) => tasksWithUuidPrefix.all(prefix, `${prefix}g`, limit) as TaskHeader[],
    /** The uuids just before and after `uuid` in the store, to find how much of it no other task shares. */
    neighbourUuids: (uuid: string) => [uuidBefore.get(uuid), uuidAfter.get(uuid)].filter((u): u is string => u !== undefined),
    /**
     * A page of tasks, newest first, without their values: only each value's size in bytes
     * and its first characters, so that a list of tasks with large responses stays small.
     */
    listTasks(filter: TaskFilter): TaskListRow[] {
      const where: string[] = [];
      const params: Record<string, unknown> = { limit: filter.limit };
      if (filter.status) (where.push("status = @status"), (params.status = filter.status));
      if (filter.stateType) (where.push("state_type = @stateType"), (params.stateType = filter.stateType));
      if (filter.stateId) (where.push("state_id = @stateId"), (params.stateId = filter.stateId));
      if (filter.method) (where.push("method = @method"), (params.method = filter.method));
      if (filter.parentUuid) (where.push("parent_uuid = @parentUuid"), (params.parentUuid = filter.parentUuid));
      // Text matches a start of the uuid, or any part of the state id, the method or the last error (read row by row).
      if (filter.text)
        (where.push("(instr(uuid, lower(@text)) = 1 OR instr(state_id, @text) > 0 OR instr(method, @text) > 0 OR instr(last_error, @text) > 0)"),
          (params.text = filter.text));
      if (filter.before !== undefined) (where.push("rowid < @before"), (params.before = filter.before));
      const sql = `SELECT rowid, ${LIST_COLUMNS} FROM tasks ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY rowid DESC LIMIT @limit`;
      return db.prepare(sql).all(params) as TaskListRow[];
    },
  };
}

/** The one line a failed attempt leaves on its task (`last_error`). */
export function oneLine(error: ErrorInfo): string {
  return `${error.name}: ${error.message}`.split("\n")[0]!.slice(0, 500);
}

/** @internal */
export type Statements = ReturnType<typeof prepareStatements>;
