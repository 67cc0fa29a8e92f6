import { MendError } from "./errors.js";
import type { Servicer } from "./define.js";
import type { RetryPolicy } from "../runtime/backoff.js";
import type { Context } from "./context.js";
import type { TokenVerifier } from "./authorization.js";
import { durationMs, type Duration } from "./workflow.js";

export interface ApplicationOptions {
  servicers: readonly Servicer[];
  /** Backoff for every task that fails unexpectedly; a method may override it. */
  retry?: Partial<RetryPolicy>;
  /**
   * How long a reader, writer or transaction may run (a call, or one attempt of a task);
   * a method's own `timeout` overrides it. Workflows have none unless they declare one.
   * @defaultValue `{ secs: 60 }`
   */
  timeout?: Duration;
  /**
   * Runs once per store, before the server answers its first request: the place to create
   * singletons (`await Bank.create(ctx, "bank")`). Every call it makes is idempotent (keyed
   * by its order), so if it fails or the process dies inside it, the next start runs it
   * again and the calls that completed give their recorded results.
   */
  initialize?: (ctx: Context) => void | Promise<void>;
  /** Turns a bearer token of a call from outside into `ctx.auth`, for the authorizers. */
  tokenVerifier?: TokenVerifier;
}

const APPLICATION = Symbol.for("mend.application");

/** What an app's entry module default-exports. */
export class Application {
  readonly servicers: readonly Servicer[];
  readonly retry?: Partial<RetryPolicy>;
  /** The time limit of readers, writers and transactions, in ms. */
  readonly timeoutMs: number;
  readonly initialize?: (ctx: Context) => void | Promise<void>;
  readonly tokenVerifier?: TokenVerifier;
  constructor(options: ApplicationOptions) {
    if (!options || !Array.isArray(options.servicers))
      throw new MendError("INVALID_APPLICATION", "new Application({ servicers: [...] }) needs a list of servicers.");
    const seen = new Set<string>();
    for (const s of options.servicers) {
      if (!s?.definition) throw new MendError("INVALID_APPLICATION", "Every servicer must come from Type.servicer({...}).");
      if (seen.has(s.definition.name))
        throw new MendError("INVALID_APPLICATION", `Two servicers for the state type ${s.definition.name}.`);
      seen.add(s.definition.name);
    }
    for (const key of ["initialize", "tokenVerifier"] as const)
      if (options[key] !== undefined && typeof options[key] !== "function")
        throw new MendError("INVALID_APPLICATION", `new Application({ ${key} }) must be a function.`);
    this.servicers = options.servicers;
    if (options.initialize) this.initialize = options.initialize;
    if (options.tokenVerifier) this.tokenVerifier = options.tokenVerifier;
    this.retry = options.retry;
    this.timeoutMs = options.timeout === undefined ? 60_000 : durationMs(options.timeout, "new Application({ timeout })");
    (this as unknown as Record<symbol, boolean>)[APPLICATION] = true;
  }

  /** True for an Application from any copy of this module (a loaded bundle may carry its own). */
  static is(value: unknown): value is Application {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[APPLICATION] === true;
  }
}
