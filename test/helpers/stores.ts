// Which store the runtime tests run on: SQLite files, or (the postgresql project of
// vitest.config.ts, MEND_TEST_STORE=postgresql) a schema of their own in the test run's
// PostgreSQL server. One suite, two stores.
import pg from "pg";
import { randomBytes } from "node:crypto";
import { inject } from "vitest";
import type { RuntimeOptions } from "mend";
import { tempDir } from "./temp.js";

export const onPostgres = process.env.MEND_TEST_STORE === "postgresql";

/** A fresh, empty schema in the test run's PostgreSQL server: the URL of a store there. */
export async function newSchemaUrl(): Promise<string> {
  const base = inject("pgUrl");
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const client = new pg.Client({ connectionString: base });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA ${schema}`);
  } finally {
    await client.end();
  }
  return withSchema(base, schema);
}

/** The URL of a store in `schema` of the database at `base`. */
export function withSchema(base: string, schema: string): string {
  return `${base}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
}

/** Options naming a new store of the kind under test: a temporary folder, or a fresh schema. */
export async function newStore(): Promise<RuntimeOptions> {
  return onPostgres ? { store: await newSchemaUrl() } : { directory: tempDir() };
}
