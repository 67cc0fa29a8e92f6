import { MendError } from "../api/errors.js";

/**
 * Who takes a lock. Transactions take several locks, one after another, so two of them
 * could wait on each other; they are ordered by age (wait-die): a transaction that holds
 * locks may wait only for younger ones, and otherwise gives up all it holds and runs again.
 * A writer holds one lock and never waits while holding it, so it always waits.
 */
export interface LockOwner {
  /** Smaller is older. A transaction keeps its age when it runs again, so it cannot starve. */
  readonly age: number;
  readonly transaction: boolean;
  /** How many locks it holds now. */
  held: number;
}

/** A transaction would wait for an older one while holding locks: it must let go and run again. */
export class LockConflict extends MendError {
  constructor(readonly key: string) {
    super("LOCK_CONFLICT", "The transaction conflicts with an older one on the same state; it runs again.");
    this.name = "LockConflict";
  }
}

interface Waiter {
  owner: LockOwner;
  grant: () => void;
}

interface Lock {
  holder: LockOwner;
  queue: Waiter[];
}

let ages = 0;

export function newOwner(transaction: boolean): LockOwner {
  return { age: ++ages, transaction, held: 0 };
}

/** One lock per key (a state instance): writers of one instance run one at a time. */
export class KeyedMutex {
  #locks = new Map<string, Lock>();

  /**
   * Resolves with a release function once `owner` holds `key`; release is idempotent.
   * Rejects with LockConflict when waiting could deadlock, and with `signal`'s reason if it
   * aborts while waiting (the wait is then given up).
   */
  acquire(key: string, owner: LockOwner, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const lock = this.#locks.get(key);
    if (!lock) {
      this.#locks.set(key, { holder: owner, queue: [] });
      owner.held++;
      return Promise.resolve(this.#releaser(key, owner));
    }
    if (mustDie(owner, lock)) return Promise.reject(new LockConflict(key));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        owner,
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          owner.held++;
          resolve(this.#releaser(key, owner));
        },
      };
      const onAbort = () => {
        const i = lock.queue.indexOf(waiter);
        if (i >= 0) lock.queue.splice(i, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      lock.queue.push(waiter);
    });
  }

  /** Resolves once `key` is free of its current holder and of those queued before (or at once). */
  async whenFree(key: string, signal?: AbortSignal): Promise<void> {
    if (!this.#locks.has(key)) return;
    const release = await this.acquire(key, newOwner(false), signal);
    release();
  }

  #releaser(key: string, owner: LockOwner): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      owner.held--;
      const lock = this.#locks.get(key)!;
      const next = lock.queue.shift();
      if (!next) return void this.#locks.delete(key);
      lock.holder = next.owner;
      next.grant();
    };
  }
}

/** Wait-die: a transaction holding locks never waits behind an older transaction. */
function mustDie(owner: LockOwner, lock: Lock): boolean {
  if (!owner.transaction || owner.held === 0) return false;
  const older = (o: LockOwner) => o.transaction && o.age < owner.age;
  return older(lock.holder) || lock.queue.some((w) => older(w.owner));
}
