import { z } from "zod";
import {
  CALLER,
  STEPS,
  Context,
  ReaderContext,
  TransactionContext,
  WorkflowContext,
  WriterContext,
  type Auth,
  type Caller,
  type CallTarget,
  type EnqueueOptions,
  type Kind,
  type Outcome,
} from "../api/context.js";
import {
  Cancelled,
  coerceError,
  DeadlineExceeded,
  endingErrorData,
  isAborted,
  isEndingError,
  type Aborted,
  MendError,
  MethodFailed,
  NotAllowed,
  StateAlreadyConstructed,
  StateNotConstructed,
} from "../api/errors.js";
import type { StateTypeDefinition } from "../api/define.js";
import { dueTime, TaskId } from "../api/task-id.js";
import type { Store, StoreWriter } from "../store/store.js";
import { toStoredJson } from "./json.js";
import { KeyedMutex, LockConflict, newOwner, type LockOwner } from "./locks.js";
import { RemoteLockConflict, SharedLocks } from "./shared-locks.js";
import { describeState, stateKey, type States } from "./states.js";
import type { CodeVersion, ResolvedMethod } from "./version.js";
import { Memo } from "./memo.js";
import { WorkflowRun } from "./workflow.js";

/** A task created by a method, inserted when that method commits. */
export interface NewTask {
  uuid: string;
  stateType: string;
  stateId: string;
  method: string;
  request: string;
  dueAt: number;
  /** When the task was asked for: its `when` counts from then. */
  createdAt: number;
  parentUuid: string | null;
}

/** Writes buffered by a writer or a transaction until it commits. */
interface Effects {
  /**
   * `basis`: the version of the state the write was computed from (PostgreSQL refuses the
   * write if the state moved on); `version`: the version it makes.
   */
  writes: Map<string, { type: string; id: string; json: string; basis: number; version: number }>;
  tasks: NewTask[];
  /** Instance locks a transaction holds until it ends. */
  held: Map<string, () => void>;
  /** The instances read from memory (maybe not yet durable), with their epoch at the time. */
  reads: Map<string, number>;
  /** The version of each instance as it was read. */
  versions: Map<string, number>;
  /** The JSON of what was read, for effect validation (only while it watches). */
  inputs?: Map<string, string>;
  /**
   * The state objects that methods still running in this transaction are changing, by
   * instance: a writer or transaction called on one of them changes that very object, so
   * that its caller sees the change and does not write over it.
   */
  live: Map<string, Record<string, unknown>>;
  /** Who holds the locks: the transaction, across its runs. */
  owner: LockOwner;
  /** Set when a lock could not be taken without risking a deadlock: the transaction runs again. */
  conflict?: LockConflict;
}

export interface RunOptions {
  version: CodeVersion;
  signal: AbortSignal;
  /** When `signal` aborts at the latest (a time limit kept by the caller), in ms since the epoch. */
  deadline?: number | undefined;
  /** `keys`: what the task's own writes carry into the group commit (see CommitQueue). */
  task?: { taskId: TaskId; attempt: number; keys?: readonly string[] };
  /** Extra writes to commit in the same transaction as the method's own (a task's end). */
  onComplete?: (outcome: Outcome) => (w: StoreWriter) => void;
  /** Effect validation's first run: nothing it does is committed. */
  trial?: boolean;
  /** Effect validation: told what the run read and what it did, to compare its two runs. */
  witness?: (seen: Witnessed) => void;
  /** Who called from outside (`ctx.auth`); nested calls keep it. */
  auth?: Auth | undefined;
}

/** What a run read, and what it did: its response, state writes and scheduled tasks, as JSON. */
export interface Witnessed {
  input: string;
  did: { response: string; writes: [string, string][]; tasks: string[] };
}

/** Run each reader, writer and transaction twice, the first run rolled back. */
export type EffectValidation = "enabled" | "quiet" | "disabled";

export interface EffectValidationEvent {
  method: string;
  message: string;
  /** What the second run did differently from the first, one line each; empty when they agree. */
  differences: string[];
}

export interface ExecutorOptions {
  effectValidation: EffectValidation;
  /** Told each time a method ran twice ("enabled"), or only when its two runs did different things ("quiet"). */
  onEffectValidation: (event: EffectValidationEvent) => void;
  /** The largest value stored (RuntimeOptions.maxValueBytes). */
  maxValueBytes?: number;
}

export interface RunResult {
  outcome: Outcome;
  /** Settles once the method's writes are durable. */
  committed: Promise<void>;
}

/** What the executor needs from the task engine. */
export interface TaskHost {
  /** `also` runs inside the commit that creates the task (a workflow's memo of the spawn). */
  spawn(target: CallTarget, request: unknown, when: EnqueueOptions["when"], parentUuid: string | null, also?: (taskId: TaskId, w: StoreWriter) => void): Promise<TaskId>;
  wait(taskId: TaskId): Promise<Outcome>;
  created(tasks: readonly NewTask[]): void;
  /**
   * While the attempt of task `taskUuid` waits for `until` (a child task, a sleep), it holds
   * no slot of the engine's concurrency, so the tasks it waits for can run; it takes one again
   * before it goes on.
   */
  idle<T>(taskUuid: string, until: Promise<T>): Promise<T>;
  /** State instances whose writes are now durable (told to whoever listens for state:written). */
  written?(writes: readonly { type: string; id: string }[]): void;
}

/** Which kinds of method each kind of method may call directly (from outside: every kind). */
const MAY_CALL: Record<Kind, readonly Kind[]> = {
  reader: ["reader"],
  writer: ["reader"],
  transaction: ["reader", "writer", "transaction"],
  workflow: ["reader", "writer", "transaction", "workflow"],
};

const DONE = Promise.resolve();

/**
 * The JSON of an outcome's response or declared error, made once when the method returned:
 * what is stored is what was checked, whatever the method's code does to the value later.
 */
const STORED = new WeakMap<Outcome, string | null>();

export function storedJsonOf(outcome: Outcome): string | null {
  if (STORED.has(outcome)) return STORED.get(outcome)!;
  const value = outcome.status === "COMPLETED" ? outcome.response : outcome.status === "ABORTED" ? outcome.error : undefined;
  return toStoredJson(value, "The outcome");
}

/** Runs one method of any kind with the right context, locks and commit. @internal */
export class Executor {
  readonly #locks: KeyedMutex;
  /** A store several servers share: instance locks across them too. */
  readonly #shared: SharedLocks | undefined;

  constructor(
    private readonly store: Store,
    private readonly states: States,
    private readonly host: TaskHost,
    private readonly options: ExecutorOptions = { effectValidation: "disabled", onEffectValidation: () => {} },
  ) {
    this.#shared = store.shared && new SharedLocks(store.shared);
    this.#locks = new KeyedMutex();
  }

  // Stryker disable all: runs on a shared store (PostgreSQL) only, which mutation runs do not use (stryker.config.json)
  /** Another server let go of an instance lock. */
  unlocked(): void {
    this.#shared?.unlocked();
  }

  /** The instance locks this server holds in a shared store. */
  heldLocks(): string[] {
    return this.#shared?.held() ?? [];
  }
  // Stryker restore all

  /**
   * Takes the lock of an instance for `owner`: (a shared store) across servers first, then
   * in-process. Resolves with the release. Across servers first: an owner that waits for
   * another server holds no lock of its instance in-process, so whoever waits here behind a
   * holder waits for one that runs; and a transaction holding locks never waits for another
   * server (it lets go and runs again). No circle of waits can close through two servers.
   */
  async #lock(key: string, owner: LockOwner, signal: AbortSignal): Promise<() => void> {
    const shared = this.#shared;
    if (!shared) return this.#locks.acquire(key, owner, signal);
    // Stryker disable all: runs on a shared store (PostgreSQL) only, which mutation runs do not use (stryker.config.json)
    await shared.hold(key, owner, signal);
    let release: () => void;
    try {
      release = await this.#locks.acquire(key, owner, signal);
    } catch (e) {
      shared.release(key);
      throw e;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
      shared.release(key);
    };
  }

  // (A restore comment must come before a node: at the end of a block it is never read, and the rest of the file stays disabled.)
  // Stryker restore all
  /** Resolves a target in a version, or explains what is missing. */
  resolve(version: CodeVersion, target: CallTarget): ResolvedMethod {
    const r = version.resolve(target.stateType, target.method);
    if (!r) {
      const what = version.stateType(target.stateType) ? `method ${target.stateType}.${target.method}` : `state type ${target.stateType}`;
      throw new MendError("NOT_FOUND", `Unknown ${what}.`);
    }
    return r;
  }

  validateRequest(r: ResolvedMethod, request: unknown): unknown {
    const parsed = r.method.request.safeParse(request ?? {});
    if (!parsed.success)
      throw new MendError("INVALID_ARGUMENT", `Invalid request for ${r.type.name}.${r.method.name}: ${z.prettifyError(parsed.error)}`);
    return parsed.data;
  }

  /**
   * Runs a method; a declared error is an ABORTED outcome, anything else throws. The method
   * has until its time limit: then its `ctx.signal` aborts, its locks are let go, and the
   * run fails with DeadlineExceeded.
   */
  run(r: ResolvedMethod, stateId: string, request: unknown, options: RunOptions, within?: Effects): Promise<RunResult> {
    // The caller's signal aborts in time already (an attempt's limit, kept by the engine): nothing to add.
    const inTime = options.deadline !== undefined && options.deadline <= Date.now() + r.timeoutMs;
    const deadline = inTime ? undefined : withDeadline(options.signal, r.timeoutMs, `${r.type.name}.${r.method.name}`);
    const o = deadline ? { ...options, signal: deadline.signal } : options;
    const running =
      this.options.effectValidation !== "disabled" && !within && r.method.kind !== "workflow"
        ? this.#twice(r, stateId, request, o)
        : this.#once(r, stateId, request, o, within);
    return deadline ? running.finally(deadline.clear) : running;
  }

  #once(r: ResolvedMethod, stateId: string, request: unknown, options: RunOptions, within?: Effects): Promise<RunResult> {
    const req = this.validateRequest(r, request);
    switch (r.method.kind) {
      case "reader":
        return this.#reader(r, stateId, req, options, within);
      case "writer":
        return within ? this.#nestedWriter(r, stateId, req, options, within) : this.#writer(r, stateId, req, options);
      case "transaction":
        return within ? this.#nestedTransaction(r, stateId, req, options, within) : this.#transaction(r, stateId, req, options);
      case "workflow":
        return this.#workflow(r, stateId, req, options);
    }
  }

  async #reader(r: ResolvedMethod, stateId: string, request: unknown, o: RunOptions, within?: Effects): Promise<RunResult> {
    const key = stateKey(r.type.name, stateId);
    // A state a caller in this transaction is changing: read as it is now.
    const live = within?.live.get(key);
    const buffered = within?.writes.get(key);
    const json = live || buffered ? buffered?.json : await this.states.committedJson(r.type.name, stateId);
    if (r.type.constructors.length > 0 && !live) {
      const refused = constructedProblem(r, stateId, json !== undefined);
      if (refused) return { outcome: this.#aborted(r, refused), committed: DONE };
    }
    const state = live ? structuredClone(live) : this.states.parse(r.type, stateId, json);
    const ctx = new ReaderContext(this.#caller("reader", o, within), "reader", r.type.name, stateId, o.signal, o.task?.taskId, o.task?.attempt, o.auth);
    const outcome = await this.#call(r, ctx, Object.freeze(state), request);
    if (o.witness) {
      const effects = newEffects(undefined, true);
      effects.inputs!.set(stateKey(r.type.name, stateId), JSON.stringify(state));
      witness(o, effects, outcome);
    }
    return { outcome, committed: outcome.status === "COMPLETED" && o.onComplete ? this.#commit(newEffects(), o.onComplete(outcome), o.task?.keys) : DONE };
  }

  /** The instance's state for a writer or transaction; a read that must end the call (not constructed, or already constructed) ends it as aborted. */
  async #readOrEnd(effects: Effects, r: ResolvedMethod, stateId: string): Promise<{ state: Record<string, unknown> } | { ended: RunResult }> {
    try {
      return { state: await this.#read(effects, r, stateId) };
    } catch (e) {
      if (isEndingError(e)) return { ended: { outcome: this.#aborted(r, e), committed: DONE } };
      throw e;
    }
  }

  async #writer(r: ResolvedMethod, stateId: string, request: unknown, o: RunOptions): Promise<RunResult> {
    const key = stateKey(r.type.name, stateId);
    const effects = newEffects(newOwner(false), o.witness !== undefined);
    const release = await this.#lock(key, effects.owner, o.signal);
    try {
      const read = await this.#readOrEnd(effects, r, stateId);
      if ("ended" in read) return read.ended;
      const { state } = read;
      const ctx = new WriterContext(this.#caller("writer", o, effects), "writer", r.type.name, stateId, o.signal, o.task?.taskId, o.task?.attempt, o.auth);
      const outcome = await this.#call(r, ctx, state, request);
      if (o.signal.aborted) throw abortReason(o.signal);
      if (outcome.status === "COMPLETED") this.#wrote(effects, key, r, stateId, state);
      witness(o, effects, outcome);
      if (outcome.status !== "COMPLETED" || o.trial) return { outcome, committed: DONE };
      return { outcome, committed: this.#commit(effects, o.onComplete?.(outcome), o.task?.keys) };
    } finally {
      release();
    }
  }

  /** A writer called from a transaction: its writes join the transaction's. */
  async #nestedWriter(r: ResolvedMethod, stateId: string, request: unknown, o: RunOptions, tx: Effects): Promise<RunResult> {
    const key = stateKey(r.type.name, stateId);
    await this.#join(tx, key, o.signal);
    const live = tx.live.get(key);
    let state: Record<string, unknown>;
    try {
      state = live ?? (await this.#readWithin(tx, r, stateId, key));
    } catch (e) {
      if (isEndingError(e)) return { outcome: this.#aborted(r, e), committed: DONE };
      throw e;
    }
    const own: Effects = { ...tx, tasks: [] };
    const ctx = new WriterContext(this.#caller("writer", o, own), "writer", r.type.name, stateId, o.signal, undefined, undefined, o.auth);
    const undo = snapshot(live === undefined ? new Map() : new Map([[key, live]]));
    let outcome: Outcome | undefined;
    try {
      outcome = await this.#call(r, ctx, state, request);
    } finally {
      if (outcome?.status !== "COMPLETED") undo();
    }
    if (outcome.status === "COMPLETED") {
      // On a state its caller is changing, the caller writes it when it ends.
      if (live === undefined) this.#wrote(tx, key, r, stateId, state);
      tx.tasks.push(...own.tasks);
    }
    return { outcome, committed: DONE };
  }

  /**
   * A transaction called from a transaction joins it: one set of effects, one owner of the
   * locks, committed or rolled back with the outermost one. If it ends otherwise than
   * COMPLETED (a declared error its caller may catch), what it wrote is undone.
   */
  async #nestedTransaction(r: ResolvedMethod, stateId: string, request: unknown, o: RunOptions, tx: Effects): Promise<RunResult> {
    const key = stateKey(r.type.name, stateId);
    await this.#join(tx, key, o.signal);
    const writes = new Map(tx.writes);
    const tasks = tx.tasks.length;
    // What this call may change of the states its callers are changing.
    const restoreLive = snapshot(tx.live);
    const undo = () => {
      tx.writes.clear();
      for (const [k, w] of writes) tx.writes.set(k, w);
      tx.tasks.length = tasks;
      restoreLive();
    };
    const live = tx.live.get(key);
    try {
      const state = live ?? (await this.#readWithin(tx, r, stateId, key));
      const ctx = new TransactionContext(this.#caller("transaction", o, tx), "transaction", r.type.name, stateId, o.signal, undefined, undefined, o.auth);
      if (live === undefined) tx.live.set(key, state);
      let outcome: Outcome;
      try {
        outcome = await this.#call(r, ctx, state, request);
      } finally {
        if (live === undefined) tx.live.delete(key);
      }
      // On a state its caller is changing, the caller writes it when it ends.
      if (outcome.status === "COMPLETED") {
        if (live === undefined) this.#wrote(tx, key, r, stateId, state);
      } else undo();
      return { outcome, committed: DONE };
    } catch (e) {
      undo();
      if (isEndingError(e)) return { outcome: this.#aborted(r, e), committed: DONE };
      throw e;
    }
  }

  /** Takes the lock of an instance for the transaction `tx`, unless it holds it already. */
  async #join(tx: Effects, key: string, signal: AbortSignal): Promise<void> {
    if (tx.held.has(key)) return;
    let release: () => void;
    try {
      release = await this.#lock(key, tx.owner, signal);
    } catch (e) {
      // Seen by the transaction even if its code catches this error.
      if (e instanceof LockConflict) tx.conflict ??= e;
      throw e;
    }
    // The transaction was cancelled while this waited: it has let go of its locks already.
    if (signal.aborted) {
      release();
      throw abortReason(signal);
    }
    tx.held.set(key, release);
  }

  /** The state a method called within a transaction starts from: what the transaction wrote, or the newest. */
  async #readWithin(tx: Effects, r: ResolvedMethod, stateId: string, key: string): Promise<Record<string, unknown>> {
    const buffered = tx.writes.get(key)?.json;
    if (buffered === undefined) return this.#read(tx, r, stateId);
    if (r.type.constructors.length > 0) checkConstructed(r, stateId, true);
    return this.states.parse(r.type, stateId, buffered);
  }

  /**
   * A transaction takes the lock of each instance it writes as it goes. Two transactions on
   * disjoint instances never wait for each other; one that would wait for an older one while
   * holding locks lets go of everything and runs again once that lock is free (wait-die).
   */
  async #transaction(r: ResolvedMethod, stateId: string, request: unknown, o: RunOptions): Promise<RunResult> {
    const owner = newOwner(true);
    for (let remote = 0; ; ) {
      const effects = newEffects(owner, o.witness !== undefined);
      let conflict: LockConflict;
      try {
        return await this.#transactionOnce(r, stateId, request, o, effects);
      } catch (e) {
        if (!(e instanceof LockConflict)) throw e;
        conflict = e;
      } finally {
        for (const release of effects.held.values()) release();
      }
      // Held by another server, whose transactions have no age here to order them by: wait a
      // random while, longer each time, so that two that want each other's instances do not
      // keep meeting.
      // Stryker disable next-line all: a shared store (PostgreSQL) only
      if (conflict instanceof RemoteLockConflict) await this.#shared!.backOff(remote++, o.signal);
      else await this.#locks.whenFree(conflict.key, o.signal);
    }
  }

  async #transactionOnce(r: ResolvedMethod, stateId: string, request: unknown, o: RunOptions, effects: Effects): Promise<RunResult> {
    const key = stateKey(r.type.name, stateId);
    effects.held.set(key, await this.#lock(key, effects.owner, o.signal));
    const read = await this.#readOrEnd(effects, r, stateId);
    if ("ended" in read) return read.ended;
    const { state } = read;
    effects.live.set(key, state);
    const ctx = new TransactionContext(this.#caller("transaction", o, effects), "transaction", r.type.name, stateId, o.signal, o.task?.taskId, o.task?.attempt, o.auth);
    let outcome: Outcome;
    try {
      outcome = await this.#call(r, ctx, state, request);
    } catch (e) {
      throw effects.conflict ?? e;
    }
    if (effects.conflict) throw effects.conflict;
    if (o.signal.aborted) throw abortReason(o.signal);
    if (outcome.status === "COMPLETED") this.#wrote(effects, key, r, stateId, state);
    witness(o, effects, outcome);
    if (outcome.status !== "COMPLETED" || o.trial) return { outcome, committed: DONE };
    return { outcome, committed: this.#commit(effects, o.onComplete?.(outcome), o.task?.keys) };
  }

  async #workflow(r: ResolvedMethod, stateId: string, request: unknown, o: RunOptions): Promise<RunResult> {
    if (!o.task) throw new NotAllowed(`${r.type.name}.${r.method.name} is a workflow: it runs only as a task.`);
    const { version, signal, task } = o;
    const memo = new Memo(this.store, task.taskId.taskUuid, task.attempt, this.options.maxValueBytes);
    const run = new WorkflowRun({ runner: this, host: this.host, memo, version, signal, taskId: task.taskId, base: this.#caller("workflow", o) });
    const ctx = new WorkflowContext(run.caller(), "workflow", r.type.name, stateId, signal, task.taskId, task.attempt);
    ctx[STEPS] = run;
    const outcome = await run.settle(this.#call(r, ctx, undefined, request));
    if (o.signal.aborted) throw abortReason(o.signal);
    return { outcome, committed: outcome.status === "COMPLETED" && o.onComplete ? this.#commit(newEffects(), o.onComplete(outcome), o.task?.keys) : DONE };
  }

  /**
   * Effect validation: runs the method once with nothing committed (its state change and
   * scheduled tasks are dropped), then for real, and compares what the two runs did: code
   * that is not idempotent shows itself.
   */
  async #twice(r: ResolvedMethod, stateId: string, request: unknown, o: RunOptions): Promise<RunResult> {
    let first: Witnessed | undefined;
    let second: Witnessed | undefined;
    await this.#once(r, stateId, request, { version: o.version, signal: o.signal, task: o.task, trial: true, witness: (w) => (first = w) });
    const result = await this.#once(r, stateId, request, { ...o, witness: (w) => (second = w) });
    const method = `${r.type.name}.${r.method.name}`;
    // Runs that read different states (another writer came between them) are not compared.
    const differences = first && second && first.input === second.input ? compareRuns(first, second) : [];
    if (this.options.effectValidation === "enabled" || differences.length > 0) {
      const message =
        differences.length > 0
          ? `${method} did not do the same thing on its two runs (effect validation runs each method twice, the first run rolled back): ${differences.join("; ")}. ` +
            "Code whose result depends on something outside its state (a counter in memory, the clock, randomness) behaves like this on every retry; such effects belong in a workflow."
          : `Ran ${method} twice to validate its effects; the first run was rolled back and both did the same. ` +
            "Any effect it has outside its state (an email, a counter in memory) happened twice: such effects belong in a workflow.";
      try {
        this.options.onEffectValidation({ method, message, differences });
      } catch (e) {
        process.emitWarning(`A listener of effect-validation threw: ${String(e)}`);
      }
    }
    return result;
  }

  /** Calls the user's code and turns its result or declared error into an outcome. */
  async #call(r: ResolvedMethod, ctx: Context, state: unknown, request: unknown): Promise<Outcome> {
    const name = `${r.type.name}.${r.method.name}`;
    let raw: unknown;
    try {
      raw = await abortable(r.method.kind === "workflow" ? r.impl(ctx, request) : r.impl(ctx, state, request), ctx.signal);
    } catch (thrown) {
      return this.#aborted(r, thrown);
    }
    const parsed = r.method.response.safeParse(raw);
    if (!parsed.success)
      throw new MendError("INVALID_RESPONSE", `${name} returned a response that does not match its schema: ${z.prettifyError(parsed.error)}`);
    const outcome: Outcome = { status: "COMPLETED", response: parsed.data };
    STORED.set(outcome, toStoredJson(parsed.data, `The response of ${name}`, this.options.maxValueBytes));
    return outcome;
  }

  /**
   * What a thrown error ends the method with. Its own declared error, or one of a method it
   * called that it declares too (same type, accepted by its schema): ABORTED, revived as its
   * own `<Method>Aborted`. mend's ending errors (StateNotConstructed, …): ABORTED, revived as
   * themselves. Anything else is unexpected, and thrown: a nested declared error it does not
   * declare becomes MethodFailed, so no caller sees another method's class.
   */
  #aborted(r: ResolvedMethod, thrown: unknown): Outcome {
    const name = `${r.type.name}.${r.method.name}`;
    if (isEndingError(thrown)) {
      const data = endingErrorData(thrown);
      const outcome: Outcome = { status: "ABORTED", error: data, message: thrown.message };
      STORED.set(outcome, toStoredJson(data, `The error of ${name}`, this.options.maxValueBytes));
      return outcome;
    }
    if (!isAborted(thrown)) throw coerceError(thrown);
    for (const schema of r.method.errors) {
      const parsed = schema.safeParse(thrown.error);
      if (parsed.success) {
        const outcome: Outcome = { status: "ABORTED", error: parsed.data, message: thrown.message };
        STORED.set(outcome, toStoredJson(parsed.data, `The declared error of ${name}`, this.options.maxValueBytes));
        return outcome;
      }
    }
    const nested: Aborted = thrown;
    if (nested.stateType === r.type.name && nested.method === r.method.name)
      throw new MendError("UNDECLARED_ERROR", `${name} aborted with an error it does not declare: ${JSON.stringify(nested.error)}`);
    throw new MethodFailed(
      nested.name,
      `${name} let the declared error ${JSON.stringify(nested.error)} of ${nested.stateType}.${nested.method} escape, and does not declare it: ` +
        `declare it in ${name}'s errors to end with ${capitalize(r.method.name)}Aborted, or catch it.`,
      nested.stack,
    );
  }

  /** The newest state of an instance, for a writer that holds its lock; remembered, so the commit can tell whether it was dropped meanwhile. */
  async #read(effects: Effects, r: ResolvedMethod, stateId: string): Promise<Record<string, unknown>> {
    const key = stateKey(r.type.name, stateId);
    effects.reads.set(key, this.states.epochOf(key));
    const latest = await this.states.latest(r.type.name, stateId);
    const json = latest?.json;
    effects.versions.set(key, latest?.version ?? 0);
    effects.inputs?.set(key, json ?? "");
    if (r.type.constructors.length > 0) {
      checkConstructed(r, stateId, json !== undefined);
      // A constructor starts from the fields that have defaults; the state is checked whole when it commits.
      if (json === undefined) return r.type.initial.parse({}) as Record<string, unknown>;
    }
    return this.states.parse(r.type, stateId, json);
  }

  // --- For workflows: a memoised read, an inline writer, and news of writes --------

  /** A state a method left, to commit: serialised (and checked) now. */
  #wrote(effects: Effects, key: string, r: ResolvedMethod, stateId: string, state: unknown): void {
    const json = this.states.serialise(r.type, stateId, state, r.method.name);
    effects.writes.set(key, { type: r.type.name, id: stateId, json, basis: effects.versions.get(key) ?? 0, version: newStateVersion() });
  }

  /** The durable state of an instance, as a workflow's `read()` gives it. */
  async readState(version: CodeVersion, stateType: string, stateId: string): Promise<Record<string, unknown>> {
    const type = this.#type(version, stateType);
    const json = await this.states.committedJson(stateType, stateId);
    if (type.constructors.length > 0 && json === undefined) throw new StateNotConstructed(stateType, stateId, type.constructors);
    return this.states.parse(type, stateId, json);
  }

  /**
   * A workflow's inline writer: `fn` changes the state while the instance's lock is held, and
   * the write commits with `record(value)` (the memo of the step) in one transaction.
   */
  async write(
    version: CodeVersion,
    target: { stateType: string; stateId: string },
    fn: (state: Record<string, unknown>) => unknown,
    options: { signal: AbortSignal; record?: (value: unknown) => (w: StoreWriter) => void },
  ): Promise<unknown> {
    const type = this.#type(version, target.stateType);
    const key = stateKey(target.stateType, target.stateId);
    const effects = newEffects();
    const release = await this.#lock(key, effects.owner, options.signal);
    try {
      effects.reads.set(key, this.states.epochOf(key));
      const latest = await this.states.latest(target.stateType, target.stateId);
      const json = latest?.json;
      if (type.constructors.length > 0 && json === undefined) throw new StateNotConstructed(target.stateType, target.stateId, type.constructors);
      const state = this.states.parse(type, target.stateId, json);
      const value = await abortable(Promise.resolve().then(() => fn(state)), options.signal);
      if (options.signal.aborted) throw abortReason(options.signal);
      const written = this.states.serialise(type, target.stateId, state, "write()");
      effects.writes.set(key, { type: target.stateType, id: target.stateId, json: written, basis: latest?.version ?? 0, version: newStateVersion() });
      await this.#commit(effects, options.record?.(value));
      return value;
    } finally {
      release();
    }
  }

  /** Calls `fn` once a write to the instance is durable; returns the way to stop. */
  watch(stateType: string, stateId: string, fn: () => void): () => void {
    return this.states.watch(stateKey(stateType, stateId), fn);
  }

  #type(version: CodeVersion, stateType: string): StateTypeDefinition {
    const type = version.stateType(stateType);
    if (!type) throw new MendError("NOT_FOUND", `Unknown state type ${stateType}.`);
    return type;
  }

  #commit(effects: Effects, extra?: (w: StoreWriter) => void, extraKeys: readonly string[] = []): Promise<void> {
    for (const [key, epoch] of effects.reads)
      if (this.states.epochOf(key) !== epoch)
        return Promise.reject(new MendError("STORE", "A write to the store failed while this method ran; it will run again."));
    const writes = [...effects.writes.values()];
    const keys = [...effects.writes.keys(), ...extraKeys];
    const done = writes.map((w) => this.states.setPending(w.type, w.id, w.json, w.version));
    // Across servers, the locks of the instances written are held until the writes are durable.
    const shared = this.#shared;
    // Stryker disable next-line all: a shared store (PostgreSQL) only
    const kept = shared ? [...effects.writes.keys()].filter((k) => shared.keep(k)) : [];
    const letGo = () => {
      for (const k of kept) shared!.release(k);
    };
    const now = Date.now();
    const committed = this.store.commit((sql) => {
      for (const w of writes) sql.writeState(w.type, w.id, w.json, w.basis, w.version);
      for (const t of effects.tasks)
        sql.insertTask({ uuid: t.uuid, state_type: t.stateType, state_id: t.stateId, method: t.method, request: t.request, due_at: t.dueAt, created_at: t.createdAt, now, parent_uuid: t.parentUuid });
      extra?.(sql);
    }, keys);
    return committed.then(
      () => {
        for (const d of done) d();
        letGo();
        if (writes.length > 0) this.host.written?.(writes);
        if (effects.tasks.length > 0) this.host.created(effects.tasks);
      },
      (e: unknown) => {
        this.states.dropPending(keys);
        letGo();
        throw e;
      },
    );
  }

  /** The Caller behind the context a method receives: enforces what its kind may do. */
  #caller(kind: Kind, o: RunOptions, effects?: Effects): Caller {
    const { version, signal } = o;
    const parentUuid = o.task?.taskId.taskUuid ?? null;
    const check = (r: ResolvedMethod) => {
      if (!MAY_CALL[kind].includes(r.method.kind))
        throw new NotAllowed(`A ${kind} cannot call the ${r.method.kind} ${r.type.name}.${r.method.name}.`);
    };
    return {
      // Calls made inside a method are part of it (atomically, for a transaction): `.idempotently()` adds nothing.
      call: async (target, request) => {
        const r = this.resolve(version, target);
        check(r);
        if (r.method.kind === "workflow") {
          const child = this.host.wait(await this.host.spawn(target, request, undefined, parentUuid));
          return parentUuid === null ? child : this.host.idle(parentUuid, child);
        }
        const within = kind === "transaction" ? effects : undefined;
        const { outcome, committed } = await this.run(r, target.stateId, request, { version, signal, auth: o.auth }, within);
        await committed;
        return outcome;
      },
      enqueue: async (target, request, options) => {
        const r = this.resolve(version, target);
        const req = this.validateRequest(r, request);
        if (effects && (kind === "writer" || kind === "transaction")) {
          const now = Date.now();
          const task: NewTask = {
            uuid: TaskId.newUuid(),
            stateType: target.stateType,
            stateId: target.stateId,
            method: target.method,
            request: toStoredJson(req, `The request of ${target.stateType}.${target.method}`, this.options.maxValueBytes) ?? "{}",
            dueAt: dueTime(options.when, now),
            createdAt: now,
            parentUuid,
          };
          effects.tasks.push(task);
          return { stateType: task.stateType, stateId: task.stateId, taskUuid: task.uuid };
        }
        if (kind !== "workflow")
          throw new NotAllowed(`A ${kind} cannot start tasks; a writer or transaction can schedule() them.`);
        return this.host.spawn(target, req, options.when, parentUuid);
      },
      wait: (taskId) => {
        if (kind !== "workflow") throw new NotAllowed(`A ${kind} cannot wait for a task; a workflow can.`);
        return parentUuid === null ? this.host.wait(taskId) : this.host.idle(parentUuid, this.host.wait(taskId));
      },
    };
  }
}

/**
 * The method's result, or a rejection with the reason of `signal` once it aborts (a cancel,
 * a stop): code that never settles must not hold its instance's lock forever.
 */
function abortable<T>(result: T | Promise<T>, signal: AbortSignal): Promise<T> {
  if (!(result instanceof Promise)) return Promise.resolve(result);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    result.then(
      (value) => (signal.removeEventListener("abort", onAbort), resolve(value)),
      (error: unknown) => (signal.removeEventListener("abort", onAbort), reject(error)),
    );
  });
}

function witness(o: RunOptions, effects: Effects, outcome: Outcome): void {
  if (!o.witness) return;
  o.witness({
    input: JSON.stringify([...(effects.inputs ?? [])]),
    did: {
      response: `${outcome.status} ${storedJsonOf(outcome) ?? ""}`,
      writes: [...effects.writes.values()].map((w) => [describeState(w.type, w.id), w.json]),
      tasks: effects.tasks.map((t) => `${describeState(t.stateType, t.stateId)}.${t.method}(${t.request}) in ${t.dueAt - t.createdAt} ms`),
    },
  });
}

/** What the second run did differently, one line each. */
export function compareRuns(first: Witnessed, second: Witnessed): string[] {
  const cut = (text: string) => (text.length > 120 ? `${text.slice(0, 119)}…` : text);
  const out: string[] = [];
  if (first.did.response !== second.did.response)
    out.push(`its response differs (first ${cut(first.did.response)}, then ${cut(second.did.response)})`);
  const before = new Map(first.did.writes);
  for (const [state, json] of second.did.writes)
    if (before.get(state) !== json) out.push(`it left ${state} differently (first ${cut(before.get(state) ?? "unchanged")}, then ${cut(json)})`);
  for (const [state] of first.did.writes) if (!second.did.writes.some(([s]) => s === state)) out.push(`only its first run changed ${state}`);
  if (first.did.tasks.join("\n") !== second.did.tasks.join("\n"))
    out.push(`it scheduled different tasks (first [${cut(first.did.tasks.join(", "))}], then [${cut(second.did.tasks.join(", "))}])`);
  return out;
}

/** On a type with constructors: a constructor needs an instance that does not exist, any other method one that does. */
function constructedProblem(r: ResolvedMethod, stateId: string, exists: boolean): StateAlreadyConstructed | StateNotConstructed | undefined {
  if (r.method.factory) return exists ? new StateAlreadyConstructed(r.type.name, stateId) : undefined;
  return exists ? undefined : new StateNotConstructed(r.type.name, stateId, r.type.constructors);
}

function checkConstructed(r: ResolvedMethod, stateId: string, exists: boolean): void {
  const problem = constructedProblem(r, stateId, exists);
  if (problem) throw problem;
}

function capitalize(s: string): string {
  return s[0]!.toUpperCase() + s.slice(1);
}

/** Why a signal aborted: a cancel, a stop, a deadline. */
function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Cancelled();
}

/** A signal that also aborts after `ms`, with DeadlineExceeded; none when there is no limit. */
function withDeadline(parent: AbortSignal, ms: number, what: string): { signal: AbortSignal; clear: () => void } | undefined {
  if (!Number.isFinite(ms)) return undefined;
  const controller = new AbortController();
  const onParent = () => controller.abort(parent.reason);
  if (parent.aborted) onParent();
  else parent.addEventListener("abort", onParent, { once: true });
  const timer = setTimeout(() => controller.abort(new DeadlineExceeded(what, ms)), ms);
  timer.unref();
  return {
    signal: controller.signal,
    clear: () => {
      clearTimeout(timer);
      parent.removeEventListener("abort", onParent);
    },
  };
}

/**
 * The version a write gives a state: a random number, not a count, so that two writes
 * computed from the same state (on two servers, one of which lost its lock) never make the
 * same version, and a write computed from either is refused once the other committed.
 */
function newStateVersion(): number {
  return 1 + Math.floor(Math.random() * (Number.MAX_SAFE_INTEGER - 1));
}

/** Copies of these state objects; the function returned puts each object back as it was, in place. */
function snapshot(states: ReadonlyMap<string, Record<string, unknown>>): () => void {
  const copies = [...states.values()].map((state) => [state, structuredClone(state)] as const);
  return () => {
    for (const [state, copy] of copies) {
      for (const k of Object.keys(state)) delete state[k];
      Object.assign(state, copy);
    }
  };
}

function newEffects(owner: LockOwner = newOwner(false), witnessing = false): Effects {
  return { writes: new Map(), tasks: [], held: new Map(), reads: new Map(), versions: new Map(), live: new Map(), ...(witnessing ? { inputs: new Map() } : {}), owner };
}

export { describeState, CALLER };
