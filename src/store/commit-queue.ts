import type Database from "better-sqlite3";
import { MendError } from "../api/errors.js";
import { fault } from "./faults.js";

interface Pending<W> {
  op: (w: W) => void;
  /** The state instances the write changes: a later write of the same batch to one of them was computed from this one. */
  keys: readonly string[];
  resolve: () => void;
  reject: (e: unknown) => void;
}

export interface CommitQueueOptions {
  /** Told of every batch that failed as a whole. */
  onFlushError?: (e: unknown) => void;
  /** Runs before each batch; throwing refuses the batch (a store that can no longer be trusted). */
  check?: () => void;
}

/**
 * Group commit: every write asked for during one turn of the event loop runs in one
 * SQLite transaction, so one fsync covers them all. A caller's promise settles once its
 * write is durable.
 *
 * Writes reach the queue already serialised, so one caller's data cannot fail another's.
 * If a batch fails anyway, its writes are tried again in one transaction, each on a
 * savepoint of its own: a write that fails is rolled back alone, and so is every later
 * write of the batch to the same state instance (it was computed from the failed one);
 * the others commit.
 * @internal
 */
export class CommitQueue<W> {
  #pending: Pending<W>[] = [];
  #scheduled = false;

  constructor(
    private readonly db: Database.Database,
    /** What each write is given to write with (the store's prepared statements). */
    private readonly writer: W,
    private readonly options: CommitQueueOptions = {},
  ) {}

  commit(op: (w: W) => void, keys: readonly string[] = []): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ op, keys, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Writes everything pending now. */
  flush(): void {
    this.#scheduled = false;
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#pending = [];
    try {
      this.options.check?.();
    } catch (e) {
      for (const p of batch) p.reject(e);
      return;
    }
    try {
      fault("commit.begin");
      this.db.transaction(() => {
        for (const p of batch) p.op(this.writer);
      }).immediate();
    } catch (e) {
      this.options.onFlushError?.(e);
      if (batch.length === 1) return batch[0]!.reject(e);
      return this.#oneByOne(batch);
    }
    // Committed, and nobody has heard yet (a test kills the process here: `exit` only).
    fault("commit.end");
    for (const p of batch) p.resolve();
  }

  #oneByOne(batch: Pending<W>[]): void {
    const failed = new Map<Pending<W>, unknown>();
    const poisoned = new Map<string, unknown>();
    try {
      this.db.transaction(() => {
        for (const p of batch) {
          const cause = p.keys.find((k) => poisoned.has(k));
          if (cause !== undefined) {
            const error = new MendError("STORE", "A write to the store that this one was computed from failed; it will run again.", { cause: poisoned.get(cause) });
            failed.set(p, error);
            continue;
          }
          try {
            // A nested transaction is a savepoint: its failure rolls back this write alone.
            this.db.transaction(() => p.op(this.writer))();
          } catch (e) {
            failed.set(p, e);
            for (const k of p.keys) poisoned.set(k, e);
          }
        }
      }).immediate();
    } catch (e) {
      for (const p of batch) p.reject(e);
      return;
    }
    for (const p of batch) {
      if (failed.has(p)) p.reject(failed.get(p));
      else p.resolve();
    }
  }
}
