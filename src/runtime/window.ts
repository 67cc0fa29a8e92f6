import { Heap } from "./heap.js";
import { Scheduler } from "./scheduler.js";

/** A task that can run, as the engine keeps it in memory while it is due soon. */
export interface WindowTask {
  uuid: string;
  stateType: string;
  stateId: string;
  method: string;
  request: string;
  attempts: number;
  backoffStep: number;
  due: number;
}

/** A position in due order: (due time, uuid). */
export interface DueKey {
  due: number;
  uuid: string;
}

/** Before every key. */
const START: DueKey = { due: -Infinity, uuid: "" };
/** A uuid after every uuid at the same due time. */
const LAST_UUID = "~";

/** The greatest key before `key` that a task could have (uuids are strings of hex digits and dashes). */
export function justBefore(key: DueKey): DueKey {
  const last = key.uuid.charCodeAt(key.uuid.length - 1);
  return { due: key.due, uuid: `${key.uuid.slice(0, -1)}${String.fromCharCode(last - 1)}${LAST_UUID}` };
}

export function compareKeys(a: DueKey, b: DueKey): number {
  return a.due - b.due || (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0);
}

export interface WindowOptions {
  /** Tasks due within this long are loaded. @defaultValue 60000 */
  ms: number;
  /** At most this many tasks are loaded at once (running ones not counted). @defaultValue 10000 */
  tasks: number;
}

export const DEFAULT_WINDOW: WindowOptions = { ms: 60_000, tasks: 10_000 };

/** What the window needs from the store. */
export interface WindowSource {
  /** Tasks that can run, after `after` in due order, due at the latest at `until`, at most `limit`. */
  dueAfter(after: DueKey, until: number, limit: number): WindowTask[];
  /** Whether the engine has this task already (running it, say), so the window must not load it. */
  owned(uuid: string): boolean;
}

/**
 * The tasks due soon, in memory; every other waiting task stays in the store. Every task
 * that can run and whose key is at most the horizon is in memory (or running); the window
 * reads the next ones from the store, in due order, as time passes and as it empties. A
 * task due later than the horizon is not kept when it is created or rescheduled: the store
 * has it, and a later read finds it. Memory is bounded by `tasks`, whatever the store holds.
 */
export class DueWindow {
  readonly #tasks = new Map<string, WindowTask>();
  readonly #scheduler: Scheduler;
  /** The same tasks, due last first, to make room (entries of tasks gone or moved are skipped). */
  readonly #latest = new Heap<WindowTask>((a, b) => compareKeys(b, a) < 0);
  #horizon: DueKey = START;
  /** The horizon stopped at the size limit: more tasks are due before the time limit. */
  #full = false;
  #timer: NodeJS.Timeout | undefined;
  #soon = false;
  #stopped = false;

  constructor(
    private readonly source: WindowSource,
    private readonly options: WindowOptions,
    onDue: (task: WindowTask) => void,
  ) {
    this.#scheduler = new Scheduler((uuid) => {
      const task = this.#tasks.get(uuid);
      if (task) onDue(task);
    });
  }

  get size(): number {
    return this.#tasks.size;
  }

  get(uuid: string): WindowTask | undefined {
    return this.#tasks.get(uuid);
  }

  /** For tests and the dashboard: how far the window reaches. */
  get horizon(): DueKey {
    return this.#horizon;
  }

  values(): IterableIterator<WindowTask> {
    return this.#tasks.values();
  }

  /**
   * A task that can run now has this due time (created, retried, rescheduled): kept if the
   * window covers it, else left to the store.
   */
  offer(task: WindowTask): void {
    if (this.#stopped) return;
    if (compareKeys(task, this.#horizon) > 0) {
      this.remove(task.uuid);
      // The window stopped short at its size limit, and has room again: reach further.
      if (this.#full && this.#tasks.size < this.options.tasks) this.#refillSoon();
      return;
    }
    if (!this.#tasks.has(task.uuid) && this.#tasks.size >= this.options.tasks) {
      // Full: the task due last makes room, if it is due after this one; the store keeps it.
      const last = this.#last();
      if (!last || compareKeys(last, task) < 0) return this.#lower(justBefore(task));
      this.remove(last.uuid);
      this.#lower(justBefore(last));
    }
    this.#keep(task);
  }

  #keep(task: WindowTask): void {
    this.#tasks.set(task.uuid, task);
    this.#scheduler.add(task.uuid, task.due);
    this.#latest.push(task);
    // Entries of tasks that left are dropped lazily; rebuild before they outnumber the living.
    if (this.#latest.size > 2 * this.#tasks.size + 1024) {
      this.#latest.clear();
      for (const t of this.#tasks.values()) this.#latest.push(t);
    }
  }

  /** The window reaches less far: the tasks after the new horizon are read again later. */
  #lower(horizon: DueKey): void {
    if (compareKeys(horizon, this.#horizon) < 0) this.#horizon = horizon;
    this.#full = true;
  }

  /** The task in memory due last. */
  #last(): WindowTask | undefined {
    for (;;) {
      const top = this.#latest.peek();
      if (!top) return undefined;
      const kept = this.#tasks.get(top.uuid);
      // A stale entry: removed since, or kept again under another due time.
      if (kept && kept.due === top.due) return kept;
      this.#latest.pop();
    }
  }

  /** Takes a task out of memory (it starts running, is cancelled, or finished). */
  remove(uuid: string): void {
    if (!this.#tasks.delete(uuid)) return;
    this.#scheduler.remove(uuid);
    if (this.#full && this.#tasks.size <= this.options.tasks / 2) this.#refillSoon();
  }

  /**
   * Forget what the window holds and how far it reached (after a change of many tasks in the
   * store), and read again. A task held now and due after the tasks the store now has first
   * would keep the window from reading those in time: the store has every held task, so the
   * read brings back the ones that still belong.
   */
  reset(): void {
    for (const uuid of this.#tasks.keys()) this.#scheduler.remove(uuid);
    this.#tasks.clear();
    this.#latest.clear();
    this.#horizon = START;
    this.refill();
  }

  /** Reads the next tasks from the store, up to the size limit and the time limit. */
  refill(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const until = Date.now() + this.options.ms;
    const room = this.options.tasks - this.#tasks.size;
    if (room > 0) {
      const rows = this.source.dueAfter(this.#horizon, until, room);
      for (const row of rows)
        if (!this.#tasks.has(row.uuid) && !this.source.owned(row.uuid)) this.#keep(row);
      this.#full = rows.length === room;
      // Everything between the old horizon and the last row read is now in memory.
      this.#horizon = this.#full ? { due: rows.at(-1)!.due, uuid: rows.at(-1)!.uuid } : { due: until, uuid: LAST_UUID };
    } else {
      // Filled by offers: reading on by time would find no room, again and again; a task leaving reads on.
      this.#full = true;
    }
    // Reach further before time catches up with the horizon.
    if (!this.#full) this.#later(Math.max(0, this.#horizon.due - Date.now() - this.options.ms / 2));
  }

  #refillSoon(): void {
    if (this.#soon) return;
    this.#soon = true;
    setImmediate(() => {
      this.#soon = false;
      this.refill();
    });
  }

  #later(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.refill(), Math.min(ms, 2 ** 31 - 1));
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#scheduler.stop();
    this.#tasks.clear();
    this.#latest.clear();
  }
}
