import { randomUUID } from "node:crypto";
import type { CallMode } from "./context.js";
import { MendError, NotAllowed } from "./errors.js";
import { deriveId } from "./ids.js";

/** The key of an idempotent call from outside: the context's seed and the call's alias. */
export interface IdempotencyKey {
  seed: string;
  alias: string;
}

/**
 * The idempotency keys of one context from outside (an ExternalContext, a runtime context):
 * `.idempotently(alias)` is (seed, alias); `.idempotently()` with no alias is (seed, the n-th
 * such call of this context), so a new context with the same seed, making the same calls in
 * the same order, finds the same keys. `always` (every call, when `all` is set: `initialize`).
 */
export class IdempotencyKeys {
  readonly seed: string;
  #count = 0;

  constructor(seed: string | undefined, private readonly all = false) {
    if (seed !== undefined && (typeof seed !== "string" || seed === ""))
      throw new MendError("INVALID_ARGUMENT", "idempotencySeed must be a non-empty string.");
    this.seed = seed ?? randomUUID();
  }

  /** The key of a call made with `mode`, or undefined if it is not made idempotently. */
  keyFor(mode: CallMode | undefined): IdempotencyKey | undefined {
    if (mode?.kind === "perWorkflow") throw new NotAllowed(".perWorkflow() is for calls from a workflow; from outside use .idempotently(alias).");
    if (mode?.kind === "always") return undefined;
    if (mode?.kind === "idempotently") {
      if (mode.alias !== undefined && (typeof mode.alias !== "string" || mode.alias === ""))
        throw new MendError("INVALID_ARGUMENT", ".idempotently(alias) needs a non-empty string, or no alias.");
      return { seed: this.seed, alias: mode.alias ?? this.#next() };
    }
    return this.all ? { seed: this.seed, alias: this.#next() } : undefined;
  }

  /**
   * The id of a constructor called without one: for an idempotent call, one made from its key
   * (so a repeat constructs nothing new), with the key fixed for the call that follows.
   */
  construct(mode: CallMode | undefined): { stateId: string; mode?: CallMode } {
    const key = this.keyFor(mode);
    if (!key) return { stateId: randomUUID(), ...(mode ? { mode } : {}) };
    return { stateId: deriveId(key.seed, key.alias), mode: { kind: "idempotently", alias: key.alias } };
  }

  #next(): string {
    return `#${++this.#count}`;
  }
}
