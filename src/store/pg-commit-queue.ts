import type { Pool, PoolClient } from "pg";
import { MendError } from "../api/errors.js";
import { fault } from "./faults.js";
import { Recorder, runWrites, type PgOp } from "./pg-writes.js";
import type { StoreWriter } from "./store.js";

interface Pending {
  ops: PgOp[];
  keys: readonly string[];
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit on PostgreSQL: the writes asked for while the previous group commits (or
 * during one turn of the event loop, when none does) run in one transaction, grouped into a
 * few statements. One group commits at a time, in order, so a write computed from another
 * (a writer after a writer of the same instance) commits after it.
 *
 * As for SQLite, a group that fails is tried again one write at a time, each on a savepoint:
 * a write that fails is rolled back alone, with every later write of the group that shares
 * one of its keys; the others commit.
 * @internal
 */
export class PgCommitQueue {
  #pending: Pending[] = [];
  #scheduled = false;
  #running: Promise<void> | undefined;
  #closed: Error | undefined;
  readonly #recorder = new Recorder();

  constructor(
    private readonly pool: Pool,
    private readonly me: string,
    private readonly channel: string,
  ) {}

  commit(op: (w: StoreWriter) => void, keys: readonly string[] = []): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    const recorder = this.#recorder;
    recorder.ops = [];
    try {
      op(recorder);
    } catch (e) {
      return Promise.reject(e);
    }
    const ops = recorder.ops;
    return new Promise((resolve, reject) => {
      this.#pending.push({ ops, keys, resolve, reject });
      if (!this.#scheduled && !this.#running) {
        this.#scheduled = true;
        setImmediate(() => void this.#drain());
      }
    });
  }

  /** Settles once everything asked for so far has committed (or failed). */
  async flush(): Promise<void> {
    while (this.#running || this.#pending.length > 0) {
      if (!this.#running) await this.#drain();
      else await this.#running;
    }
  }

  /** Refuses later writes (those pending still run). */
  close(): void {
    this.#closed = new MendError("STORE", "The store is closed.");
  }

  #drain(): Promise<void> {
    this.#scheduled = false;
    if (this.#running) return this.#running;
    this.#running = (async () => {
      while (this.#pending.length > 0) {
        const batch = this.#pending;
        this.#pending = [];
        await this.#run(batch);
      }
    })().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #run(batch: Pending[]): Promise<void> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e) {
      for (const p of batch) p.reject(e);
      return;
    }
    let broken = false;
    try {
      try {
        fault("commit.begin");
        await client.query("BEGIN");
        await runWrites(client, batch.map((p) => p.ops), this.me, this.channel);
        await client.query("COMMIT");
      } catch (e) {
        await client.query("ROLLBACK").catch(() => (broken = true));
        if (batch.length === 1 || broken) {
          for (const p of batch) p.reject(e);
          this.#poison(batch, e);
          return;
        }
        return await this.#oneByOne(client, batch);
      }
      // Committed, and nobody has heard yet (a test kills the process here: `exit` only).
      fault("commit.end");
      for (const p of batch) p.resolve();
    } finally {
      client.release(broken);
    }
  }

  async #oneByOne(client: PoolClient, batch: Pending[]): Promise<void> {
    const failed = new Map<Pending, unknown>();
    const poisoned = new Map<string, unknown>();
    try {
      await client.query("BEGIN");
      for (const p of batch) {
        const cause = p.keys.find((k) => poisoned.has(k));
        if (cause !== undefined) {
          failed.set(p, new MendError("STORE", "A write to the store that this one was computed from failed; it will run again.", { cause: poisoned.get(cause) }));
          continue;
        }
        await client.query("SAVEPOINT one");
        try {
          await runWrites(client, [p.ops], this.me, this.channel);
          await client.query("RELEASE SAVEPOINT one");
        } catch (e) {
          await client.query("ROLLBACK TO SAVEPOINT one");
          failed.set(p, e);
          for (const k of p.keys) poisoned.set(k, e);
        }
      }
      await client.query("COMMIT");
    } catch (e) {
      await client.query("ROLLBACK").catch(() => {});
      for (const p of batch) p.reject(e);
      this.#poison(batch, e);
      return;
    }
    for (const p of batch) {
      if (failed.has(p)) p.reject(failed.get(p));
      else p.resolve();
    }
    const lost = batch.filter((p) => failed.has(p));
    if (lost.length > 0) this.#poison(lost, failed.get(lost[0]!));
  }

  /**
   * These writes failed: the writes asked for while they committed, on one of their keys, were
   * computed from them (a writer reads the write on its way to the store), so they fail too,
   * and the ones computed from those. A write asked for later reads the store again.
   */
  #poison(failed: readonly Pending[], cause: unknown): void {
    const poisoned = new Set(failed.flatMap((p) => p.keys));
    if (poisoned.size === 0) return;
    this.#pending = this.#pending.filter((p) => {
      if (!p.keys.some((k) => poisoned.has(k))) return true;
      for (const k of p.keys) poisoned.add(k);
      p.reject(new MendError("STORE", "A write to the store that this one was computed from failed; it will run again.", { cause }));
      return false;
    });
  }
}
