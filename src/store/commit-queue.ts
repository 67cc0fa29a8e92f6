import type Database from "better-sqlite3";

interface Pending {
  op: () => void;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit: every write asked for during one turn of the event loop runs in one
 * SQLite transaction, so one fsync covers them all. A caller's promise settles once its
 * write is durable; if the transaction fails, every caller in it hears so.
 * @internal
 */
export class CommitQueue {
  #pending: Pending[] = [];
  #scheduled = false;
  #onFlushError: (e: unknown) => void;

  constructor(
    private readonly db: Database.Database,
    onFlushError: (e: unknown) => void = () => {},
  ) {
    this.#onFlushError = onFlushError;
  }

  commit(op: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ op, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  get size(): number {
    return this.#pending.length;
  }

  /** Writes everything pending now. */
  flush(): void {
    this.#scheduled = false;
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#pending = [];
    try {
      this.db.transaction(() => {
        for (const p of batch) p.op();
      }).immediate();
    } catch (e) {
      // Every write in the batch fails with it. Trying them one by one would let a write
      // commit that was computed from an earlier write of the batch which then failed.
      this.#onFlushError(e);
      for (const p of batch) p.reject(e);
      return;
    }
    for (const p of batch) p.resolve();
  }
}
