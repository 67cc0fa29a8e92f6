import { inspect } from "node:util";

/**
 * Errors that cross the boundary of a method call. Each has a stable `code` so that it
 * can be stored, sent over HTTP and revived as the same class.
 */

/** Base of every error mend itself raises. */
export class MendError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MendError";
    this.code = code;
  }
}

/** The task was cancelled before it finished. */
export class Cancelled extends MendError {
  constructor(message = "The task was cancelled.") {
    super("CANCELLED", message);
    this.name = "Cancelled";
  }
}

/** No task with this id exists in the store. */
export class TaskNotFound extends MendError {
  constructor(taskId: string) {
    super("TASK_NOT_FOUND", `No task ${taskId}.`);
    this.name = "TaskNotFound";
  }
}

/** A request, response or state did not match its schema. */
export class InvalidArgument extends MendError {
  constructor(message: string) {
    super("INVALID_ARGUMENT", message);
    this.name = "InvalidArgument";
  }
}

/** A call that the method kinds do not allow (a reader calling a writer, …). */
export class NotAllowed extends MendError {
  constructor(message: string) {
    super("NOT_ALLOWED", message);
    this.name = "NotAllowed";
  }
}

/** A method ran past its time limit (its `timeout`): its `ctx.signal` aborted and its locks were let go. */
export class DeadlineExceeded extends MendError {
  constructor(method: string, ms: number) {
    super("DEADLINE_EXCEEDED", `${method} ran past its time limit of ${ms} ms; it was stopped and changed nothing.`);
    this.name = "DeadlineExceeded";
  }
}

/** An unexpected error raised by a method, as seen by its caller. */
export class MethodFailed extends MendError {
  readonly remoteName: string;
  constructor(remoteName: string, message: string, stack?: string) {
    super("METHOD_FAILED", message);
    this.name = "MethodFailed";
    this.remoteName = remoteName;
    if (stack) this.stack = stack;
  }
}

const ABORTED = Symbol.for("mend.aborted");

/**
 * Base class of every `<Method>Aborted`: a declared error that ends a call or a task.
 * `instanceof` compares the state type and method, not the class object, so an error
 * revived after a restart, over HTTP or from another loaded code version still matches.
 */
export abstract class Aborted<E = unknown> extends Error {
  readonly error: E;
  abstract readonly stateType: string;
  abstract readonly method: string;
  constructor(error: E, options?: { message?: string }) {
    super(options?.message ?? describeDeclaredError(error));
    this.error = error;
  }
}

export type AbortedClass<E> = {
  new (error: E, options?: { message?: string }): Aborted<E>;
  readonly stateType: string;
  readonly method: string;
};

export function makeAbortedClass<E>(stateType: string, method: string): AbortedClass<E> {
  const key = `${stateType}.${method}`;
  const name = `${method[0]!.toUpperCase()}${method.slice(1)}Aborted`;
  const cls = class extends Aborted<E> {
    static readonly stateType = stateType;
    static readonly method = method;
    readonly stateType = stateType;
    readonly method = method;
    constructor(error: E, options?: { message?: string }) {
      super(error, options);
      this.name = name;
      (this as unknown as Record<symbol, string>)[ABORTED] = key;
    }
    static [Symbol.hasInstance](value: unknown): boolean {
      return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[ABORTED] === key;
    }
  };
  Object.defineProperty(cls, "name", { value: name });
  return cls;
}

function describeDeclaredError(error: unknown): string {
  if (typeof error === "object" && error !== null && "type" in error) return String(error.type);
  return "aborted";
}

/**
 * Turns anything a method may throw into an Error, so that it can be stored with a
 * class, a message and a stack.
 */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  let text: string;
  if (thrown === undefined) text = "undefined";
  else if (typeof thrown === "string") text = JSON.stringify(thrown);
  else {
    try {
      text = JSON.stringify(thrown) ?? String(thrown);
    } catch {
      // A cycle or a BigInt: inspect shows it as Node would print it.
      text = inspect(thrown, { depth: 3, breakLength: Infinity });
    }
  }
  const error = new Error(`A non-Error value was thrown: ${text}`);
  error.name = "NonErrorThrown";
  return error;
}
