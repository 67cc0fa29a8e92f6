import { z } from "zod";
import {
  CALLER,
  STEPS,
  Context,
  ReaderContext,
  TransactionContext,
  WorkflowContext,
  WriterContext,
  type Caller,
  type CallTarget,
  type EnqueueOptions,
  type Kind,
  type Outcome,
} from "../api/context.js";
import { Cancelled, coerceError, DeadlineExceeded, MendError, NotAllowed } from "../api/errors.js";
import { dueTime, TaskId } from "../api/task-id.js";
import type { CommitQueue } from "../store/commit-queue.js";
import type { Statements } from "../store/statements.js";
import { toStoredJson } from "./json.js";
import { KeyedMutex, LockConflict, newOwner, type LockOwner } from "./locks.js";
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
  writes: Map<string, { type: string; id: string; json: string }>;
  tasks: NewTask[];
  /** Instance locks a transaction holds until it ends. */
  held: Map<string, () => void>;
  /** The instances read from memory (maybe not yet durable), with their epoch at the time. */
  reads: Map<string, number>;
  /** The JSON of what was read, for effect validation (only while it watches). */
  inputs?: Map<string, string>;
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
  onComplete?: (outcome: Outcome) => () => void;
  /** Effect validation's first run: nothing it does is committed. */
  trial?: boolean;
  /** Effect validation: told what the run read and what it did, to compare its two runs. */
  witness?: (seen: Witnessed) => void;
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
  spawn(target: CallTarget, request: unknown, when: EnqueueOptions["when"], parentUuid: string | null, also?: (taskId: TaskId) => void): Promise<TaskId>;
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

/** Which kinds of method each kind of caller may call directly. */
const MAY_CALL: Record<Kind | "external", readonly Kind[]> = {
  reader: ["reader"],
  writer: ["reader"],
  transaction: ["reader", "writer"],
  workflow: ["reader", "writer", "transaction", "workflow"],
  external: ["reader", "writer", "transaction", "workflow"],
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
  readonly #locks = new KeyedMutex();

  constructor(
    private readonly sql: Statements,
    private readonly commits: CommitQueue,
    private readonly states: States,
    private readonly host: TaskHost,
    private readonly options: ExecutorOptions = { effectValidation: "disabled", onEffectValidation: () => {} },
  ) {}

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
        return this.#transaction(r, stateId, req, options);
      case "workflow":
        return this.#workflow(r, stateId, req, options);
    }
  }

  async #reader(r: ResolvedMethod, stateId: string, request: unknown, o: RunOptions, within?: Effects): Promise<RunResult> {
    const buffered = within?.writes.get(stateKey(r.type.name, stateId));
    const state = buffered ? this.states.parse(r.type, stateId, buffered.json) : this.states.committed(r.type, stateId);
    const ctx = new ReaderContext(this.#caller("reader", o, within), "reader", r.type.name, stateId, o.signal, o.task?.taskId, o.task?.attempt);
    const outcome = await this.#call(r, ctx, Object.freeze(state), request);
    if (o.witness) {
      const effects = newEffects(undefined, true);
      effects.inputs!.set(stateKey(r.type.name, stateId), JSON.stringify(state));
      witness(o, effects, outcome);
    }
    return { outcome, committed: outcome.status === "COMPLETED" && o.onComplete ? this.#commit(newEffects(), o.onComplete(outcome), o.task?.keys) : DONE };
  }

  async #writer(r: ResolvedMethod, stateId: string, request: unknown, o: RunOptions): Promise<RunResult> {
    const key = stateKey(r.type.name, stateId);
    const effects = newEffects(newOwner(false), o.witness !== undefined);
    const release = await this.#locks.acquire(key, effects.owner, o.signal);
    try {
      const state = this.#read(effects, r, stateId);
      const ctx = new WriterContext(this.#caller("writer", o, effects), "writer", r.type.name, stateId, o.signal, o.task?.taskId, o.task?.attempt);
      const outcome = await this.#call(r, ctx, state, request);
      if (o.signal.aborted) throw abortReason(o.signal);
      if (outcome.status === "COMPLETED")
        effects.writes.set(key, { type: r.type.name, id: stateId, json: this.states.serialise(r.type, stateId, state, r.method.name) });
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
    if (!tx.held.has(key)) {
      let release: () => void;
      try {
        release = await this.#locks.acquire(key, tx.owner, o.signal);
      } catch (e) {
        // Seen by the transaction even if its code catches this error.
        if (e instanceof LockConflict) tx.conflict ??= e;
        throw e;
      }
      // The transaction was cancelled while this waited: it has let go of its locks already.
      if (o.signal.aborted) {
        release();
        throw abortReason(o.signal);
      }
      tx.held.set(key, release);
    }
    const buffered = tx.writes.get(key)?.json;
    const state = buffered === undefined ? this.#read(tx, r, stateId) : this.states.parse(r.type, stateId, buffered);
    const own: Effects = { ...tx, tasks: [] };
    const ctx = new WriterContext(this.#caller("writer", o, own), "writer", r.type.name, stateId, o.signal);
    const outcome = await this.#call(r, ctx, state, request);
    if (outcome.status === "COMPLETED") {
      tx.writes.set(key, { type: r.type.name, id: stateId, json: this.states.serialise(r.type, stateId, state, r.method.name) });
      tx.tasks.push(...own.tasks);
    }
    return { outcome, committed: DONE };
  }

  /**
   * A transaction takes the lock of each instance it writes as it goes. Two transactions on
   * disjoint instances never wait for each other; one that would wait for an older one while
   * holding locks lets go of everything and runs again once that lock is free (wait-die).
   */
  async #transaction(r: ResolvedMethod, stateId: string, request: unknown, o: RunOptions): Promise<RunResult> {
    const owner = newOwner(true);
    for (;;) {
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
      await this.#locks.whenFree(conflict.key, o.signal);
    }
  }

  async #transactionOnce(r: ResolvedMethod, stateId: string, request: unknown, o: RunOptions, effects: Effects): Promise<RunResult> {
    const key = stateKey(r.type.name, stateId);
    effects.held.set(key, await this.#locks.acquire(key, effects.owner, o.signal));
    const state = this.#read(effects, r, stateId);
    const ctx = new TransactionContext(this.#caller("transaction", o, effects), "transaction", r.type.name, stateId, o.signal, o.task?.taskId, o.task?.attempt);
    let outcome: Outcome;
    try {
      outcome = await this.#call(r, ctx, state, request);
    } catch (e) {
      throw effects.conflict ?? e;
    }
    if (effects.conflict) throw effects.conflict;
    if (o.signal.aborted) throw abortReason(o.signal);
    if (outcome.status === "COMPLETED")
      effects.writes.set(key, { type: r.type.name, id: stateId, json: this.states.serialise(r.type, stateId, state, r.method.name) });
    witness(o, effects, outcome);
    if (outcome.status !== "COMPLETED" || o.trial) return { outcome, committed: DONE };
    return { outcome, committed: this.#commit(effects, o.onComplete?.(outcome), o.task?.keys) };
  }

  async #workflow(r: ResolvedMethod, stateId: string, request: unknown, o: RunOptions): Promise<RunResult> {
    if (!o.task) throw new NotAllowed(`${r.type.name}.${r.method.name} is a workflow: it runs only as a task.`);
    const { version, signal, task } = o;
    const memo = new Memo(this.sql, this.commits, task.taskId.taskUuid, this.options.maxValueBytes);
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
      if (!(thrown instanceof r.method.Aborted)) throw coerceError(thrown);
      for (const schema of r.method.errors) {
        const parsed = schema.safeParse(thrown.error);
        if (parsed.success) {
          const outcome: Outcome = { status: "ABORTED", error: parsed.data, message: thrown.message };
          STORED.set(outcome, toStoredJson(parsed.data, `The declared error of ${name}`, this.options.maxValueBytes));
          return outcome;
        }
      }
      throw new MendError("UNDECLARED_ERROR", `${name} aborted with an error it does not declare: ${JSON.stringify(thrown.error)}`);
    }
    const parsed = r.method.response.safeParse(raw);
    if (!parsed.success)
      throw new MendError("INVALID_RESPONSE", `${name} returned a response that does not match its schema: ${z.prettifyError(parsed.error)}`);
    const outcome: Outcome = { status: "COMPLETED", response: parsed.data };
    STORED.set(outcome, toStoredJson(parsed.data, `The response of ${name}`, this.options.maxValueBytes));
    return outcome;
  }

  /** The newest state of an instance, for a writer that holds its lock; remembered, so the commit can tell whether it was dropped meanwhile. */
  #read(effects: Effects, r: ResolvedMethod, stateId: string): Record<string, unknown> {
    const key = stateKey(r.type.name, stateId);
    effects.reads.set(key, this.states.epochOf(key));
    const json = this.states.latestJson(r.type.name, stateId);
    effects.inputs?.set(key, json ?? "");
    return this.states.parse(r.type, stateId, json);
  }

  #commit(effects: Effects, extra?: () => void, extraKeys: readonly string[] = []): Promise<void> {
    for (const [key, epoch] of effects.reads)
      if (this.states.epochOf(key) !== epoch)
        return Promise.reject(new MendError("STORE", "A write to the store failed while this method ran; it will run again."));
    const writes = [...effects.writes.values()];
    const keys = [...effects.writes.keys(), ...extraKeys];
    const done = writes.map((w) => this.states.setPending(w.type, w.id, w.json));
    const now = Date.now();
    const committed = this.commits.commit(() => {
      for (const w of writes) this.sql.writeState(w.type, w.id, w.json);
      for (const t of effects.tasks)
        this.sql.insertTask({ uuid: t.uuid, state_type: t.stateType, state_id: t.stateId, method: t.method, request: t.request, due_at: t.dueAt, created_at: t.createdAt, now, parent_uuid: t.parentUuid });
      extra?.();
    }, keys);
    return committed.then(
      () => {
        for (const d of done) d();
        if (writes.length > 0) this.host.written?.(writes);
        if (effects.tasks.length > 0) this.host.created(effects.tasks);
      },
      (e: unknown) => {
        this.states.dropPending(keys);
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
      call: async (target, request) => {
        const r = this.resolve(version, target);
        check(r);
        if (r.method.kind === "workflow") {
          const child = this.host.wait(await this.host.spawn(target, request, undefined, parentUuid));
          return parentUuid === null ? child : this.host.idle(parentUuid, child);
        }
        const within = kind === "transaction" ? effects : undefined;
        const { outcome, committed } = await this.run(r, target.stateId, request, { version, signal }, within);
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

function newEffects(owner: LockOwner = newOwner(false), witnessing = false): Effects {
  return { writes: new Map(), tasks: [], held: new Map(), reads: new Map(), ...(witnessing ? { inputs: new Map() } : {}), owner };
}

export { describeState, CALLER };
