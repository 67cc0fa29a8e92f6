import type Database from "better-sqlite3";

// The store's statements for inspecting it (the dashboard's routes) and for rerunning a
// workflow from a step. None is on a task's path: they run when someone looks.

/** A recorded step as the dashboard reads it: its value only when it is small enough to send. */
export interface StepRow {
  alias: string;
  kind: string;
  step: string;
  status: string;
  bytes: number | null;
  /** The value's JSON; null when there is none or it is over the size given to listSteps. */
  value: string | null;
  /** Its first characters, when the value is too large to send. */
  preview: string | null;
  updated_at: number;
  seq: number | null;
}

export interface HistoryRow {
  at: number;
  action: string;
  by: string;
  detail: string;
}

export interface InstanceRow {
  state_id: string;
  bytes: number;
  preview: string;
}

/** Beyond this many, a count is given as "at least": counting a large store exactly reads all of it. */
export const COUNT_CAP = 10_000;

/** The last code point: `prefix + LAST` is after every string that starts with `prefix`. */
const LAST = "\u{10FFFF}";

/** @internal */
export function prepareInspectStatements(db: Database.Database) {
  const s = (sql: string) => db.prepare(sql);
  const listSteps = s(`SELECT alias, kind, step, status, octet_length(value) AS bytes,
      CASE WHEN octet_length(value) <= @max THEN value END AS value,
      CASE WHEN octet_length(value) > @max THEN substr(value, 1, 200) END AS preview, updated_at, seq
    FROM memos WHERE task_uuid = @uuid ORDER BY coalesce(seq, 0), updated_at, alias`);
  const forgetStep = s(`DELETE FROM memos WHERE task_uuid = ? AND alias = ?`);
  const setLoop = s(`UPDATE memos SET value = @value WHERE task_uuid = @uuid AND alias = @alias AND kind = 'loop'`);
  const setIteration = s(`UPDATE tasks SET iteration = @iteration WHERE uuid = @uuid`);
  const addHistory = s(`INSERT INTO task_history (task_uuid, at, action, by, detail) VALUES (@uuid, @at, @action, @by, @detail)`);
  const history = s(`SELECT at, action, by, detail FROM task_history WHERE task_uuid = ? ORDER BY rowid`);
  // The distinct state types, one index seek each (SQLite would otherwise read every instance).
  const stateTypes = s(`WITH RECURSIVE t(name) AS (
      SELECT min(state_type) FROM states
      UNION ALL SELECT (SELECT min(state_type) FROM states WHERE state_type > t.name) FROM t WHERE t.name IS NOT NULL
    ) SELECT name FROM t WHERE name IS NOT NULL`).pluck();
  const countInstances = s(`SELECT count(*) FROM (SELECT 1 FROM states WHERE state_type = ? LIMIT ${COUNT_CAP + 1})`).pluck();
  const instances = s(`SELECT state_id, octet_length(state) AS bytes, substr(state, 1, 120) AS preview FROM states
    WHERE state_type = @type AND state_id > @after AND state_id >= @from AND state_id < @to ORDER BY state_id LIMIT @limit`);
  const versions = s(`SELECT number, loaded_at, changed, build_ms, load_ms FROM versions ORDER BY number DESC LIMIT ?`);
  const countStatus = s(`SELECT count(*) FROM (SELECT 1 FROM tasks WHERE status = ? LIMIT ${COUNT_CAP + 1})`).pluck();

  return {
    /** A task's steps in the order they were first recorded; values over `maxBytes` only previewed. */
    listSteps: (uuid: string, maxBytes: number) => listSteps.all({ uuid, max: maxBytes }) as StepRow[],
    forgetStep: (uuid: string, alias: string) => forgetStep.run(uuid, alias),
    /** Sets a loop's counter (and the task's) back to `iteration`. */
    setLoopIteration(uuid: string, alias: string, iteration: number) {
      setLoop.run({ uuid, alias, value: JSON.stringify({ iteration }) });
      setIteration.run({ uuid, iteration });
    },
    addHistory: (h: { uuid: string; at: number; action: string; by: string; detail: string }) => addHistory.run(h),
    history: (uuid: string) => history.all(uuid) as HistoryRow[],
    stateTypes: () => stateTypes.all() as string[],
    countInstances: (type: string) => countInstances.get(type) as number,
    /** A page of instances in id order, after `after`, whose id starts with `prefix`. */
    instances: (type: string, prefix: string, after: string, limit: number) =>
      instances.all({ type, after, from: prefix, to: `${prefix}${LAST}`, limit }) as InstanceRow[],
    countStatus: (status: string) => countStatus.get(status) as number,
    /** The newest `limit` code versions \`mend dev run\` recorded, newest first. */
    versions: (limit: number) => versions.all(limit) as { number: number; loaded_at: number; changed: string; build_ms: number | null; load_ms: number | null }[],
  };
}

/** @internal */
export type InspectStatements = ReturnType<typeof prepareInspectStatements>;
