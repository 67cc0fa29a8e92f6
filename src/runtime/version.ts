import type { Application } from "../api/application.js";
import type { MethodDefinition, Servicer, StateTypeDefinition } from "../api/define.js";
import type { Authorizer } from "../api/authorization.js";
import { resolveRetry, type RetryPolicy } from "./backoff.js";

export interface ResolvedMethod {
  readonly type: StateTypeDefinition;
  readonly method: MethodDefinition;
  readonly impl: (...args: unknown[]) => unknown;
  readonly retry: RetryPolicy;
  /** How long one run may take; Infinity for none. */
  readonly timeoutMs: number;
}

/** One loaded version of the application's code. */
export class CodeVersion {
  readonly #types = new Map<string, Servicer>();
  constructor(
    readonly id: string,
    readonly application: Application,
  ) {
    for (const s of application.servicers) this.#types.set(s.definition.name, s);
  }

  /** The authorizer of a state type's servicer, if it has one. */
  authorizer(stateType: string): Authorizer | undefined {
    return this.#types.get(stateType)?.authorizer;
  }

  stateType(name: string): StateTypeDefinition | undefined {
    return this.#types.get(name)?.definition;
  }

  resolve(stateType: string, method: string): ResolvedMethod | undefined {
    const servicer = this.#types.get(stateType);
    const m = servicer?.definition.methods.get(method);
    if (!servicer || !m) return undefined;
    return {
      type: servicer.definition,
      method: m,
      impl: servicer.impl[method] as (...args: unknown[]) => unknown,
      retry: resolveRetry(this.application.retry, m.retry),
      timeoutMs: m.timeoutMs ?? (m.kind === "workflow" ? Infinity : (this.application.timeoutMs ?? 60_000)),
    };
  }

  /** Why a method cannot be resolved, for the task's error. */
  describeMissing(stateType: string, method: string): string {
    if (!this.#types.has(stateType))
      return `The state type ${stateType} does not exist in code version ${this.id}; the task waits for a version that has it.`;
    return `The method ${stateType}.${method} does not exist in code version ${this.id}; the task waits for a version that has it.`;
  }
}
