import { afterEach } from "vitest";
import { Runtime, type Application, type RuntimeOptions } from "mend";
import { newStore, onPostgres } from "./stores.js";

const started: Runtime[] = [];
afterEach(async () => {
  for (const rt of started.splice(0)) await rt.stop({ graceMs: 0 });
});

/**
 * Starts a runtime that is stopped after the current test; on a new store of the kind under
 * test (see stores.ts) unless `options` names one.
 */
export async function start(app: Application, options: RuntimeOptions = {}): Promise<Runtime> {
  const named = options.store !== undefined || options.directory !== undefined || options.path !== undefined;
  const rt = await Runtime.start(app, named || !onPostgres ? options : { ...options, ...(await newStore()) });
  started.push(rt);
  return rt;
}

/**
 * Resolves when `event` is emitted with a payload that `match` accepts; fails after
 * `timeoutMs` with a message that says what was awaited (not a bare test timeout).
 */
export function next<T>(
  rt: Runtime,
  event: Parameters<Runtime["on"]>[0],
  match: (payload: T) => boolean = () => true,
  timeoutMs = 20_000,
): Promise<T> {
  let off = () => {};
  const seen = new Promise<T>((resolve) => {
    off = rt.on(event, ((payload: T) => {
      if (!match(payload)) return;
      off();
      resolve(payload);
    }) as never);
  });
  return within(seen, `the event ${event}${match.length > 0 ? ` matching ${match.toString()}` : ""}`, timeoutMs).finally(off);
}

// Captured before any test fakes the clock: a fake clock must not fire (or hold back) these.
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;

/** `promise`, or a failure naming `what` was awaited once `timeoutMs` has passed. */
export function within<T>(promise: PromiseLike<T>, what: string, timeoutMs = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = realSetTimeout(() => reject(new Error(`waited ${timeoutMs} ms for ${what}; it did not come`)), timeoutMs);
  });
  return Promise.race([Promise.resolve(promise), late]).finally(() => realClearTimeout(timer));
}
