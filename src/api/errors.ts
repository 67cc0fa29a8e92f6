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

/**
 * A method other than a constructor was called on an instance of a state type that declares
 * constructors (`factory: {}`), and no constructor has run on it. It ends the call (and a
 * task) as it is: retrying does not construct the instance.
 */
export class StateNotConstructed extends MendError {
  readonly stateType: string;
  readonly stateId: string;
  readonly constructors: readonly string[];
  constructor(stateType: string, stateId: string, constructors: readonly string[], message?: string) {
    super(
      "STATE_NOT_CONSTRUCTED",
      message ??
        `${stateType}('${stateId}') has not been constructed: call one of its constructors first (${constructors.map((c) => `${stateType}.${c}`).join(", ")}).`,
    );
    this.name = "StateNotConstructed";
    this.stateType = stateType;
    this.stateId = stateId;
    this.constructors = constructors;
  }
}

/** A constructor was called on an instance that exists already. */
export class StateAlreadyConstructed extends MendError {
  readonly stateType: string;
  readonly stateId: string;
  constructor(stateType: string, stateId: string, message?: string) {
    super("STATE_ALREADY_CONSTRUCTED", message ?? `${stateType}('${stateId}') has already been constructed.`);
    this.name = "StateAlreadyConstructed";
    this.stateType = stateType;
    this.stateId = stateId;
  }
}

/** A call from outside the application that its servicer's authorizer did not allow. */
export class PermissionDenied extends MendError {
  constructor(message: string) {
    super("PERMISSION_DENIED", message);
    this.name = "PermissionDenied";
  }
}

/** An idempotency key was used before for a different call (another method, state or request). */
export class IdempotencyConflict extends MendError {
  constructor(message: string) {
    super("IDEMPOTENCY_CONFLICT", message);
    this.name = "IdempotencyConflict";
  }
}

/**
 * The key under which an error mend raises is carried as an outcome's `error` (a task's
 * stored error, a workflow's recorded step, an HTTP answer), so it revives as its class.
 */
export const MEND_ERROR_KEY = "$mend";

/** Errors that end a call or a task as they are, not retried: the instance must change first. */
export function isEndingError(thrown: unknown): thrown is StateNotConstructed | StateAlreadyConstructed {
  return thrown instanceof StateNotConstructed || thrown instanceof StateAlreadyConstructed;
}

/** An ending error as data: `{ $mend: code, message, … }`. */
export function endingErrorData(e: StateNotConstructed | StateAlreadyConstructed): Record<string, unknown> {
  const base = { [MEND_ERROR_KEY]: e.code, stateType: e.stateType, stateId: e.stateId };
  return e instanceof StateNotConstructed ? { ...base, constructors: [...e.constructors] } : base;
}

/** The error an outcome's data stands for, if it is one of mend's own; undefined otherwise. */
export function reviveMendError(data: unknown, message: string): MendError | undefined {
  if (typeof data !== "object" || data === null || !(MEND_ERROR_KEY in data)) return undefined;
  const d = data as { $mend?: unknown; stateType?: unknown; stateId?: unknown; constructors?: unknown };
  const type = String(d.stateType ?? "");
  const id = String(d.stateId ?? "");
  if (d.$mend === "STATE_NOT_CONSTRUCTED")
    return new StateNotConstructed(type, id, Array.isArray(d.constructors) ? d.constructors.map(String) : [], message || undefined);
  if (d.$mend === "STATE_ALREADY_CONSTRUCTED") return new StateAlreadyConstructed(type, id, message || undefined);
  return new MendError(String(d.$mend), message);
}

/** Revives an error an HTTP answer carried by its code, as the same class where mend has one. */
export function errorOfCode(code: string, message: string): MendError {
  switch (code) {
    case "PERMISSION_DENIED":
      return new PermissionDenied(message);
    case "IDEMPOTENCY_CONFLICT":
      return new IdempotencyConflict(message);
    case "CANCELLED":
      return new Cancelled(message);
    case "INVALID_ARGUMENT":
      return new InvalidArgument(message);
    case "NOT_ALLOWED":
      return new NotAllowed(message);
    default:
      return new MendError(code, message);
  }
}

const ABORTED = Symbol.for("mend.aborted");

/** Whether a value is a `<Method>Aborted` of any method (a declared error), from any loaded version. */
export function isAborted(value: unknown): value is Aborted {
  return typeof value === "object" && value !== null && typeof (value as Record<symbol, unknown>)[ABORTED] === "string";
}

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
      // A cycle or a BigInt: inspect shows it as Node would print it, on one line (a task's
      // last error keeps only its first line; compact: true, or long arrays come in rows).
      text = inspect(thrown, { depth: 3, breakLength: Infinity, compact: true });
    }
  }
  const error = new Error(`A non-Error value was thrown: ${text}`);
  error.name = "NonErrorThrown";
  return error;
}
