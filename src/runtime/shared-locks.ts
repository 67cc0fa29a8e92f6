import type { SharedStore } from "../store/store.js";
import { LockConflict, type LockOwner } from "./locks.js";

/** The first wait for a lock another server holds; it doubles up to MAX_WAIT_MS. */
const FIRST_WAIT_MS = 10;
const MAX_WAIT_MS = 500;

/** A lock held by another server: a transaction that holds others lets go of them and runs again. */
export class RemoteLockConflict extends LockConflict {}

/**
 * Instance locks across the servers of a shared store, beside the in-process ones (a
 * KeyedMutex): a server holds an instance's lock in the store while one of its writers,
 * transactions or inline writes has the instance, and until the writes computed under it
 * are durable; then it lets it go (the servers waiting hear of it). Locks asked for in one
 * turn are taken with one statement. A lock lives under the server's lease: if the server
 * dies, it ends with the lease.
 * @internal
 */
export class SharedLocks {
  /** Keys this server holds in the store, with how many local holds (a running method, a commit in flight) keep them. */
  readonly #held = new Map<string, number>();
  /** Asked for in this turn: taken together. */
  #asked = new Map<string, { resolve: (got: boolean) => void; reject: (e: unknown) => void }[]>();
  #askScheduled = false;
  /** Held but no longer needed: let go at the end of this turn, unless needed again first. */
  readonly #spare = new Set<string>();
  #spareScheduled = false;
  /** Waiting for another server to let go of a lock. */
  readonly #waiting = new Set<() => void>();
  /**
   * The lock and unlock statements, one after another: a lock taken again while the
   * statement that lets it go is on its way must not be let go by it.
   */
  #io: Promise<unknown> = Promise.resolve();

  #inTurn<T>(statement: () => Promise<T>): Promise<T> {
    const next = this.#io.then(statement, statement);
    this.#io = next.catch(() => {});
    return next;
  }

  constructor(private readonly store: SharedStore) {}

  /**
   * Takes `key` for `owner` (before its in-process lock). Waits while another server holds
   * it, unless `owner` is a transaction holding other locks: then it must let go of them
   * (RemoteLockConflict), so that servers never wait for each other in a circle.
   */
  async hold(key: string, owner: LockOwner, signal?: AbortSignal): Promise<void> {
    for (let wait = FIRST_WAIT_MS; ; wait = Math.min(wait * 2, MAX_WAIT_MS)) {
      if (this.#take(key)) return;
      if (await this.#ask(key)) {
        this.#held.set(key, (this.#held.get(key) ?? 0) + 1);
        return;
      }
      if (owner.transaction && owner.held > 0) throw new RemoteLockConflict(key);
      await this.whenFree(wait, signal);
    }
  }

  /** The instance locks this server holds in the store now (their lease is renewed). */
  held(): string[] {
    return [...this.#held.keys(), ...this.#spare];
  }

  /** Keeps a key held one more time (a commit in flight), if it is held. */
  keep(key: string): boolean {
    return this.#take(key);
  }

  /** One local hold of `key` ends; the last one lets the lock go at the end of this turn. */
  release(key: string): void {
    const n = (this.#held.get(key) ?? 0) - 1;
    if (n > 0) return void this.#held.set(key, n);
    this.#held.delete(key);
    this.#spare.add(key);
    if (this.#spareScheduled) return;
    this.#spareScheduled = true;
    setImmediate(() => {
      this.#spareScheduled = false;
      const keys = [...this.#spare];
      this.#spare.clear();
      // Let go of only if still spare when its turn comes; one not let go ends with the lease.
      if (keys.length > 0)
        this.#inTurn(() => {
          const still = keys.filter((k) => !this.#held.has(k));
          return still.length > 0 ? this.store.unlock(still) : Promise.resolve();
        }).catch(() => {});
    });
  }

  /** A random wait before a transaction that met a lock held elsewhere runs again (its `n`-th time): up to 20 ms, doubling, at most 1 s. */
  backOff(n: number, signal?: AbortSignal): Promise<void> {
    const ms = Math.random() * Math.min(1000, 20 * 2 ** n);
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => (clearTimeout(timer), reject(signal!.reason));
      const timer = setTimeout(() => (signal?.removeEventListener("abort", onAbort), resolve()), ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Resolves once another server lets go of a lock, or after `ms`. */
  whenFree(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const done = () => {
        clearTimeout(timer);
        this.#waiting.delete(done);
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        clearTimeout(timer);
        this.#waiting.delete(done);
        reject(signal!.reason);
      };
      const timer = setTimeout(done, ms);
      this.#waiting.add(done);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Another server let go of a lock: whoever waits tries again. */
  unlocked(): void {
    for (const done of [...this.#waiting]) done();
  }

  /** Takes one more hold of a key this server holds in the store already. */
  #take(key: string): boolean {
    const n = this.#held.get(key);
    if (n !== undefined) return this.#held.set(key, n + 1), true;
    if (this.#spare.delete(key)) return this.#held.set(key, 1), true;
    return false;
  }

  #ask(key: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const list = this.#asked.get(key);
      if (list) list.push({ resolve, reject });
      else this.#asked.set(key, [{ resolve, reject }]);
      if (this.#askScheduled) return;
      this.#askScheduled = true;
      setImmediate(() => {
        this.#askScheduled = false;
        const asked = this.#asked;
        this.#asked = new Map();
        this.#inTurn(() => this.store.lock([...asked.keys()], Date.now())).then(
          (got) => {
            for (const [key, waiters] of asked) {
              // One asker gets it; the others of this server queue behind it in-process, and find it held.
              const [first, ...rest] = waiters;
              first!.resolve(got.has(key));
              for (const w of rest) w.resolve(false);
            }
          },
          (e: unknown) => {
            for (const waiters of asked.values()) for (const w of waiters) w.reject(e);
          },
        );
      });
    });
  }
}
