import type { Pool, PoolClient, PoolConfig } from "pg";
import { StoreError } from "./open.js";
import { PG_APPLICATION_ID, PG_MIGRATIONS } from "./pg-migrations.js";

/** Whether a store string names a PostgreSQL database (else it is an SQLite file). */
export function isPostgresUrl(store: string): boolean {
  return /^postgres(ql)?:\/\//i.test(store);
}

/** The URL without its password (and its query), for messages and logs. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "";
    u.search = "";
    return u.toString().replace(/:@/, "@");
  } catch {
    return "a PostgreSQL URL that cannot be parsed";
  }
}

type Pg = typeof import("pg");
let loaded: Pg | undefined;

/** The `pg` module, loaded the first time a PostgreSQL store is opened (an SQLite store never loads it). */
export async function loadPg(): Promise<Pg> {
  loaded ??= ((await import("pg")) as { default?: Pg } & Pg).default ?? ((await import("pg")) as Pg);
  return loaded;
}

/** A pool's configuration: numbers as numbers (ms since the epoch fit a double), whatever else uses `pg` in this process. */
export async function poolConfig(url: string, max: number): Promise<PoolConfig> {
  const pg = await loadPg();
  const BIGINT = 20;
  return {
    connectionString: url,
    max,
    application_name: "mend",
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === BIGINT ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as never,
    },
  };
}

/**
 * Opens the store's schema (the first schema on the URL's search_path): creates it in an
 * empty schema, or migrates a mend store of an older version, once, under an advisory lock.
 * A schema that holds anything else, or a mend store of a newer mend, is refused and left
 * untouched.
 */
export async function migratePg(pool: Pool, location: string): Promise<{ schema: string }> {
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (e) {
    throw new StoreError(`Cannot connect to the store ${location}: ${(e as Error).message}`, { cause: e });
  }
  try {
    await client.query("BEGIN");
    const schema = (await client.query<{ s: string | null }>("SELECT current_schema() AS s")).rows[0]?.s;
    if (!schema) throw new StoreError(`The store ${location} has no schema to use (its search_path names none that exists).`);
    // Servers that start at once: one migrates, the others wait here and find it done.
    await client.query("SELECT pg_advisory_xact_lock(hashtext('mend.migrate'), hashtext($1))", [schema]);
    const known = PG_MIGRATIONS.length;
    const marker = (await client.query<{ t: string | null }>("SELECT to_regclass(quote_ident($1) || '.mend_store')::text AS t", [schema])).rows[0]?.t;
    let from = 0;
    if (marker) {
      const row = (await client.query<{ application_id: number; schema_version: number }>("SELECT application_id, schema_version FROM mend_store WHERE id = 1")).rows[0];
      if (!row || Number(row.application_id) !== PG_APPLICATION_ID)
        throw new StoreError(`The schema ${schema} of ${location} is not a mend store; it was left untouched.`);
      if (row.schema_version > known)
        throw new StoreError(
          `The store ${location} has schema version ${row.schema_version}, written by a newer mend (this one knows up to ${known}); it was left untouched.`,
        );
      from = row.schema_version;
    } else {
      const { n } = (
        await client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
           WHERE ns.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')`,
          [schema],
        )
      ).rows[0]!;
      if (n > 0) throw new StoreError(`The schema ${schema} of ${location} holds tables that are not a mend store's; it was left untouched.`);
    }
    for (let v = from; v < known; v++) await client.query(PG_MIGRATIONS[v]!);
    if (from < known)
      await client.query(
        `INSERT INTO mend_store (id, application_id, schema_version) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET schema_version = excluded.schema_version`,
        [PG_APPLICATION_ID, known],
      );
    await client.query("COMMIT");
    return { schema };
  } catch (e) {
    await client.query("ROLLBACK").catch(() => {});
    if (e instanceof StoreError) throw e;
    throw new StoreError(`Cannot open the store ${location}: ${(e as Error).message}`, { cause: e });
  } finally {
    client.release();
  }
}
