/**
 * Console login attempts, counted in memory per (email, client address) and per client
 * address. Past the limit a login is refused before any password work, until the window
 * ends. Keyed on the pair, a stranger guessing at someone's password does not lock the
 * real person out from their own address.
 */
export interface LoginThrottleOptions {
  windowMs?: number;
  /** Failures allowed per email and address within the window. */
  perAccount?: number;
  /** Failures allowed per address within the window, across emails. */
  perAddress?: number;
  now?: () => number;
}

interface Window {
  start: number;
  failures: number;
}

const maxEntries = 100_000;

export class LoginThrottle {
  private readonly windows = new Map<string, Window>();
  private readonly windowMs: number;
  private readonly perAccount: number;
  private readonly perAddress: number;
  private readonly now: () => number;

  constructor(options: LoginThrottleOptions = {}) {
    this.windowMs = options.windowMs ?? 15 * 60_000;
    this.perAccount = options.perAccount ?? 10;
    this.perAddress = options.perAddress ?? 50;
    this.now = options.now ?? Date.now;
  }

  /** Seconds until another attempt is allowed, or 0 when one is allowed now. */
  retryAfter(email: string, address: string): number {
    const now = this.now();
    let wait = 0;
    for (const [key, limit] of this.keys(email, address)) {
      const w = this.windows.get(key);
      if (w !== undefined && now - w.start < this.windowMs && w.failures >= limit) {
        wait = Math.max(wait, Math.ceil((w.start + this.windowMs - now) / 1000));
      }
    }
    return wait;
  }

  failed(email: string, address: string): void {
    const now = this.now();
    if (this.windows.size >= maxEntries) this.prune(now);
    for (const [key] of this.keys(email, address)) {
      const w = this.windows.get(key);
      if (w === undefined || now - w.start >= this.windowMs)
        this.windows.set(key, { start: now, failures: 1 });
      else w.failures += 1;
    }
  }

  /** A successful login clears its account's count (not the address's). */
  succeeded(email: string, address: string): void {
    this.windows.delete(`account:${email.toLowerCase()}|${address}`);
  }

  private keys(email: string, address: string): Array<[string, number]> {
    return [
      [`account:${email.toLowerCase()}|${address}`, this.perAccount],
      [`address:${address}`, this.perAddress],
    ];
  }

  private prune(now: number): void {
    for (const [key, w] of this.windows) if (now - w.start >= this.windowMs) this.windows.delete(key);
    // Still full of live windows: forget the oldest half rather than grow without bound.
    if (this.windows.size >= maxEntries) {
      let drop = this.windows.size / 2;
      for (const key of this.windows.keys()) {
        if (drop-- <= 0) break;
        this.windows.delete(key);
      }
    }
  }
}
