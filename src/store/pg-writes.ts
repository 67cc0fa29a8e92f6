import type { PoolClient } from "pg";
import { MendError } from "../api/errors.js";
import type { IdempotencyRow } from "./idempotency.js";
import { fault } from "./faults.js";
import { oneLine, type MemoRow, type TaskStatus, type VersionRow } from "./statements.js";
import type { ErrorInfo, NewTaskRow, RetryAlso, StoreWriter, TaskKey } from "./store.js";

/** One write, as recorded when a commit is asked for and run when its group commits. */
export type PgOp =
  | { k: "insert"; t: NewTaskRow }
  | { k: "end"; end: AttemptEnd }
  | { k: "cancel"; uuid: string; now: number; result: (changed: boolean) => void }
  | { k: "retry"; uuid: string; now: number; result: ((changed: boolean) => void) | undefined; also?: { attempts: number; ops: PgOp[] } }
  | { k: "forget"; uuid: string; alias: string }
  | { k: "loop"; uuid: string; alias: string; iteration: number }
  | { k: "history"; h: { uuid: string; at: number; action: string; by: string; detail: string } }
  | { k: "retryFailing"; now: number; result: (rows: TaskKey[]) => void }
  | { k: "state"; type: string; id: string; json: string; basis: number; version: number }
  | { k: "check"; uuid: string; attempt: number }
  | { k: "memo"; m: Omit<MemoRow, "updated_at"> & { now: number } }
  | { k: "record"; r: IdempotencyRow }
  | { k: "version"; v: VersionRow };

/** The end of an attempt (or a task found waiting for code), checked against the task's owner and attempt. */
export interface AttemptEnd {
  point: string;
  uuid: string;
  attempt: number;
  status: TaskStatus;
  /** The attempt's outcome; null for a task that waits for code (no attempt ends). */
  outcome: string | null;
  response: string | null;
  error: string | null;
  lastError: string | null;
  dueAt: number | null;
  step: number | null;
  iteration: number | null;
  now: number;
  info: ErrorInfo | undefined;
}

/** Records the writes of a commit as data, to run when its group commits. */
export class Recorder implements StoreWriter {
  ops: PgOp[] = [];

  insertTask(t: NewTaskRow): void {
    this.ops.push({ k: "insert", t });
  }

  startTask(): void {
    throw new MendError("INTERNAL", "A store several servers share starts tasks by claiming them.");
  }

  completeTask(uuid: string, attempt: number, response: string | null, now: number): void {
    this.#end("store.completeTask", uuid, attempt, "COMPLETED", "COMPLETED", now, { response });
  }

  abortTask(uuid: string, attempt: number, error: string, message: string, now: number): void {
    this.#end("store.abortTask", uuid, attempt, "ABORTED", "ABORTED", now, { error, lastError: message, info: { name: "Aborted", message } });
  }

  failTask(uuid: string, attempt: number, dueAt: number, backoffStep: number, error: ErrorInfo, now: number): void {
    this.#end("store.failTask", uuid, attempt, "SCHEDULED_RETRY", "FAILED", now, { dueAt, step: backoffStep, lastError: oneLine(error), info: error });
  }

  waitForCode(uuid: string, reason: string, now: number): void {
    // The attempt was claimed but never ran: it ends as interrupted, and the task waits.
    this.ops.push({ k: "end", end: { ...blank("store.failTask", uuid, 0, "SCHEDULED_RETRY", null, now), lastError: reason } });
  }

  iterateTask(uuid: string, attempt: number, dueAt: number, iteration: number, now: number): void {
    this.#end("store.iterateTask", uuid, attempt, "SCHEDULED_ITERATION", "ITERATED", now, { dueAt, iteration, step: 0 });
  }

  cancelTask(uuid: string, now: number, result: (changed: boolean) => void): void {
    this.ops.push({ k: "cancel", uuid, now, result });
  }

  retryTask(uuid: string, now: number, result?: (changed: boolean) => void, also?: RetryAlso): void {
    if (!also) return void this.ops.push({ k: "retry", uuid, now, result });
    // The writes made with it, recorded now, run only if it retries the task.
    const outer = this.ops;
    this.ops = [];
    try {
      also.then(this);
    } finally {
      const ops = this.ops;
      this.ops = outer;
      this.ops.push({ k: "retry", uuid, now, result, also: { attempts: also.attempts, ops } });
    }
  }

  forgetStep(uuid: string, alias: string): void {
    this.ops.push({ k: "forget", uuid, alias });
  }

  setLoopIteration(uuid: string, alias: string, iteration: number): void {
    this.ops.push({ k: "loop", uuid, alias, iteration });
  }

  addHistory(h: { uuid: string; at: number; action: string; by: string; detail: string }): void {
    this.ops.push({ k: "history", h });
  }

  retryFailing(now: number, result: (rows: TaskKey[]) => void): void {
    this.ops.push({ k: "retryFailing", now, result });
  }

  writeState(type: string, id: string, json: string, basis: number, version: number): void {
    this.ops.push({ k: "state", type, id, json, basis, version });
  }

  checkTask(uuid: string, attempt: number): void {
    this.ops.push({ k: "check", uuid, attempt });
  }

  putMemo(m: Omit<MemoRow, "updated_at"> & { now: number }): void {
    this.ops.push({ k: "memo", m });
  }

  putRecord(r: IdempotencyRow): void {
    this.ops.push({ k: "record", r });
  }

  recordVersion(v: VersionRow): void {
    this.ops.push({ k: "version", v });
  }

  #end(point: string, uuid: string, attempt: number, status: TaskStatus, outcome: string, now: number, fields: Partial<AttemptEnd>): void {
    this.ops.push({ k: "end", end: { ...blank(point, uuid, attempt, status, outcome, now), ...fields } });
  }
}

function blank(point: string, uuid: string, attempt: number, status: TaskStatus, outcome: string | null, now: number): AttemptEnd {
  return { point, uuid, attempt, status, outcome, response: null, error: null, lastError: null, dueAt: null, step: null, iteration: null, now, info: undefined };
}

/** A write that this server may no longer make: another server runs the task now, or a cancel ended it. */
export class TaskLost extends MendError {
  constructor(readonly uuids: readonly string[]) {
    super(
      "TASK_LOST",
      `This server no longer runs the task ${uuids.join(", ")}: it was cancelled, or another server took it over once this one's lease ended; nothing it did is committed.`,
    );
    this.name = "TaskLost";
  }
}

/** A state written by another server since it was read here: the write is refused, the method runs again. */
export class StateMoved extends MendError {
  constructor(what: string) {
    super("STATE_MOVED", `The state of ${what} changed since this method read it (another server wrote it); nothing was committed, and it runs again.`);
    this.name = "StateMoved";
  }
}

/** What a group commit tells the servers once it has committed. */
export interface News {
  /** The earliest due time it set. */
  due: number;
  finished: string[];
  cancelled: string[];
}

const FINISHING = new Set<TaskStatus>(["COMPLETED", "ABORTED"]);
/** uuid lists in one notification stay well under PostgreSQL's 8000-byte payload. */
const PER_NOTE = 150;

/**
 * Runs the writes of a group inside the transaction of `client`, grouped by kind into a few
 * statements (each over arrays, whatever the group's size): new tasks, states (each checked
 * against the version it was computed from), attempts' ends (each checked against the task's
 * owner and attempt), the rarer writes one by one in order, memos, records, and the
 * notification of what changed. Throws at the first write that fails or is refused.
 */
export async function runWrites(client: PoolClient, groups: readonly PgOp[][], me: string, channel: string, outer?: News): Promise<void> {
  const inserts: NewTaskRow[] = [];
  const states = new Map<string, Extract<PgOp, { k: "state" }>[]>();
  const ends: AttemptEnd[] = [];
  const singles: PgOp[] = [];
  const memos = new Map<string, Extract<PgOp, { k: "memo" }>["m"]>();
  const records: IdempotencyRow[] = [];
  const checks = new Map<string, number>();
  for (const ops of groups)
    for (const op of ops) {
      switch (op.k) {
        case "check":
          checks.set(op.uuid, op.attempt);
          break;
        case "insert":
          inserts.push(op.t);
          break;
        case "state": {
          const key = `${op.type}\u0000${op.id}`;
          const list = states.get(key);
          if (list) list.push(op);
          else states.set(key, [op]);
          break;
        }
        case "end":
          ends.push(op.end);
          break;
        case "memo":
          memos.set(`${op.m.task_uuid}\u0000${op.m.alias}`, op.m);
          break;
        case "record":
          records.push(op.r);
          break;
        default:
          singles.push(op);
      }
    }
  const news: News = { due: Infinity, finished: [], cancelled: [] };

  if (checks.size > 0) {
    // Locked until the commit: a claim by another server waits for it (or skips the task).
    const { rows } = await client.query<{ uuid: string }>({
      name: "mend.checkTasks",
      text: `SELECT t.uuid FROM tasks t JOIN unnest($1::text[], $2::int[]) AS v(uuid, attempt) ON t.uuid = v.uuid
        WHERE t.status = 'STARTED' AND t.owner = $3 AND t.attempts = v.attempt FOR SHARE OF t`,
      values: [[...checks.keys()], [...checks.values()], me],
    });
    if (rows.length !== checks.size) {
      const ok = new Set(rows.map((r) => r.uuid));
      throw new TaskLost([...checks.keys()].filter((u) => !ok.has(u)));
    }
  }

  if (inserts.length > 0) {
    for (const t of inserts) {
      fault("store.insertTask");
      if (t.due_at < news.due) news.due = t.due_at;
    }
    await client.query({
      name: "mend.insertTasks",
      text: `INSERT INTO tasks (uuid, state_type, state_id, method, request, status, due_at, created_at, updated_at, parent_uuid)
        SELECT u, t, i, m, r, 'SCHEDULED', d, c, n, p FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::text[]) AS x(u, t, i, m, r, d, c, n, p)`,
      values: columns(inserts, (t) => [t.uuid, t.state_type, t.state_id, t.method, t.request, t.due_at, t.created_at, t.now, t.parent_uuid]),
    });
  }

  if (states.size > 0) {
    const rows: [string, string, string, number, number][] = [];
    for (const list of states.values()) {
      for (const op of list) fault("store.writeState", op.type, op.id, op.json);
      // A chain of writes to one instance in this group: each computed from the one before.
      for (let i = 1; i < list.length; i++)
        if (list[i]!.basis !== list[i - 1]!.version) throw new StateMoved(`${list[i]!.type}('${list[i]!.id}')`);
      const first = list[0]!;
      const last = list.at(-1)!;
      rows.push([first.type, first.id, last.json, first.basis, last.version]);
    }
    const { rows: written } = await client.query<{ state_type: string; state_id: string }>({
      name: "mend.writeStates",
      // A write computed from no state (basis 0) creates the instance, one computed from a
      // version replaces that version: a write computed from one that never committed (an
      // earlier write of this server that failed) changes nothing, even where the instance
      // does not exist.
      text: `WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS v(t, i, s, expected, next)),
        created AS (
          INSERT INTO states (state_type, state_id, state, version) SELECT t, i, s, next FROM v WHERE expected = 0
          ON CONFLICT (state_type, state_id) DO NOTHING
          RETURNING state_type, state_id),
        replaced AS (
          UPDATE states st SET state = v.s, version = v.next FROM v
          WHERE v.expected <> 0 AND st.state_type = v.t AND st.state_id = v.i AND st.version = v.expected
          RETURNING st.state_type, st.state_id)
        SELECT state_type, state_id FROM created UNION ALL SELECT state_type, state_id FROM replaced`,
      values: columns(rows, (r) => r),
    });
    if (written.length !== rows.length) {
      const done = new Set(written.map((w) => `${w.state_type}\u0000${w.state_id}`));
      const moved = rows.find((r) => !done.has(`${r[0]}\u0000${r[1]}`))!;
      throw new StateMoved(`${moved[0]}('${moved[1]}')`);
    }
  }

  if (ends.length > 0) {
    for (const e of ends) {
      fault(e.point);
      if (e.outcome !== null) fault("store.endAttempt");
      if (e.dueAt !== null && e.dueAt < news.due) news.due = e.dueAt;
      if (FINISHING.has(e.status)) news.finished.push(e.uuid);
    }
    const { rows: done } = await client.query<{ uuid: string }>({
      name: "mend.endAttempts",
      text: `WITH v AS (SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::int[], $9::int[], $10::bigint[],
                $11::text[], $12::text[], $13::text[], $14::text[])
              AS v(uuid, attempt, status, response, error, last_error, due_at, step, iteration, now, outcome, ec, em, es)),
        -- The task is found by its key only (the checks of its owner and attempt under IS TRUE
        -- are no index condition): on a store that filled faster than its statistics, the
        -- planner otherwise scans every running task by owner and status and compares each
        -- with every ended one.
        done AS (
          UPDATE tasks t SET status = v.status,
            response = CASE WHEN v.status = 'COMPLETED' THEN v.response ELSE t.response END,
            error = CASE WHEN v.status = 'ABORTED' THEN v.error ELSE t.error END,
            last_error = COALESCE(v.last_error, t.last_error),
            due_at = v.due_at,
            backoff_step = COALESCE(v.step, t.backoff_step),
            iteration = COALESCE(v.iteration, t.iteration),
            updated_at = v.now, owner = NULL
          FROM v WHERE t.uuid = v.uuid AND (t.status = 'STARTED' AND t.owner = $15 AND (t.attempts = v.attempt OR v.outcome IS NULL)) IS TRUE
          RETURNING t.uuid),
        ended AS (
          UPDATE attempts a SET ended_at = v.now, outcome = COALESCE(v.outcome, 'INTERRUPTED'), error_class = v.ec, error_message = v.em, error_stack = v.es
          FROM v WHERE a.task_uuid = v.uuid AND (a.number = v.attempt OR (v.outcome IS NULL AND a.ended_at IS NULL)) AND v.uuid IN (SELECT uuid FROM done))
        SELECT uuid FROM done`,
      values: [
        ...columns(ends, (e) => [
          e.uuid, e.attempt, e.status, e.response, e.error, e.lastError, e.dueAt, e.step, e.iteration, e.now,
          e.outcome, e.info?.name ?? null, e.outcome === null ? "The method of this task does not exist in the code of the server that claimed it." : (e.info?.message ?? null), e.info?.stack ?? null,
        ]),
        me,
      ],
    });
    if (done.length !== ends.length) {
      const ok = new Set(done.map((d) => d.uuid));
      throw new TaskLost(ends.filter((e) => !ok.has(e.uuid)).map((e) => e.uuid));
    }
  }

  for (const op of singles) await runSingle(client, op, news, me, channel);

  if (memos.size > 0) {
    for (let i = 0; i < memos.size; i++) fault("store.putMemo");
    // A step keeps the place it was first recorded at (seq) when it is recorded again.
    await client.query({
      name: "mend.putMemos",
      text: `INSERT INTO memos (task_uuid, alias, kind, step, status, value, updated_at, seq)
        SELECT x.u, x.a, x.k, x.s, x.st, x.v, x.n,
          (SELECT coalesce(max(seq), 0) FROM memos m WHERE m.task_uuid = x.u) + row_number() OVER (PARTITION BY x.u ORDER BY x.o)
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[]) WITH ORDINALITY AS x(u, a, k, s, st, v, n, o)
        ON CONFLICT (task_uuid, alias) DO UPDATE SET kind = excluded.kind, step = excluded.step,
          status = excluded.status, value = excluded.value, updated_at = excluded.updated_at`,
      values: columns([...memos.values()], (m) => [m.task_uuid, m.alias, m.kind, m.step, m.status, m.value, m.now]),
    });
  }

  if (records.length > 0) {
    for (let i = 0; i < records.length; i++) fault("store.putRecord");
    await client.query({
      name: "mend.putRecords",
      text: `INSERT INTO idempotency (seed, alias, kind, step, request, status, value, created_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])`,
      values: columns(records, (r) => [r.seed, r.alias, r.kind, r.step, r.request, r.status, r.value, r.created_at]),
    });
  }

  if (outer) {
    // Writes made with a retry: what they change is told with the rest of the group.
    outer.due = Math.min(outer.due, news.due);
    outer.finished.push(...news.finished);
    outer.cancelled.push(...news.cancelled);
    return;
  }
  const notes = notesOf(news);
  if (notes.length > 0)
    await client.query({ name: "mend.notify", text: "SELECT pg_notify($1, x) FROM unnest($2::text[]) AS x", values: [channel, notes] });
}

async function runSingle(client: PoolClient, op: PgOp, news: News, me: string, channel: string): Promise<void> {
  switch (op.k) {
    case "cancel": {
      fault("store.cancelTask");
      const { rowCount } = await client.query({
        name: "mend.cancelTask",
        text: `UPDATE tasks SET status = 'CANCELLED', due_at = NULL, owner = NULL, updated_at = $2
          WHERE uuid = $1 AND status NOT IN ('COMPLETED', 'ABORTED', 'CANCELLED')`,
        values: [op.uuid, op.now],
      });
      const changed = (rowCount ?? 0) > 0;
      // A statement of its own, after the task's row is locked: it sees an attempt that a claim,
      // which held the row a moment ago, has just recorded.
      if (changed)
        await client.query({
          name: "mend.cancelAttempts",
          text: `UPDATE attempts SET ended_at = $2, outcome = 'CANCELLED' WHERE task_uuid = $1 AND ended_at IS NULL`,
          values: [op.uuid, op.now],
        });
      if (changed) news.finished.push(op.uuid), news.cancelled.push(op.uuid);
      op.result(changed);
      return;
    }
    case "retry": {
      fault("store.retryTask");
      const { rowCount } = await client.query({
        name: "mend.retryTask",
        text: `UPDATE tasks SET due_at = $2, backoff_step = 0, updated_at = $2
          WHERE uuid = $1 AND status IN ('SCHEDULED', 'SCHEDULED_RETRY', 'SCHEDULED_ITERATION') AND ($3::int IS NULL OR attempts = $3)`,
        values: [op.uuid, op.now, op.also?.attempts ?? null],
      });
      const changed = (rowCount ?? 0) > 0;
      if (changed && op.now < news.due) news.due = op.now;
      if (changed && op.also) await runWrites(client, [op.also.ops], me, channel, news);
      op.result?.(changed);
      return;
    }
    case "forget":
      await client.query({ name: "mend.forgetStep", text: `DELETE FROM memos WHERE task_uuid = $1 AND alias = $2`, values: [op.uuid, op.alias] });
      return;
    case "loop":
      await client.query({
        name: "mend.setLoop",
        text: `WITH m AS (UPDATE memos SET value = $3 WHERE task_uuid = $1 AND alias = $2 AND kind = 'loop')
          UPDATE tasks SET iteration = $4 WHERE uuid = $1`,
        values: [op.uuid, op.alias, JSON.stringify({ iteration: op.iteration }), op.iteration],
      });
      return;
    case "history": {
      const { h } = op;
      await client.query({
        name: "mend.addHistory",
        text: `INSERT INTO task_history (task_uuid, at, action, by, detail) VALUES ($1, $2, $3, $4, $5)`,
        values: [h.uuid, h.at, h.action, h.by, h.detail],
      });
      return;
    }
    case "retryFailing": {
      fault("store.retryFailing");
      const { rows } = await client.query<TaskKey>({
        name: "mend.retryFailing",
        text: `UPDATE tasks SET due_at = $1, backoff_step = 0, updated_at = $1 WHERE status = 'SCHEDULED_RETRY' RETURNING uuid, state_type, state_id`,
        values: [op.now],
      });
      if (rows.length > 0 && op.now < news.due) news.due = op.now;
      op.result(rows);
      return;
    }
    case "version":
      await client.query({
        name: "mend.recordVersion",
        text: `INSERT INTO versions (number, loaded_at, changed, build_ms, load_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (number) DO NOTHING`,
        values: [op.v.number, op.v.loaded_at, op.v.changed, op.v.build_ms, op.v.load_ms],
      });
      return;
    default:
      throw new MendError("INTERNAL", `Unexpected write ${op.k}.`);
  }
}

/** The notifications of a group: `d<ms>` the earliest due time, `f<uuid,…>` finished, `c<uuid,…>` cancelled. */
export function notesOf(news: News): string[] {
  const notes: string[] = [];
  if (Number.isFinite(news.due)) notes.push(`d${news.due}`);
  for (let i = 0; i < news.cancelled.length; i += PER_NOTE) notes.push(`c${news.cancelled.slice(i, i + PER_NOTE).join(",")}`);
  for (let i = 0; i < news.finished.length; i += PER_NOTE) notes.push(`f${news.finished.slice(i, i + PER_NOTE).join(",")}`);
  return notes;
}

/** Rows as one array per column: what `unnest` takes. */
function columns<T>(rows: readonly T[], row: (r: T) => readonly unknown[]): unknown[][] {
  const out: unknown[][] = [];
  for (const r of rows) {
    const values = row(r);
    for (let c = 0; c < values.length; c++) (out[c] ??= []).push(values[c]);
  }
  return out;
}
