import { describe, expect, it } from 'vitest';
import { LoginThrottle } from './login-throttle.js';

describe('LoginThrottle', () => {
  it('refuses an account from an address after its failures, until the window ends', () => {
    let now = 0;
    const throttle = new LoginThrottle({ windowMs: 60_000, perAccount: 3, perAddress: 100, now: () => now });
    for (let i = 0; i < 3; i++) {
      expect(throttle.retryAfter('a@example.com', '10.0.0.1')).toBe(0);
      throttle.failed('A@example.com', '10.0.0.1');
    }
    expect(throttle.retryAfter('a@example.com', '10.0.0.1')).toBe(60);
    // Another address, or another account, is not held back by these failures.
    expect(throttle.retryAfter('a@example.com', '10.0.0.2')).toBe(0);
    expect(throttle.retryAfter('b@example.com', '10.0.0.1')).toBe(0);
    now = 45_000;
    expect(throttle.retryAfter('a@example.com', '10.0.0.1')).toBe(15);
    now = 60_000;
    expect(throttle.retryAfter('a@example.com', '10.0.0.1')).toBe(0);
  });

  it('limits one address across many accounts', () => {
    const throttle = new LoginThrottle({ perAccount: 100, perAddress: 5, now: () => 0 });
    for (let i = 0; i < 5; i++) throttle.failed(`user${i}@example.com`, '10.0.0.9');
    expect(throttle.retryAfter('someone-else@example.com', '10.0.0.9')).toBeGreaterThan(0);
  });

  it('a success clears the account’s count', () => {
    const throttle = new LoginThrottle({ perAccount: 2, now: () => 0 });
    throttle.failed('c@example.com', '10.0.0.3');
    throttle.succeeded('c@example.com', '10.0.0.3');
    throttle.failed('c@example.com', '10.0.0.3');
    expect(throttle.retryAfter('c@example.com', '10.0.0.3')).toBe(0);
  });
});
