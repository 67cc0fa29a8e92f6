import type Database from "better-sqlite3";
import type { Pool, PoolClient } from "pg";
import { existsSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import { openStore, releaseHolder, StoreError } from "./open.js";
import { describeUrl, isPostgresUrl, loadPg, migratePg, poolConfig } from "./pg-open.js";

/** What a copy moved, table by table. */
export interface CopyCounts {
  tasks: number;
  attempts: number;
  states: number;
  memos: number;
  versions: number;
  idempotency: number;
  /** What operators did to tasks (a rerun from a step). */
  task_history: number;
}

type Row = Record<string, unknown>;

/** The tables a copy moves, in an order that keeps foreign keys satisfied, with their columns and the order they are read in. */
const TABLES: { name: keyof CopyCounts; columns: string[]; order: { sqlite: string; pg: string } }[] = [
  {
    name: "tasks",
    columns: ["uuid", "state_type", "state_id", "method", "request", "status", "due_at", "created_at", "updated_at", "attempts", "backoff_step", "response", "error", "last_error", "parent_uuid", "iteration"],
    // Creation order, so that the copy lists its tasks newest first as the original does.
    order: { sqlite: "rowid", pg: "seq" },
  },
  {
    name: "attempts",
    columns: ["task_uuid", "number", "version", "started_at", "ended_at", "outcome", "error_class", "error_message", "error_stack"],
    order: { sqlite: "task_uuid, number", pg: "task_uuid, number" },
  },
  { name: "states", columns: ["state_type", "state_id", "state"], order: { sqlite: "state_type, state_id", pg: "state_type, state_id" } },
  { name: "memos", columns: ["task_uuid", "alias", "kind", "step", "status", "value", "updated_at", "seq"], order: { sqlite: "task_uuid, alias", pg: "task_uuid, alias" } },
  { name: "versions", columns: ["number", "loaded_at", "changed", "build_ms", "load_ms"], order: { sqlite: "number", pg: "number" } },
  { name: "idempotency", columns: ["seed", "alias", "kind", "step", "request", "status", "value", "created_at"], order: { sqlite: "seed, alias", pg: "seed, alias" } },
  { name: "task_history", columns: ["task_uuid", "at", "action", "by", "detail"], order: { sqlite: "rowid", pg: "id" } },
];

/** PostgreSQL column types, for the arrays a batch is inserted from. */
const PG_TYPES: Record<string, string> = {
  due_at: "bigint", created_at: "bigint", updated_at: "bigint", attempts: "int", backoff_step: "int", iteration: "int",
  number: "int", started_at: "bigint", ended_at: "bigint", loaded_at: "bigint", build_ms: "float8", load_ms: "float8", seq: "int", at: "bigint",
};

const BATCH = 1000;

/** One end of a copy: a store to read in batches, or to write into. */
interface End {
  readonly location: string;
  /** Whether the store holds no task, state, memo, version or record. */
  isEmpty(): Promise<boolean>;
  read(table: (typeof TABLES)[number]): AsyncIterable<Row[]>;
  write(table: (typeof TABLES)[number], rows: Row[]): Promise<void>;
  /** Makes what was written durable (the copy is one transaction where the store allows it). */
  finish(): Promise<void>;
  close(): Promise<void>;
}

class SqliteEnd implements End {
  readonly location: string;
  readonly #db: Database.Database;
  #writing = false;

  constructor(path: string) {
    this.location = resolve(path);
    this.#db = openStore(this.location);
  }

  async isEmpty(): Promise<boolean> {
    return TABLES.every((t) => this.#db.prepare(`SELECT 1 FROM ${t.name} LIMIT 1`).get() === undefined);
  }

  async *read(table: (typeof TABLES)[number]): AsyncIterable<Row[]> {
    const statement = this.#db.prepare(`SELECT ${table.columns.join(", ")} FROM ${table.name} ORDER BY ${table.order.sqlite}`);
    let rows: Row[] = [];
    for (const row of statement.iterate() as Iterable<Row>) {
      rows.push(row);
      if (rows.length === BATCH) {
        yield rows;
        rows = [];
      }
    }
    if (rows.length > 0) yield rows;
  }

  async write(table: (typeof TABLES)[number], rows: Row[]): Promise<void> {
    if (!this.#writing) {
      this.#db.exec("BEGIN IMMEDIATE");
      this.#writing = true;
    }
    const insert = this.#db.prepare(`INSERT INTO ${table.name} (${table.columns.join(", ")}) VALUES (${table.columns.map((c) => `@${c}`).join(", ")})`);
    for (const row of rows) insert.run(row);
  }

  async finish(): Promise<void> {
    if (this.#writing) this.#db.exec("COMMIT");
    this.#writing = false;
  }

  async close(): Promise<void> {
    if (this.#writing) this.#db.exec("ROLLBACK");
    this.#db.close();
    releaseHolder(this.location);
  }
}

class PgEnd implements End {
  readonly location: string;
  #client: PoolClient | undefined;

  private constructor(
    private readonly pool: Pool,
    url: string,
  ) {
    this.location = describeUrl(url);
  }

  static async open(url: string): Promise<PgEnd> {
    const pg = await loadPg();
    const pool = new pg.Pool(await poolConfig(url, 2));
    pool.on("error", () => {});
    const end = new PgEnd(pool, url);
    try {
      await migratePg(pool, end.location);
      // One snapshot to read from, or one transaction to write in.
      end.#client = await pool.connect();
      await end.#client.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
      return end;
    } catch (e) {
      end.#client?.release();
      await pool.end().catch(() => {});
      throw e;
    }
  }

  async isEmpty(): Promise<boolean> {
    for (const t of TABLES) if ((await this.#client!.query(`SELECT 1 FROM ${t.name} LIMIT 1`)).rows.length > 0) return false;
    return true;
  }

  async *read(table: (typeof TABLES)[number]): AsyncIterable<Row[]> {
    const client = this.#client!;
    const cursor = `copy_${table.name}`;
    await client.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR SELECT ${table.columns.join(", ")} FROM ${table.name} ORDER BY ${table.order.pg}`);
    for (;;) {
      const { rows } = await client.query<Row>(`FETCH ${BATCH} FROM ${cursor}`);
      if (rows.length === 0) break;
      yield rows;
    }
    await client.query(`CLOSE ${cursor}`);
  }

  async write(table: (typeof TABLES)[number], rows: Row[]): Promise<void> {
    const columns = [...table.columns];
    const values = columns.map((c) => rows.map((r) => r[c] ?? null));
    // States get a version of their own: what the next write of each is checked against.
    if (table.name === "states") {
      columns.push("version");
      values.push(rows.map(() => 1 + Math.floor(Math.random() * (Number.MAX_SAFE_INTEGER - 1))));
    }
    const types = columns.map((c) => (c === "version" && table.name === "states" ? "bigint" : (PG_TYPES[c] ?? "text")));
    await this.#client!.query(
      `INSERT INTO ${table.name} (${columns.join(", ")}) SELECT * FROM unnest(${types.map((t, i) => `$${i + 1}::${t}[]`).join(", ")})`,
      values,
    );
  }

  async finish(): Promise<void> {
    await this.#client!.query("COMMIT");
    await this.#client!.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
  }

  async close(): Promise<void> {
    await this.#client?.query("ROLLBACK").catch(() => {});
    this.#client?.release();
    await this.pool.end().catch(() => {});
  }
}

function open(store: string): Promise<End> {
  return isPostgresUrl(store) ? PgEnd.open(store) : Promise.resolve(new SqliteEnd(store));
}

/**
 * Copies every task (with its attempts and workflow steps), state, version and idempotency
 * record of the store `from` into the store `to` (each an SQLite file or a PostgreSQL URL),
 * in one transaction of `to`. A target that holds anything is refused and left as it was.
 * Tasks that were running are copied as running: the runtime on the target runs them again
 * and records their attempts as interrupted.
 */
export async function copyStore(from: string, to: string): Promise<CopyCounts> {
  if (from === to || (!isPostgresUrl(from) && !isPostgresUrl(to) && resolve(from) === resolve(to))) throw new StoreError("The two stores are one.");
  if (!isPostgresUrl(from) && !existsSync(from)) throw new StoreError(`There is no store ${resolve(from)} to copy.`);
  // A target file this copy creates is removed if the copy fails.
  const created = !isPostgresUrl(to) && !existsSync(to) ? resolve(to) : undefined;
  const source = await open(from);
  let target: End | undefined;
  let copied = false;
  try {
    target = await open(to);
    if (!(await target.isEmpty())) throw new StoreError(`The store ${target.location} is not empty: a copy goes only into an empty store. It was left as it was.`);
    const counts: CopyCounts = { tasks: 0, attempts: 0, states: 0, memos: 0, versions: 0, idempotency: 0, task_history: 0 };
    for (const table of TABLES)
      for await (const rows of source.read(table)) {
        await target.write(table, rows);
        counts[table.name] += rows.length;
      }
    await target.finish();
    copied = true;
    return counts;
  } finally {
    await target?.close();
    await source.close();
    if (created && !copied) for (const suffix of ["", "-wal", "-shm", ".holder"]) rmSync(created + suffix, { force: true });
  }
}
