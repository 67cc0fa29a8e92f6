import type { z } from "zod";
import { MendError, NotAllowed } from "./errors.js";
import { STEPS, type Context, type WorkflowContext } from "./context.js";
import { dueTime, type When } from "./task-id.js";

/** A length of time: `{ ms?, secs?, mins?, hours?, days? }`, the units added up. */
export type Duration = Exclude<When, Date>;

/** A duration in ms; `what` names it in the error for a bad one. */
export function durationMs(duration: Duration, what: string): number {
  if (typeof duration !== "object" || duration === null || duration instanceof Date)
    throw new MendError("INVALID_API", `${what} must be a duration such as { secs: 30 }.`);
  try {
    return dueTime(duration, 0);
  } catch (e) {
    throw new MendError("INVALID_API", `${what}: ${(e as Error).message}`);
  }
}

export interface LoopOptions {
  /** How long after one iteration ends the next one starts. @defaultValue no wait */
  interval?: Duration;
}

export interface AtMostOnceOptions {
  /**
   * Errors after which `fn` may run again on a later attempt (a refused connection, say:
   * nothing happened). Any other error leaves the step started for good.
   * @defaultValue []
   */
  retryableErrors?: readonly (abstract new (...args: never[]) => unknown)[];
}

export interface UntilOptions {
  /**
   * The longest wait between two evaluations. When `fn` read a state, it is evaluated again
   * once that state is written, or after this at the latest; otherwise waits start at 10 ms
   * and double up to this. @defaultValue `{ secs: 1 }`
   */
  maxInterval?: Duration;
  /** Validates the value (when it is recorded, and when a retry reads it back) and gives it its type. */
  schema?: z.ZodType;
}

/** Internal: the durable steps of a running workflow (src/runtime/workflow.ts implements them). */
export interface WorkflowSteps {
  atLeastOnce<T>(alias: string, fn: () => T | Promise<T>): Promise<T>;
  atMostOnce<T>(alias: string, fn: () => T | Promise<T>, options: AtMostOnceOptions): Promise<T>;
  until<T>(alias: string, fn: () => T | Promise<T>, options: UntilOptions): Promise<T>;
  loop(alias: string, options: LoopOptions): AsyncIterable<number>;
}

/**
 * Thrown by `atMostOnce` on every attempt after one that started `fn` and never recorded
 * its end: `fn` may or may not have done its work, and it will not be run again.
 */
export class AtMostOnceFailedBeforeCompleting extends MendError {
  readonly alias: string;
  constructor(alias: string) {
    super(
      "AT_MOST_ONCE_FAILED_BEFORE_COMPLETING",
      `atMostOnce("${alias}") was started by an earlier attempt that did not complete it; it will not run again.`,
    );
    this.name = "AtMostOnceFailedBeforeCompleting";
    this.alias = alias;
  }
}

type Truthy<T> = Exclude<T, false | 0 | "" | null | undefined>;

function stepsOf(ctx: Context, helper: string): WorkflowSteps {
  const steps = (ctx as { [STEPS]?: WorkflowSteps } | undefined)?.[STEPS];
  if (!steps) throw new NotAllowed(`${helper} needs the context of a running workflow.`);
  return steps;
}

/**
 * Runs `fn` until it has once returned; from then on, every attempt of the workflow gets
 * the recorded value (a JSON value) without running `fn`.
 */
export async function atLeastOnce<T>(alias: string, ctx: WorkflowContext, fn: () => T | Promise<T>): Promise<T> {
  return stepsOf(ctx, "atLeastOnce()").atLeastOnce(alias, fn);
}

/**
 * Records that `fn` starts, durably, before running it, and its value once it returns.
 * `fn` runs at most once: an attempt after one that started `fn` and never recorded its
 * end throws `AtMostOnceFailedBeforeCompleting`.
 */
export async function atMostOnce<T>(alias: string, ctx: WorkflowContext, fn: () => T | Promise<T>, options: AtMostOnceOptions = {}): Promise<T> {
  return stepsOf(ctx, "atMostOnce()").atMostOnce(alias, fn, options);
}

/**
 * Evaluates `fn` until it returns a truthy value, then records that value. Calls made
 * inside `fn` are not memoised, so each evaluation sees fresh results; when `fn` read a
 * state, the next evaluation comes once that state is written (or after `maxInterval`).
 */
export function until<S extends z.ZodType>(
  alias: string,
  ctx: WorkflowContext,
  fn: () => unknown,
  options: UntilOptions & { schema: S },
): Promise<z.output<S>>;
export function until<T>(alias: string, ctx: WorkflowContext, fn: () => T | Promise<T>, options?: UntilOptions): Promise<Truthy<T>>;
export async function until(alias: string, ctx: WorkflowContext, fn: () => unknown, options: UntilOptions = {}): Promise<unknown> {
  return stepsOf(ctx, "until()").until(alias, fn, options);
}
