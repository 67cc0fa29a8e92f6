import type { Auth } from "./context.js";
import { PermissionDenied } from "./errors.js";

// Who may call a state type's methods from outside the application (Reboot's authorizers).
// Calls between methods inside the application are not checked again.

const DECISION = Symbol.for("mend.decision");

/** What an authorizer returns: `allow()`, `deny()`, or an Error (which denies, with its message). */
export type Decision = { readonly [DECISION]: "allow" } | { readonly [DECISION]: "deny"; readonly message?: string } | Error;

/** Lets the call through. */
export function allow(): Decision {
  return { [DECISION]: "allow" };
}

/** Refuses the call: it gets PermissionDenied (HTTP 403 `PERMISSION_DENIED`). */
export function deny(message?: string): Decision {
  return message === undefined ? { [DECISION]: "deny" } : { [DECISION]: "deny", message };
}

/** What an authorizer is asked about: one call from outside. */
export interface AuthorizerCall {
  /** From the bearer token, by the application's `tokenVerifier`; undefined without a token, or when it was refused. */
  auth: Auth | undefined;
  stateType: string;
  stateId: string;
  method: string;
  /** The request, validated by its schema. */
  request: unknown;
}

export type Authorizer = (call: AuthorizerCall) => Decision | Promise<Decision>;

/**
 * Turns a token into `ctx.auth` (Reboot's token verifier). Returning undefined or null means
 * "not authenticated": the call goes on without `auth`, and the authorizer decides.
 */
export type TokenVerifier = (token: string) => Auth | undefined | null | Promise<Auth | undefined | null>;

/** Asks an authorizer; throws PermissionDenied unless it allows. An authorizer that throws denies. */
export async function checkAuthorized(authorizer: Authorizer, call: AuthorizerCall): Promise<void> {
  const what = `${call.stateType}.${call.method}`;
  let decision: unknown;
  try {
    decision = await authorizer(call);
  } catch (e) {
    throw new PermissionDenied(`The authorizer of ${call.stateType} threw while deciding on ${what}: ${(e as Error)?.message ?? String(e)}`);
  }
  const verdict = decisionOf(decision);
  if (verdict.allowed) return;
  throw new PermissionDenied(verdict.message ?? `The authorizer of ${call.stateType} does not allow this call of ${what}.`);
}

/** A decision as plain data; anything that is not `allow()` denies. */
export function decisionOf(decision: unknown): { allowed: boolean; message?: string } {
  if (decision instanceof Error) return { allowed: false, message: decision.message };
  if (typeof decision === "object" && decision !== null && DECISION in decision) {
    const d = decision as { [DECISION]: string; message?: string };
    if (d[DECISION] === "allow") return { allowed: true };
    return d.message === undefined ? { allowed: false } : { allowed: false, message: d.message };
  }
  return { allowed: false, message: `An authorizer must return allow(), deny() or an Error, not ${typeof decision === "object" ? JSON.stringify(decision) : String(decision)}.` };
}
