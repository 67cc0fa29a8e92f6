/**
 * Named fault points on the commit path, for tests whose subject is a failure between two
 * steps (as DBOS's debug points): a test makes the store fail, or the process die, exactly
 * there, instead of hoping a SIGKILL at a random moment lands in the right place.
 *
 * Not part of the public API. Armed in-process with `armFault()`, or in a child process
 * with the environment variable `MEND_FAULTS`: `point=action[@n],…`, where action is
 * `throw` (the statement fails, as a disk error would) or `exit` (SIGKILL, no cleanup), and
 * `@n` fires on the n-th time the point is reached (the first by default).
 *
 * Points: `store.<statement>` before each write statement of src/store/statements.ts
 * (`store.insertTask`, `store.writeState`, `store.putMemo`, …), `commit.begin` before a
 * group commit's transaction, `commit.end` after it committed and before any caller hears.
 */

/** A function action is told what the point is writing (e.g. a state id and its JSON) and may throw. */
export type FaultAction = "throw" | "exit" | ((...detail: string[]) => void);

interface Armed {
  action: FaultAction;
  /** Fires from this hit on (1 = the next)… */
  at: number;
  /** …this many times. */
  times: number;
  hits: number;
}

const armed = new Map<string, Armed>();

/** The error an armed `throw` raises, shaped like the I/O error it stands for. */
export class InjectedFault extends Error {
  readonly code = "SQLITE_IOERR";
  constructor(readonly point: string) {
    super(`disk I/O error (fault injected at ${point})`);
    this.name = "SqliteError";
  }
}

/**
 * Arms `point`: from its `at`-th hit (1 = the next) on, `times` hits run `action`
 * (`Infinity`: until disarmed; a write that fails in a group commit is tried once more on
 * its own, so a fault meant to fail a write for good must outlast that retry).
 */
export function armFault(point: string, action: FaultAction, at = 1, times = 1): void {
  armed.set(point, { action, at, times, hits: 0 });
}

export function disarmFault(point: string): void {
  armed.delete(point);
}

export function disarmFaults(): void {
  armed.clear();
}

/** Called at each point; does nothing unless a test armed it. */
export function fault(point: string, ...detail: string[]): void {
  if (armed.size === 0) return;
  const f = armed.get(point);
  if (!f) return;
  f.hits++;
  if (f.hits < f.at) return;
  if (f.hits >= f.at + f.times - 1) armed.delete(point);
  if (f.action === "exit") process.kill(process.pid, "SIGKILL");
  else if (f.action === "throw") throw new InjectedFault(point);
  else f.action(...detail);
}

/** `point=action[@n],…` → armed points; unknown actions are refused loudly (a typo would test nothing). */
export function parseFaults(text: string): [string, "throw" | "exit", number][] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((spec) => {
      const m = /^([\w.]+)=(throw|exit)(?:@(\d+))?$/.exec(spec);
      if (!m) throw new Error(`MEND_FAULTS: '${spec}' is not point=throw|exit[@n]`);
      return [m[1]!, m[2] as "throw" | "exit", m[3] ? Number(m[3]) : 1];
    });
}

for (const [point, action, at] of parseFaults(process.env.MEND_FAULTS ?? "")) armFault(point, action, at);
