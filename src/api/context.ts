import { NotAllowed } from "./errors.js";
import type { TaskId, When } from "./task-id.js";
import type { LoopOptions, WorkflowSteps } from "./workflow.js";

/** Internal: how a context reaches the runtime (in-process) or a server (over HTTP). */
export const CALLER = Symbol.for("mend.caller");
/** Internal: a running workflow's durable steps. */
export const STEPS = Symbol.for("mend.steps");

export type Kind = "reader" | "writer" | "transaction" | "workflow";

/** How a call or a task ended, as data: what crosses a process or a restart. */
export type Outcome =
  | { status: "COMPLETED"; response: unknown }
  | { status: "ABORTED"; error: unknown; message: string }
  | { status: "CANCELLED" };

export interface CallTarget {
  readonly stateType: string;
  readonly stateId: string;
  readonly method: string;
}

/**
 * How a call is repeated safely (Reboot's names): `.idempotently(alias?)` runs it once per
 * key (in a workflow: once per workflow, or per loop iteration; from outside: once per
 * context seed and alias), `.perWorkflow(alias)` once per workflow even inside a loop, and
 * `.always()` every time.
 */
export type CallMode = { kind: "idempotently"; alias?: string } | { kind: "perWorkflow"; alias: string } | { kind: "always" };

export interface EnqueueOptions {
  mode: "schedule" | "spawn";
  when?: When;
  call?: CallMode;
}

/** Who is calling from outside, as the application's `tokenVerifier` made it from a bearer token. */
export interface Auth {
  userId?: string;
  properties?: Record<string, unknown>;
}

export interface Caller {
  /** Runs a method; a declared error comes back as an ABORTED outcome, anything else throws. */
  call(target: CallTarget, request: unknown, mode?: CallMode): Promise<Outcome>;
  /** Creates a task. */
  enqueue(target: CallTarget, request: unknown, options: EnqueueOptions): Promise<TaskId>;
  /** Waits for a task to end. */
  wait(taskId: TaskId): Promise<Outcome>;
  /** A workflow's read of a state (memoised unless `.always()`). */
  read?(target: { stateType: string; stateId: string }, mode?: CallMode): Promise<unknown>;
  /** A workflow's inline writer: `fn` changes the state, once per key. */
  write?(target: { stateType: string; stateId: string }, fn: (state: never) => unknown, mode?: CallMode): Promise<unknown>;
  /**
   * The id of a constructor called without one, and the mode to call it with: a new id, or
   * one that a repeat of the same idempotent call (or a retry of a workflow) finds again.
   */
  construct?(stateType: string, method: string, mode?: CallMode): { stateId: string; mode?: CallMode };
}

/** What every method body receives. */
export class Context {
  /** @internal */
  readonly [CALLER]: Caller;
  constructor(
    caller: Caller,
    /** Who is calling: a method kind, or "external" for code outside the application. */
    readonly kind: Kind | "external",
    readonly stateType: string,
    readonly stateId: string,
    /** Aborted when the task is cancelled or the runtime stops. */
    readonly signal: AbortSignal,
    /** Set when the method runs as a task. */
    readonly taskId?: TaskId,
    /** The attempt number (1 for the first) when running as a task. */
    readonly attempt?: number,
    /** Who called from outside, when the call carried a token the application's `tokenVerifier` accepted. */
    readonly auth?: Auth,
  ) {
    this[CALLER] = caller;
  }
}

export class ReaderContext extends Context {}
export class WriterContext extends Context {}
export class TransactionContext extends Context {}
export class WorkflowContext extends Context {
  /** @internal */
  declare [STEPS]?: WorkflowSteps;

  /**
   * A durable loop: `for await (const iteration of ctx.loop("poll", { interval: { secs: 5 } }))`.
   * Iterations count from 0; `break` ends the loop. After each iteration the counter is
   * stored and the task waits (`SCHEDULED_ITERATION`) for the next one, which runs the
   * workflow again from the top: recorded steps return their values, and the loop resumes
   * at the stored iteration. A failed iteration is retried, not the ones before it.
   */
  loop(alias: string, options: LoopOptions = {}): AsyncIterable<number> {
    const steps = this[STEPS];
    if (!steps) throw new NotAllowed("ctx.loop() needs the context of a running workflow.");
    return steps.loop(alias, options);
  }
}
