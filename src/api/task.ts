import type { Caller, Outcome } from "./context.js";
import { Cancelled, MendError, reviveMendError } from "./errors.js";
import type { MethodDefinition } from "./define.js";
import type { TaskId } from "./task-id.js";

/** Turns a stored outcome back into a value, or throws the same error class that ended it. */
export function reviveOutcome(outcome: Outcome, method: MethodDefinition): unknown {
  switch (outcome.status) {
    case "COMPLETED":
      return outcome.response ?? undefined;
    case "ABORTED":
      // mend's own ending errors (StateNotConstructed, …) are carried as data with their code.
      throw reviveMendError(outcome.error, outcome.message) ?? new method.Aborted(outcome.error, { message: outcome.message });
    case "CANCELLED":
      throw new Cancelled();
    default:
      throw new MendError("UNKNOWN_OUTCOME", `Unknown outcome ${JSON.stringify(outcome)}.`);
  }
}

/** A handle on a task: its id, and `await task` for its response. */
export class Task<R> implements PromiseLike<R> {
  #result?: Promise<R>;
  constructor(
    private readonly caller: Caller,
    readonly taskId: TaskId,
    private readonly method: MethodDefinition,
  ) {}

  then<A = R, B = never>(
    onfulfilled?: ((value: R) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    this.#result ??= this.caller.wait(this.taskId).then((outcome) => reviveOutcome(outcome, this.method) as R);
    return this.#result.then(onfulfilled, onrejected);
  }
}
