/** What a replay cache says about a one-time value (a jti). */
export type ReplayVerdict = 'fresh' | 'replayed' | 'too_old';

/**
 * Remembers one-time values (client assertion and DPoP proof jtis) until the time after
 * which the JWT carrying them is expired anyway, in a bounded amount of memory.
 *
 * When full, it forgets entries (expired ones first, then the oldest) and raises a floor:
 * a value whose expiry is at or below the floor is refused as `too_old`, because the cache
 * may have forgotten it. So eviction never opens a replay; under overload the acceptance
 * window shrinks instead. Lives in one process: replicas each keep their own.
 */
export class ReplayCache {
  private readonly seen = new Map<string, number>();
  private floor = Number.NEGATIVE_INFINITY;

  constructor(private readonly maxEntries: number) {}

  /**
   * Record `key`, valid until `until` (ms). `fresh` the first time; `replayed` while a
   * previous use is remembered; `too_old` when the cache can no longer tell.
   */
  remember(key: string, until: number, now: number): ReplayVerdict {
    const previous = this.seen.get(key);
    if (previous !== undefined && previous > now) return 'replayed';
    if (until <= this.floor) return 'too_old';
    if (this.seen.size >= this.maxEntries) this.evict(now);
    this.seen.set(key, until);
    return 'fresh';
  }

  get size(): number {
    return this.seen.size;
  }

  /** Drop expired entries, then the oldest until a tenth of the room is free (amortised O(1)). */
  private evict(now: number): void {
    for (const [key, until] of this.seen) if (until <= now) this.seen.delete(key);
    const target = Math.floor(this.maxEntries * 0.9);
    for (const [key, until] of this.seen) {
      if (this.seen.size <= target) break;
      this.seen.delete(key);
      if (until > this.floor) this.floor = until;
    }
  }
}
