import type { StreamSource } from "./events.js";

// What `mend dev run` did, as its runtime process knows it: the versions it loaded (with
// what the watcher tells of their builds), the builds that failed, the versions rejected,
// the runtime's restarts. Held in memory for the dashboard, newest last.

export type DevLoopEntry =
  | { kind: "loaded"; at: number; version: string; changed: string[]; buildMs: number | null; loadMs: number; retrying: number }
  | { kind: "build-failed"; at: number; message: string }
  | { kind: "rejected"; at: number; version: string; message: string }
  | { kind: "restarted"; at: number; reason: string };

/** A dev loop entry without its time, as reported. */
export type DevLoopReport = DevLoopEntry extends infer E ? (E extends DevLoopEntry ? Omit<E, "at"> : never) : never;

/** The stream's name for each kind of entry. */
const EVENT_OF: Record<DevLoopEntry["kind"], string> = {
  loaded: "dev:loaded",
  "build-failed": "dev:build-failed",
  rejected: "dev:rejected",
  restarted: "dev:restarted",
};

/** The last `capacity` entries of the dev loop. */
export class DevLoop implements StreamSource {
  readonly #entries: DevLoopEntry[] = [];
  readonly #listeners = new Set<(type: string, data: Record<string, unknown>) => void>();

  constructor(readonly capacity = 200) {}

  add(report: DevLoopReport, at = Date.now()): void {
    const entry = { ...report, at } as DevLoopEntry;
    this.#entries.push(entry);
    if (this.#entries.length > this.capacity) this.#entries.shift();
    for (const listener of this.#listeners) listener(EVENT_OF[entry.kind], { ...entry });
  }

  /** Newest first. */
  entries(): DevLoopEntry[] {
    return [...this.#entries].reverse();
  }

  subscribe(publish: (type: string, data: Record<string, unknown>) => void): () => void {
    this.#listeners.add(publish);
    return () => this.#listeners.delete(publish);
  }
}
