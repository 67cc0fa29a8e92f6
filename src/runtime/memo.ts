import { AsyncLocalStorage } from "node:async_hooks";
import type { CallTarget } from "../api/context.js";
import { MendError } from "../api/errors.js";
import type { MemoStatus } from "../store/statements.js";
import type { Store, StoreWriter } from "../store/store.js";
import { DEFAULT_MAX_VALUE_BYTES, toStoredJson } from "./json.js";
import { describeState } from "./states.js";

export type StepKind = "call" | "spawn" | "read" | "write" | "atLeastOnce" | "atMostOnce" | "until" | "loop";

/** A step as the memo recorded it. */
export interface Recorded {
  status: MemoStatus;
  value: unknown;
}

/**
 * Where a workflow's code runs: its top level, the `fn` of a helper, or an iteration of a
 * loop. Each scope prefixes the aliases made in it and counts its own calls, so that a
 * step skipped on a retry (its value recorded) does not shift the aliases after it.
 */
export interface Scope {
  readonly prefix: string;
  /** False inside `until`: each evaluation must see fresh results. */
  readonly memoise: boolean;
  readonly counters: Map<string, number>;
  /** Told of each state instance a call or read in this scope reads (`until` waits for a write to one). */
  readonly onRead?: (stateType: string, stateId: string) => void;
}

/** The code asks for a step where the memo holds a different one. */
export class StepMismatch extends MendError {
  constructor(alias: string, recorded: string, asked: string) {
    super(
      "STEP_MISMATCH",
      `The memo of this workflow holds ${recorded} under the alias "${alias}", but the code now asks for ${asked} there. ` +
        "Give the new step an alias of its own (.idempotently(\"…\") or the helper's alias), or restore the old step.",
    );
    this.name = "StepMismatch";
  }
}

export function newScope(prefix: string, memoise = true, onRead?: Scope["onRead"]): Scope {
  return onRead ? { prefix, memoise, counters: new Map(), onRead } : { prefix, memoise, counters: new Map() };
}

export function describeTarget(target: CallTarget): string {
  return `${describeState(target.stateType, target.stateId)}.${target.method}`;
}

/** What a step is, as an error names it: `Account('alice').charge()`, `atMostOnce()`. */
export function describeStep(kind: StepKind, target?: CallTarget): string {
  if (kind === "call") return `${describeTarget(target!)}()`;
  if (kind === "spawn") return `spawn of ${describeTarget(target!)}()`;
  if (kind === "read" || kind === "write") return `${kind} of ${describeState(target!.stateType, target!.stateId)}`;
  return kind === "loop" ? "ctx.loop()" : `${kind}()`;
}

/** The alias of a call: the one given with `.idempotently()`, or the n-th call of its target in the scope. */
export function aliasOf(scope: Scope, target: CallTarget, explicit: string | undefined): string {
  if (explicit !== undefined) return scope.prefix + explicit;
  const what = describeTarget(target);
  const n = (scope.counters.get(what) ?? 0) + 1;
  scope.counters.set(what, n);
  return `${scope.prefix}${what}#${n}`;
}

const current = new AsyncLocalStorage<{ memo: Memo; scope: Scope }>();

/** The recorded steps of one workflow task: looked up before a step runs, written after. */
export class Memo {
  readonly root = newScope("");
  /** The scope of the loop iteration that is running, if any. */
  loopScope: Scope | undefined;

  constructor(
    private readonly store: Store,
    private readonly taskUuid: string,
    /** The attempt that runs the workflow: its records are refused once another server runs the task. */
    private readonly attempt: number,
    private readonly maxValueBytes = DEFAULT_MAX_VALUE_BYTES,
  ) {}

  scope(): Scope {
    const store = current.getStore();
    return store?.memo === this ? store.scope : (this.loopScope ?? this.root);
  }

  /** Runs `fn` with `scope` as the scope of the calls it makes. */
  within<T>(scope: Scope, fn: () => T | Promise<T>): Promise<T> {
    return current.run({ memo: this, scope }, async () => fn());
  }

  /** The recorded step under `alias`, if any; throws if it is not the step asked for. */
  async lookup(alias: string, kind: StepKind, step: string): Promise<Recorded | undefined> {
    const row = await this.store.getMemo(this.taskUuid, alias);
    if (!row) return undefined;
    if (row.kind !== kind || row.step !== step) throw new StepMismatch(alias, row.step, step);
    return { status: row.status, value: row.value === null ? undefined : JSON.parse(row.value) };
  }

  /**
   * The write that records a step, to run inside a commit. The value is serialised now,
   * so a value that cannot be stored fails the step, not the commit.
   */
  write(alias: string, kind: StepKind, step: string, status: MemoStatus, value: unknown, what: string): (w: StoreWriter, at?: number) => void {
    const json = toStoredJson(value, what, this.maxValueBytes);
    return (w, at = Date.now()) => {
      w.checkTask(this.taskUuid, this.attempt);
      w.putMemo({ task_uuid: this.taskUuid, alias, kind, step, status, value: json, now: at });
    };
  }

  /** Records a step durably; returns the value as a later attempt will read it. */
  async record(alias: string, kind: StepKind, step: string, status: MemoStatus, value: unknown, what: string): Promise<unknown> {
    const op = this.write(alias, kind, step, status, value, what);
    await this.store.commit(op);
    return stored(value);
  }
}

/** A value as it comes back from the store, so the first attempt sees what retries see. */
export function stored(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}
