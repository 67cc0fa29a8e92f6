/**
 * The last `capacity` events, numbered 1, 2, 3, … as they are pushed: what a client that
 * reconnects with the number of the last event it saw has missed, or that too much has
 * happened since for the ring to tell.
 */
export class EventRing<T> {
  readonly #items: (T | undefined)[];
  /** The number of the newest event; 0 before the first. */
  #last = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be an integer >= 1, got ${capacity}`);
    this.#items = new Array<T | undefined>(capacity);
  }

  get last(): number {
    return this.#last;
  }

  /** The number of the oldest event still held (last + 1 when none is). */
  get first(): number {
    return Math.max(1, this.#last - this.capacity + 1);
  }

  push(item: T): number {
    this.#last++;
    this.#items[this.#last % this.capacity] = item;
    return this.#last;
  }

  /**
   * The events after number `seen`, oldest first, each with its number; undefined when some
   * of them are no longer held (or `seen` is not a number this ring gave out).
   */
  since(seen: number): { n: number; item: T }[] | undefined {
    if (!Number.isSafeInteger(seen) || seen < 0 || seen > this.#last) return undefined;
    if (seen < this.first - 1) return undefined;
    const out: { n: number; item: T }[] = [];
    for (let n = seen + 1; n <= this.#last; n++) out.push({ n, item: this.#items[n % this.capacity] as T });
    return out;
  }
}

/** An event id as the stream gives it, `<stream>-<n>`: the stream names one run of the server's event source. */
export function formatEventId(stream: string, n: number): string {
  return `${stream}-${n}`;
}

/** The number in an event id of `stream`; undefined for an id of another stream or not an id at all. */
export function parseEventId(id: string | undefined, stream: string): number | undefined {
  if (!id || !id.startsWith(`${stream}-`)) return undefined;
  const rest = id.slice(stream.length + 1);
  if (!/^\d{1,15}$/.test(rest)) return undefined;
  return Number(rest);
}
