/** How long to wait before retrying a task that failed unexpectedly. */
export interface RetryPolicy {
  /** @defaultValue 1000 */
  initialMs: number;
  /** @defaultValue 30000 */
  maxMs: number;
  /** @defaultValue 2 */
  multiplier: number;
  /** Full jitter: wait a random time up to the delay, so that failing tasks spread out. @defaultValue true */
  jitter: boolean;
}

export const DEFAULT_RETRY: RetryPolicy = { initialMs: 1000, maxMs: 30_000, multiplier: 2, jitter: true };

export function resolveRetry(...layers: (Partial<RetryPolicy> | undefined)[]): RetryPolicy {
  const policy = { ...DEFAULT_RETRY };
  for (const layer of layers)
    for (const key of ["initialMs", "maxMs", "multiplier"] as const) {
      const v = layer?.[key];
      if (v !== undefined && Number.isFinite(v) && v >= 0) policy[key] = v;
    }
  for (const layer of layers) if (typeof layer?.jitter === "boolean") policy.jitter = layer.jitter;
  return policy;
}

/**
 * The delay before retry number `step` (0 for the first retry): full jitter over an
 * exponentially growing cap, as Reboot does. `random` is in [0, 1).
 */
export function retryDelay(step: number, policy: RetryPolicy, random: number = Math.random()): number {
  const cap = Math.min(policy.maxMs, policy.initialMs * policy.multiplier ** Math.max(0, step));
  return Math.round(policy.jitter ? cap * random : cap);
}
