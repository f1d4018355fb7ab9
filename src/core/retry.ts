/** How often and how patiently to try a delivery (a webhook POST). */
export interface RetryPolicy {
  /** Tries in all, the first included (1: no retry). */
  readonly attempts: number;
  /** Wait before the second try, in ms; each later wait doubles, up to `maxDelayMs`. */
  readonly backoffMs: number;
  readonly maxDelayMs?: number;
}

export const defaultRetry: RetryPolicy = Object.freeze({ attempts: 3, backoffMs: 500, maxDelayMs: 10_000 });

/**
 * Run `attempt` until it resolves or the tries run out, waiting with exponential backoff
 * (with up to 20% jitter, so many senders do not retry in step) between tries. Resolves to
 * the result and how many tries it took; rejects with the last error, `attempts` set on it.
 */
export async function withRetry<T>(
  policy: RetryPolicy,
  attempt: (n: number) => Promise<T>,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<{ result: T; attempts: number }> {
  const tries = Math.max(1, Math.floor(policy.attempts));
  let delay = policy.backoffMs;
  for (let n = 1; ; n += 1) {
    try {
      return { result: await attempt(n), attempts: n };
    } catch (error) {
      if (n >= tries) {
        if (error instanceof Error) Object.assign(error, { attempts: n });
        throw error;
      }
    }
    await sleep(Math.round(delay * (1 + Math.random() * 0.2)));
    delay = Math.min(delay * 2, policy.maxDelayMs ?? Number.POSITIVE_INFINITY);
  }
}
