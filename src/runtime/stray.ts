import { AsyncLocalStorage } from "node:async_hooks";
import { coerceError } from "../api/errors.js";

/**
 * Errors that escape the user's code where nobody awaits them (a promise rejected and never
 * handled, a throw from a timer) would end the process. The code of each call and attempt
 * runs in an async context of its own; such an error is given to the call or attempt whose
 * code raised it, which fails with it, and the process goes on.
 */
export interface ErrorOwner {
  /** Takes the error (fails the call or attempt); false if it can no longer (it ended). */
  fail(error: Error): boolean;
}

const owners = new AsyncLocalStorage<ErrorOwner>();

/** Runs `fn` (and everything it starts) as the code of `owner`. */
export function runOwned<T>(owner: ErrorOwner, fn: () => T): T {
  return owners.run(owner, fn);
}

let onUnowned: ((error: Error) => void) | undefined;

/** Where errors that belong to no running call or attempt go (mend's servers log them and go on). */
export function handleUnownedErrors(handler: (error: Error) => void): void {
  onUnowned = handler;
}

/**
 * An error no running call or attempt takes: to the handler, to whoever else listens (a
 * test runner), or Node's own behaviour (print and exit) when nobody does.
 */
function unowned(error: Error, event: "uncaughtException" | "unhandledRejection"): void {
  if (onUnowned) return onUnowned(error);
  if (process.listenerCount(event) > 1) return;
  process.stderr.write(`Uncaught ${error.stack ?? String(error)}\n`);
  process.exit(1);
}

function onException(thrown: unknown): void {
  const error = coerceError(thrown);
  if (owners.getStore()?.fail(error)) return;
  unowned(error, "uncaughtException");
}

function onRejection(reason: unknown): void {
  const error = coerceError(reason);
  if (owners.getStore()?.fail(error)) return;
  unowned(error, "unhandledRejection");
}

let installed = 0;

/** Listens for stray errors while at least one runtime runs; the result stops listening. */
export function catchStrayErrors(): () => void {
  if (installed++ === 0) {
    process.on("uncaughtException", onException);
    process.on("unhandledRejection", onRejection);
  }
  let done = false;
  return () => {
    if (done) return;
    done = true;
    if (--installed === 0) {
      process.off("uncaughtException", onException);
      process.off("unhandledRejection", onRejection);
    }
  };
}
