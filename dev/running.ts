import { crashReason, stuckReason, type StoppedTask } from "../src/cli/log-lines.js";
import type { AttemptStart } from "../src/cli/task-log.js";

/** The attempts running in the runtime child, as it reports their starts and ends. */
export class RunningAttempts {
  /** Task id -> its running attempt, and when (monotonic ms) the watcher heard it start. */
  readonly #running = new Map<string, AttemptStart & { since: number }>();

  start(s: AttemptStart, now: number): void {
    this.#running.set(s.taskId, { ...s, since: now });
  }

  end(taskId: string): void {
    this.#running.delete(taskId);
  }

  /** The runtime is gone: what was running then, and for how long; forgets them. */
  stopped(now: number): StoppedTask[] {
    const list = [...this.#running.values()].map((r) => ({ taskId: r.taskId, method: r.method, version: r.version, ranMs: now - r.since }));
    this.#running.clear();
    return list;
  }
}

/**
 * Tasks that were running when the runtime died by itself (an exit, an uncaught error, out
 * of memory): one that was running at two such deaths in a row is to be parked.
 */
export class Suspects {
  #counts = new Map<string, number>();

  /** The runtime died while `running` ran: returns the tasks to park now. */
  died(running: readonly string[]): string[] {
    const next = new Map<string, number>();
    const park: string[] = [];
    for (const id of running) {
      const n = (this.#counts.get(id) ?? 0) + 1;
      if (n >= 2) park.push(id);
      else next.set(id, n);
    }
    this.#counts = next;
    return park;
  }

  /** An attempt of the task ended: it did not take the runtime down this time. */
  cleared(taskId: string): void {
    this.#counts.delete(taskId);
  }
}

/** Signals that come from outside the runtime (a user, a test, the watcher): no task caused them. */
const EXTERNAL = new Set(["SIGKILL", "SIGTERM", "SIGINT", "SIGHUP"]);

/** Whether a runtime's death may be its tasks' doing: an exit or a crash, not a kill from outside. */
export function diedByItself(exit: { stuck: boolean; planned: boolean; signal?: string }): boolean {
  return !exit.stuck && !exit.planned && (exit.signal === undefined || !EXTERNAL.has(exit.signal));
}

/** Parked tasks, each for the version it was parked on: a newer version runs them again. */
export class Parked {
  readonly #tasks = new Map<string, { version: string; reason: string }>();

  park(taskId: string, version: string, reason: string): void {
    this.#tasks.set(taskId, { version, reason });
  }

  /** It ran again (a retry asked): no longer parked. */
  resumed(taskId: string): void {
    this.#tasks.delete(taskId);
  }

  /** A version was loaded: tasks parked on another one are no longer parked (load() retries them). */
  loaded(version: string): void {
    for (const [id, p] of this.#tasks) if (p.version !== version) this.#tasks.delete(id);
  }

  /** What a runtime starting on `version` must park. */
  forStart(version: string): { taskUuid: string; reason: string }[] {
    return [...this.#tasks].filter(([, p]) => p.version === version).map(([id, p]) => ({ taskUuid: id.split("/")[2]!, reason: p.reason }));
  }
}

/** What to do about the tasks that were running when the runtime stopped. */
export interface Verdict {
  /** Parked, with the error each is stored with. */
  park: { task: StoppedTask; reason: string }[];
  /** Running at a death of the runtime's own: parked if it happens again. */
  suspects: StoppedTask[];
}

/**
 * A stuck runtime's tasks are parked at once (one of them kept it from answering); after a
 * death of the runtime's own, the tasks that were running at the one before too.
 */
export function verdict(
  exit: { stuck: boolean; planned: boolean; signal?: string; reason: string },
  stopped: readonly StoppedTask[],
  suspects: Suspects,
  hangMs: number,
): Verdict {
  if (exit.stuck) return { park: stopped.map((task) => ({ task, reason: stuckReason(hangMs) })), suspects: [] };
  if (!diedByItself(exit)) return { park: [], suspects: [] };
  const twice = new Set(suspects.died(stopped.map((t) => t.taskId)));
  return {
    park: stopped.filter((t) => twice.has(t.taskId)).map((task) => ({ task, reason: crashReason(exit.reason) })),
    suspects: stopped.filter((t) => !twice.has(t.taskId)),
  };
}
