import { randomUUID } from "node:crypto";
import type { Client, Notification, Pool } from "pg";
import type { IdempotencyRow } from "./idempotency.js";
import { StoreError } from "./open.js";
import { PgCommitQueue } from "./pg-commit-queue.js";
import { describeUrl, loadPg, migratePg, poolConfig } from "./pg-open.js";
import { PREVIEW_CHARS, PREVIEW_MAX_BYTES, type AttemptRow, type MemoRow, type TaskFilter, type TaskHeader, type TaskListRow, type TaskRow } from "./statements.js";
import { COUNT_CAP, type HistoryRow, type InstanceRow, type StepRow } from "./inspect-statements.js";
import type { ClaimedTask, InspectReads, SharedNews, SharedStore, Store, StoreWriter, StoredState, TaskKey } from "./store.js";

export interface PgStoreOptions {
  /** How long a claim or an instance lock lasts unless renewed. @defaultValue 10000 */
  leaseMs?: number;
  /** Connections of the pool (reads, the group commit, claims). @defaultValue 10 */
  poolSize?: number;
}

export const DEFAULT_LEASE_MS = 10_000;

/** Method keys as the store keeps them: type, byte 1, method (neither a type nor a method name holds it in practice, and PostgreSQL text cannot hold a NUL). */
export function methodKey(type: string, method: string): string {
  return `${type}\u0001${method}`;
}

function splitKeys(keys: readonly string[], sep: string): [string[], string[]] {
  const a: string[] = [];
  const b: string[] = [];
  for (const k of keys) {
    const i = k.indexOf(sep);
    a.push(k.slice(0, i));
    b.push(k.slice(i + 1));
  }
  return [a, b];
}

const preview = (column: string) =>
  `octet_length(${column}) AS ${column}_bytes,
  CASE WHEN octet_length(${column}) <= ${PREVIEW_MAX_BYTES} THEN substr(${column}, 1, ${PREVIEW_CHARS}) ELSE '' END AS ${column}_preview`;

const LIST_COLUMNS = `seq AS rowid, uuid, state_type, state_id, method, status, due_at, created_at, updated_at, attempts, backoff_step,
  last_error, parent_uuid, iteration, ${preview("request")}, ${preview("response")}, ${preview("error")}`;

const TASK_COLUMNS = `uuid, state_type, state_id, method, request, status, due_at, created_at, updated_at, attempts, backoff_step,
  response, error, last_error, parent_uuid, iteration`;

/**
 * A store in a PostgreSQL database, which several servers share: each claims due tasks
 * under a lease, takes instance locks for its writers, and hears from the others through
 * LISTEN/NOTIFY. Reads come from a pool of connections; writes go through a group commit.
 * @internal
 */
export class PgStore implements Store, SharedStore {
  readonly kind = "postgresql";
  readonly local = undefined;
  readonly serverId = randomUUID();
  readonly leaseMs: number;
  readonly location: string;
  readonly #pool: Pool;
  readonly #channel: string;
  readonly #commits: PgCommitQueue;
  #synchronous: "FULL" | "OFF" = "FULL";
  readonly inspect: InspectReads;
  #listener: Client | undefined;
  #news: SharedNews | undefined;
  #closed = false;

  private constructor(pool: Pool, location: string, schema: string, leaseMs: number) {
    this.#pool = pool;
    this.location = location;
    this.leaseMs = leaseMs;
    this.#channel = `mend.${schema}`;
    this.#commits = new PgCommitQueue(pool, this.serverId, this.#channel);
    const rows = <T>(name: string, text: string, values: unknown[]) => this.#rows<T>(name, text, values);
    const count = async (name: string, text: string, value: string) => (await rows<{ n: number }>(name, text, [value]))[0]!.n;
    this.inspect = {
      listSteps: (uuid, maxBytes) =>
        rows<StepRow>(
          "mend.listSteps",
          `SELECT alias, kind, step, status, octet_length(value) AS bytes,
             CASE WHEN octet_length(value) <= $2 THEN value END AS value,
             CASE WHEN octet_length(value) > $2 THEN substr(value, 1, 200) END AS preview, updated_at, seq
           FROM memos WHERE task_uuid = $1 ORDER BY coalesce(seq, 0), updated_at, alias`,
          [uuid, maxBytes],
        ),
      history: (uuid) => rows<HistoryRow>("mend.history", `SELECT at, action, by, detail FROM task_history WHERE task_uuid = $1 ORDER BY id`, [uuid]),
      // The distinct state types, one index seek each.
      stateTypes: async () =>
        (
          await rows<{ name: string }>(
            "mend.stateTypes",
            `WITH RECURSIVE t(name) AS (
               SELECT min(state_type) FROM states
               UNION ALL SELECT (SELECT min(state_type) FROM states WHERE state_type > t.name) FROM t WHERE t.name IS NOT NULL
             ) SELECT name FROM t WHERE name IS NOT NULL`,
            [],
          )
        ).map((r) => r.name),
      countInstances: (type) => count("mend.countInstances", `SELECT count(*)::int AS n FROM (SELECT 1 FROM states WHERE state_type = $1 LIMIT ${COUNT_CAP + 1}) x`, type),
      instances: (type, prefix, after, limit) =>
        rows<InstanceRow>(
          "mend.instances",
          `SELECT state_id, octet_length(state) AS bytes, substr(state, 1, 120) AS preview FROM states
           WHERE state_type = $1 AND state_id > $3 AND starts_with(state_id, $2) ORDER BY state_id LIMIT $4`,
          [type, prefix, after, limit],
        ),
      countStatus: (status) => count("mend.countStatus", `SELECT count(*)::int AS n FROM (SELECT 1 FROM tasks WHERE status = $1 LIMIT ${COUNT_CAP + 1}) x`, status),
      versions: (limit) => rows("mend.versions", `SELECT number, loaded_at, changed, build_ms, load_ms FROM versions ORDER BY number DESC LIMIT $1`, [limit]),
    };
  }

  get shared(): SharedStore {
    return this;
  }

  /** Opens (creating or migrating) the store at `url`. */
  static async open(url: string, options: PgStoreOptions = {}): Promise<PgStore> {
    const location = describeUrl(url);
    const pg = await loadPg();
    const pool = new pg.Pool(await poolConfig(url, options.poolSize ?? 10));
    // A connection that breaks while idle in the pool is dropped by the pool; this keeps the process up.
    pool.on("error", () => {});
    try {
      const { schema } = await migratePg(pool, location);
      const store = new PgStore(pool, location, schema, options.leaseMs ?? DEFAULT_LEASE_MS);
      const sync = (await pool.query<{ s: string }>("SELECT current_setting('synchronous_commit') AS s")).rows[0]!.s;
      store.#synchronous = sync === "off" ? "OFF" : "FULL";
      return store;
    } catch (e) {
      await pool.end().catch(() => {});
      throw e;
    }
  }

  get synchronous(): "FULL" | "NORMAL" | "OFF" | "EXTRA" {
    return this.#synchronous;
  }

  commit(op: (w: StoreWriter) => void, keys?: readonly string[]): Promise<void> {
    return this.#commits.commit(op, keys);
  }

  async #rows<T>(name: string, text: string, values: unknown[]): Promise<T[]> {
    return (await this.#pool.query<T & object>({ name, text, values })).rows as T[];
  }

  async getTask(uuid: string): Promise<TaskRow | undefined> {
    return (await this.#rows<TaskRow>("mend.getTask", `SELECT ${TASK_COLUMNS} FROM tasks WHERE uuid = $1`, [uuid]))[0];
  }

  getTasks(uuids: readonly string[]): Promise<TaskRow[]> {
    return this.#rows<TaskRow>("mend.getTasks", `SELECT ${TASK_COLUMNS} FROM tasks WHERE uuid = ANY($1::text[])`, [uuids]);
  }

  listAttempts(uuid: string): Promise<AttemptRow[]> {
    return this.#rows<AttemptRow>("mend.listAttempts", `SELECT * FROM attempts WHERE task_uuid = $1 ORDER BY number`, [uuid]);
  }

  async getMemo(taskUuid: string, alias: string): Promise<MemoRow | undefined> {
    return (await this.#rows<MemoRow>("mend.getMemo", `SELECT * FROM memos WHERE task_uuid = $1 AND alias = $2`, [taskUuid, alias]))[0];
  }

  async readState(type: string, id: string): Promise<StoredState | undefined> {
    const row = (await this.#rows<{ state: string; version: number }>("mend.readState", `SELECT state, version FROM states WHERE state_type = $1 AND state_id = $2`, [type, id]))[0];
    return row && { json: row.state, version: row.version };
  }

  async getRecord(seed: string, alias: string): Promise<IdempotencyRow | undefined> {
    return (await this.#rows<IdempotencyRow>("mend.getRecord", `SELECT * FROM idempotency WHERE seed = $1 AND alias = $2`, [seed, alias]))[0];
  }

  listTasks(filter: TaskFilter): Promise<TaskListRow[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    const add = (sql: string, value: unknown) => (values.push(value), where.push(`${sql} $${values.length}`));
    if (filter.status) add("status =", filter.status);
    if (filter.stateType) add("state_type =", filter.stateType);
    if (filter.stateId) add("state_id =", filter.stateId);
    if (filter.method) add("method =", filter.method);
    if (filter.parentUuid) add("parent_uuid =", filter.parentUuid);
    // Text matches a start of the uuid, or any part of the state id, the method or the last error.
    if (filter.text) {
      values.push(filter.text);
      const n = `$${values.length}`;
      where.push(`(starts_with(uuid, lower(${n})) OR strpos(state_id, ${n}) > 0 OR strpos(method, ${n}) > 0 OR strpos(last_error, ${n}) > 0)`);
    }
    if (filter.before !== undefined) add("seq <", filter.before);
    values.push(filter.limit);
    const sql = `SELECT ${LIST_COLUMNS} FROM tasks ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY seq DESC LIMIT $${values.length}`;
    return this.#pool.query<TaskListRow>(sql, values).then((r) => r.rows);
  }

  tasksWithUuidPrefix(prefix: string, limit: number): Promise<TaskHeader[]> {
    return this.#rows<TaskHeader>(
      "mend.uuidPrefix",
      `SELECT uuid, state_type, state_id, method, status FROM tasks WHERE uuid >= $1 AND uuid < $2 ORDER BY uuid LIMIT $3`,
      [prefix, `${prefix}g`, limit],
    );
  }

  async neighbourUuids(uuid: string): Promise<string[]> {
    const rows = await this.#rows<{ uuid: string | null }>(
      "mend.neighbours",
      `SELECT (SELECT uuid FROM tasks WHERE uuid < $1 ORDER BY uuid DESC LIMIT 1) AS uuid
       UNION ALL SELECT (SELECT uuid FROM tasks WHERE uuid > $1 ORDER BY uuid LIMIT 1)`,
      [uuid],
    );
    return rows.map((r) => r.uuid).filter((u): u is string => u !== null);
  }

  async lastVersion(): Promise<number> {
    return (await this.#rows<{ n: number | null }>("mend.lastVersion", `SELECT max(number) AS n FROM versions`, []))[0]?.n ?? 0;
  }

  async newVersion(atLeast: number, loadedAt: number): Promise<{ number: number; recorded: Promise<void> }> {
    // Servers that start at once take numbers one after another.
    const { rows } = await this.#pool.query<{ number: number }>(
      `INSERT INTO versions (number, loaded_at, changed) SELECT greatest($1::int, coalesce(max(number), 0) + 1), $2, '[]' FROM versions
       ON CONFLICT (number) DO NOTHING RETURNING number`,
      [atLeast, loadedAt],
    );
    if (rows[0]) return { number: rows[0].number, recorded: Promise.resolve() };
    return this.newVersion(atLeast + 1, loadedAt);
  }

  // --- Shared -------------------------------------------------------------------

  async listen(news: SharedNews): Promise<void> {
    this.#news = news;
    await this.#connectListener();
  }

  async #connectListener(): Promise<void> {
    if (this.#closed || !this.#news) return;
    const pg = await loadPg();
    const client = new pg.Client(await poolConfig(this.#poolUrl(), 1));
    client.on("notification", (n: Notification) => this.#heard(n));
    const lost = () => {
      if (this.#listener !== client) return;
      this.#listener = undefined;
      client.end().catch(() => {});
      // Connect again; what was said meanwhile is asked for again by whoever listens.
      const retry = setTimeout(() => {
        this.#connectListener().then(
          () => this.#news?.resumed(),
          () => lost(),
        );
      }, 500);
      retry.unref();
    };
    client.on("error", lost);
    client.on("end", lost);
    await client.connect();
    await client.query(`LISTEN ${quoteIdent(this.#channel)}`);
    this.#listener = client;
  }

  #poolUrl(): string {
    return (this.#pool.options as { connectionString: string }).connectionString;
  }

  #heard(n: Notification): void {
    const news = this.#news;
    const payload = n.payload ?? "";
    if (!news || payload.length === 0) return;
    const body = payload.slice(1);
    switch (payload[0]) {
      case "d":
        news.due(Number(body));
        break;
      case "f":
        news.finished(body.split(","));
        break;
      case "c":
        news.cancelled(body.split(","));
        break;
      case "u":
        news.unlocked();
        break;
    }
  }

  async announce(version: string, methods: readonly string[], now: number): Promise<void> {
    await this.#pool.query(
      `WITH gone AS (DELETE FROM servers WHERE heartbeat_at < $5)
       INSERT INTO servers (id, version, methods, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $4)
       ON CONFLICT (id) DO UPDATE SET version = excluded.version, methods = excluded.methods, heartbeat_at = excluded.heartbeat_at`,
      [this.serverId, version, methods, now, now - 100 * this.leaseMs],
    );
  }

  async claim(limit: number, now: number, version: string, methods: readonly string[]): Promise<{ tasks: ClaimedTask[]; next: number | undefined }> {
    const { rows } = await this.#pool.query<{ tasks: ClaimedTask[]; next: number | null }>({
      name: "mend.claim",
      // The methods as a filter on the rows of the due index, read in its order up to the
      // limit: a join with them lets the planner read and sort every due task at each claim.
      text: `WITH picked AS (
          SELECT uuid FROM tasks
          WHERE due_at IS NOT NULL AND due_at <= $1 AND (state_type || chr(1) || method) = ANY($5::text[])
          ORDER BY due_at, uuid LIMIT $2 FOR UPDATE SKIP LOCKED),
        lost AS (
          UPDATE attempts a SET outcome = 'INTERRUPTED', ended_at = greatest(a.started_at, $1),
            error_message = 'The server running this attempt stopped, or lost its lease, before it ended.'
          FROM picked WHERE a.task_uuid = picked.uuid AND a.ended_at IS NULL),
        claimed AS (
          UPDATE tasks t SET status = 'STARTED', attempts = t.attempts + 1, owner = $3, due_at = $1::bigint + $4::bigint, updated_at = $1
          FROM picked WHERE t.uuid = picked.uuid
          RETURNING t.uuid, t.state_type, t.state_id, t.method, t.request, t.status, t.due_at, t.created_at, t.updated_at,
            t.attempts, t.backoff_step, t.response, t.error, t.last_error, t.parent_uuid, t.iteration),
        started AS (INSERT INTO attempts (task_uuid, number, version, started_at) SELECT uuid, attempts, $6, $1 FROM claimed)
        SELECT (SELECT coalesce(json_agg(c), '[]'::json) FROM claimed c) AS tasks,
          (SELECT due_at FROM tasks WHERE due_at IS NOT NULL AND due_at > $1 ORDER BY due_at LIMIT 1) AS next`,
      values: [now, limit, this.serverId, this.leaseMs, methods, version],
    });
    const row = rows[0]!;
    return { tasks: row.tasks, next: row.next ?? undefined };
  }

  async orphans(now: number, methods: readonly string[], reason: (type: string, method: string) => string): Promise<(TaskKey & { method: string })[]> {
    const client = await this.#pool.connect();
    try {
      await client.query("BEGIN");
      const { rows } = await client.query<TaskKey & { method: string }>(
        `SELECT uuid, state_type, state_id, method FROM tasks t
         WHERE due_at IS NOT NULL AND due_at <= $1
           AND NOT ((state_type || chr(1) || method) = ANY($3::text[]))
           AND NOT EXISTS (SELECT 1 FROM servers s WHERE s.heartbeat_at > $1::bigint - $2::bigint AND (t.state_type || chr(1) || t.method) = ANY(s.methods))
         ORDER BY due_at, uuid LIMIT 100 FOR UPDATE SKIP LOCKED`,
        [now, this.leaseMs, methods],
      );
      if (rows.length > 0) {
        const uuids = rows.map((r) => r.uuid);
        await client.query(
          `WITH v AS (SELECT * FROM unnest($1::text[], $2::text[]) AS v(uuid, reason)),
           t AS (UPDATE tasks t SET status = 'SCHEDULED_RETRY', due_at = NULL, owner = NULL, last_error = v.reason, updated_at = $3 FROM v WHERE t.uuid = v.uuid)
           UPDATE attempts a SET outcome = 'INTERRUPTED', ended_at = greatest(a.started_at, $3),
             error_message = 'The server running this attempt stopped, or lost its lease, before it ended.'
           WHERE a.task_uuid = ANY($1::text[]) AND a.ended_at IS NULL`,
          [uuids, rows.map((r) => reason(r.state_type, r.method)), now],
        );
      }
      await client.query("COMMIT");
      return rows;
    } catch (e) {
      await client.query("ROLLBACK").catch(() => {});
      throw e;
    } finally {
      client.release();
    }
  }

  async wake(now: number, methods: readonly string[]): Promise<number> {
    const [types, names] = splitKeys(methods, "\u0001");
    const { rowCount } = await this.#pool.query(
      `WITH w AS (UPDATE tasks SET due_at = $1, updated_at = $1
         WHERE status = 'SCHEDULED_RETRY' AND due_at IS NULL AND (state_type, method) IN (SELECT * FROM unnest($2::text[], $3::text[]))
         RETURNING uuid)
       SELECT pg_notify($4, 'd' || $1::text) FROM (SELECT 1 FROM w LIMIT 1) x`,
      [now, types, names, this.#channel],
    );
    return rowCount ?? 0;
  }

  async renew(uuids: readonly string[], locks: readonly string[], now: number): Promise<Set<string> | undefined> {
    const [types, ids] = splitKeys(locks, "\u0000");
    try {
      const { rows } = await this.#pool.query<{ uuid: string }>({
        name: "mend.renew",
        text: `WITH l AS (UPDATE instance_locks SET until = $2::bigint + $3::bigint
                 WHERE owner = $1 AND (state_type, state_id) IN (SELECT * FROM unnest($5::text[], $6::text[]))),
          s AS (UPDATE servers SET heartbeat_at = $2 WHERE id = $1)
          UPDATE tasks SET due_at = $2::bigint + $3::bigint WHERE owner = $1 AND status = 'STARTED' AND uuid = ANY($4::text[]) RETURNING uuid`,
        values: [this.serverId, now, this.leaseMs, uuids, types, ids],
      });
      return new Set(rows.map((r) => r.uuid));
    } catch {
      return undefined;
    }
  }

  async lock(keys: readonly string[], now: number): Promise<Set<string>> {
    const [types, ids] = splitKeys(keys, "\u0000");
    const { rows } = await this.#pool.query<{ state_type: string; state_id: string }>({
      name: "mend.lock",
      text: `INSERT INTO instance_locks AS l (state_type, state_id, owner, until)
        SELECT t, i, $1, $2::bigint + $3::bigint FROM unnest($4::text[], $5::text[]) AS x(t, i)
        ON CONFLICT (state_type, state_id) DO UPDATE SET owner = excluded.owner, until = excluded.until
        WHERE l.owner = excluded.owner OR l.until < $2
        RETURNING l.state_type, l.state_id`,
      values: [this.serverId, now, this.leaseMs, types, ids],
    });
    return new Set(rows.map((r) => `${r.state_type}\u0000${r.state_id}`));
  }

  async unlock(keys: readonly string[]): Promise<void> {
    const [types, ids] = splitKeys(keys, "\u0000");
    await this.#pool.query({
      name: "mend.unlock",
      text: `WITH d AS (DELETE FROM instance_locks WHERE owner = $1 AND (state_type, state_id) IN (SELECT * FROM unnest($2::text[], $3::text[])))
        SELECT pg_notify($4, 'u')`,
      values: [this.serverId, types, ids, this.#channel],
    });
  }

  async release(now: number): Promise<void> {
    await this.#pool.query(
      `WITH t AS (UPDATE tasks SET due_at = $2, owner = NULL WHERE owner = $1 AND status = 'STARTED' RETURNING uuid),
       l AS (DELETE FROM instance_locks WHERE owner = $1),
       s AS (DELETE FROM servers WHERE id = $1)
       SELECT pg_notify($3, 'd' || $2::text), pg_notify($3, 'u') FROM (SELECT count(*) FROM t) x`,
      [this.serverId, now, this.#channel],
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#commits.flush();
    this.#commits.close();
    this.#closed = true;
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.end().catch(() => {});
    await this.#pool.end().catch(() => {});
  }

  /** Writes everything asked for so far. */
  flush(): Promise<void> {
    return this.#commits.flush();
  }
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export { StoreError };
