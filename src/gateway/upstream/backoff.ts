/** How a supervised upstream waits between reconnection attempts. */
export interface BackoffPolicy {
  /** Delay before the first retry after a failure. */
  initialMs: number;
  /** The delay doubles per consecutive failure up to this ceiling. */
  maxMs: number;
  /** A connection that stayed up this long counts as healthy: the next failure starts over at initialMs. */
  stableAfterMs: number;
  /** Give up (status 'failed') after this many failed attempts in a row; Infinity retries forever. */
  maxConsecutiveFailures: number;
}

export const defaultBackoff: Readonly<BackoffPolicy> = Object.freeze({
  initialMs: 500,
  maxMs: 30_000,
  stableAfterMs: 60_000,
  maxConsecutiveFailures: Number.POSITIVE_INFINITY,
});

/** The delay before retry number `failures` (0-based): initialMs doubling up to maxMs. */
export function backoffDelay(policy: BackoffPolicy, failures: number): number {
  return Math.min(policy.maxMs, policy.initialMs * 2 ** Math.max(0, failures));
}
