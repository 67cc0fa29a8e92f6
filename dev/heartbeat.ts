/**
 * The watcher's view of the runtime's heartbeat: pings sent, pongs back. The runtime is
 * stuck when a ping has waited longer than the limit: measured from the ping, not from the
 * last pong, so a synchronous step shorter than the limit is never taken for a hang.
 * Times come from a monotonic clock (performance.now()): a wall clock step is not a hang.
 */
export class Heartbeat {
  /** Sent and not yet answered: ping number -> when it was sent. */
  readonly #waiting = new Map<number, number>();
  #next = 0;

  /** Records a ping sent at `now`; returns its number. */
  ping(now: number): number {
    const n = ++this.#next;
    this.#waiting.set(n, now);
    return n;
  }

  /** A pong answers its ping and every earlier one (IPC keeps the order). */
  pong(n: number): void {
    for (const k of this.#waiting.keys()) if (k <= n) this.#waiting.delete(k);
  }

  /** How long the oldest unanswered ping has waited, 0 if none. */
  stalledFor(now: number): number {
    for (const sentAt of this.#waiting.values()) return now - sentAt; // insertion order: the oldest first
    return 0;
  }
}
