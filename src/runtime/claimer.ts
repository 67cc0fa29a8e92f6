import type { ClaimedTask, SharedStore, TaskKey } from "../store/store.js";
import type { CodeVersion } from "./version.js";

/** What the claimer needs from the engine. */
export interface ClaimHost {
  /** Slots free for attempts now. */
  free(): number;
  version(): CodeVersion;
  /** Runs a task this server claimed. */
  run(task: ClaimedTask): void;
  /** Tasks no live server can run were found and now wait for code. */
  waiting(tasks: readonly (TaskKey & { method: string })[], reason: (type: string, method: string) => string): void;
  error(e: unknown): void;
}

/** At most this many tasks per claim. */
const BATCH = 256;
/** How often, at most, due tasks that no live server can run are looked for. */
const ORPHANS_EVERY_MS = 1000;
/** After the store could not be reached, the next claim waits this long. */
const RETRY_MS = 500;

/**
 * Takes due tasks from a shared store for this server: as many as it has free slots, at
 * once when told that tasks are due (a notification, a task created or rescheduled here, a
 * slot freed), and otherwise when the next one is due (one timer, no polling). Tasks whose
 * method no live server's code has are found now and then, and made to wait for code.
 * @internal
 */
export class Claimer {
  #timer: NodeJS.Timeout | undefined;
  #wakeAt = Infinity;
  #claiming = false;
  #again = false;
  #stopped = false;
  #orphansAt = 0;
  #methods: { version: CodeVersion; keys: string[] } | undefined;

  constructor(
    private readonly store: SharedStore,
    private readonly host: ClaimHost,
  ) {}

  /** This version's methods, as the store keeps them. */
  methods(): string[] {
    const version = this.host.version();
    if (this.#methods?.version !== version) {
      const keys: string[] = [];
      for (const s of version.application.servicers) for (const m of s.definition.methods.keys()) keys.push(`${s.definition.name}\u0001${m}`);
      this.#methods = { version, keys };
    }
    return this.#methods.keys;
  }

  /** Claims now (in this turn's end), if there is room. */
  poke(): void {
    if (this.#stopped) return;
    if (this.#claiming) {
      this.#again = true;
      return;
    }
    this.#claiming = true;
    setImmediate(() => void this.#round());
  }

  /** Tasks are due at `at`: claim then at the latest. */
  hint(at: number): void {
    if (this.#stopped || at >= this.#wakeAt) return;
    if (at <= Date.now()) return this.poke();
    this.#wakeAt = at;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#wakeAt = Infinity;
      this.poke();
    }, Math.min(at - Date.now(), 2 ** 31 - 1));
  }

  async #round(): Promise<void> {
    try {
      if (this.#stopped) return;
      const free = this.host.free();
      if (free <= 0) return; // a slot freed pokes again
      const now = Date.now();
      const version = this.host.version();
      const limit = Math.min(free, BATCH);
      const { tasks, next } = await this.store.claim(limit, now, version.id, this.methods());
      if (this.#stopped) return; // claimed, then stopping: the leases end and another server reruns them
      for (const t of tasks) this.host.run(t);
      if (tasks.length === limit) this.#again = true;
      else if (next !== undefined) this.hint(next);
      if (tasks.length < limit) {
        if (now - this.#orphansAt >= ORPHANS_EVERY_MS) {
          this.#orphansAt = now;
          const reason = (type: string, method: string) => version.describeMissing(type, method);
          const found = await this.store.orphans(now, this.methods(), reason);
          if (found.length > 0) this.host.waiting(found, reason);
          if (found.length === 100) (this.#orphansAt = 0), (this.#again = true);
        } else this.hint(this.#orphansAt + ORPHANS_EVERY_MS);
      }
    } catch (e) {
      if (this.#stopped) return;
      this.host.error(e);
      this.hint(Date.now() + RETRY_MS);
    } finally {
      this.#claiming = false;
      if (this.#again) {
        this.#again = false;
        this.poke();
      }
    }
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }
}
