import type Database from "better-sqlite3";
import { fault } from "./faults.js";

/** A call made idempotently from outside, as the store keeps it. */
export interface IdempotencyRow {
  seed: string;
  alias: string;
  kind: "call" | "spawn" | "initialize";
  step: string;
  request: string;
  status: "completed" | "failed";
  value: string | null;
  created_at: number;
}

/** The statements of the idempotency records (migration 5), prepared once. @internal */
export function prepareIdempotency(db: Database.Database) {
  const get = db.prepare(`SELECT * FROM idempotency WHERE seed = ? AND alias = ?`);
  const put = db.prepare(`INSERT INTO idempotency (seed, alias, kind, step, request, status, value, created_at)
    VALUES (@seed, @alias, @kind, @step, @request, @status, @value, @created_at)`);
  return {
    getRecord: (seed: string, alias: string) => get.get(seed, alias) as IdempotencyRow | undefined,
    /** Inserts a record; a second one under the same key fails the commit it is part of. */
    putRecord: (row: IdempotencyRow) => (fault("store.putRecord"), put.run(row)),
  };
}

/** @internal */
export type IdempotencyStatements = ReturnType<typeof prepareIdempotency>;
