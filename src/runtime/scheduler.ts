import { Heap } from "./heap.js";

interface Entry {
  due: number;
  seq: number;
  uuid: string;
}

/** Longest delay setTimeout accepts. */
const MAX_TIMEOUT = 2 ** 31 - 1;

/**
 * Wakes up exactly when the next task is due: a min-heap of due times and one timer set
 * for its top. Never calls `onDue` before a task's due time. No polling.
 */
export class Scheduler {
  #heap = new Heap<Entry>(before);
  #live = new Map<string, number>(); // uuid -> seq of its current entry
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerDue = Infinity;
  #drainQueued = false;
  #stopped = false;

  constructor(private readonly onDue: (uuid: string) => void) {}

  /** Schedules (or reschedules) a task. */
  add(uuid: string, due: number): void {
    if (this.#stopped) return;
    const entry = { due, seq: ++this.#seq, uuid };
    this.#live.set(uuid, entry.seq);
    this.#heap.push(entry);
    if (due <= Date.now()) this.#queueDrain();
    else if (due < this.#timerDue) this.#arm();
  }

  remove(uuid: string): boolean {
    return this.#live.delete(uuid);
  }

  has(uuid: string): boolean {
    return this.#live.has(uuid);
  }

  get size(): number {
    return this.#live.size;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#heap.clear();
    this.#live.clear();
  }

  #queueDrain(): void {
    if (this.#drainQueued) return;
    this.#drainQueued = true;
    queueMicrotask(() => {
      this.#drainQueued = false;
      this.#drain();
    });
  }

  #drain(): void {
    const now = Date.now();
    while (this.#heap.size > 0 && this.#heap.peek()!.due <= now) {
      const entry = this.#heap.pop()!;
      if (this.#live.get(entry.uuid) !== entry.seq) continue;
      this.#live.delete(entry.uuid);
      this.onDue(entry.uuid);
      if (this.#stopped) return;
    }
    this.#arm();
  }

  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDue = Infinity;
    while (this.#heap.size > 0 && this.#live.get(this.#heap.peek()!.uuid) !== this.#heap.peek()!.seq) this.#heap.pop();
    const top = this.#heap.peek();
    if (!top || this.#stopped) return;
    this.#timerDue = top.due;
    const delay = Math.min(Math.max(0, top.due - Date.now()), MAX_TIMEOUT);
    // A timer may fire a little before its time; #drain then re-arms for the rest.
    this.#timer = setTimeout(() => {
      this.#timerDue = Infinity;
      this.#drain();
    }, delay);
  }
}

function before(a: Entry, b: Entry): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}
