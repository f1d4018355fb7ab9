import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { LinkSigner } from './links.js';

const claim = {
  approvalId: 'apr_1',
  approver: 'alice@example.com',
  decision: 'approve' as const,
  expiresAt: 1000,
};

describe('webhook link signing', () => {
  it('signs a claim so that only the stored claim checks', () => {
    const signer = new LinkSigner(randomBytes(32));
    const { token, claim: minted } = signer.mint(claim);
    const parsed = signer.parse(token);
    expect(parsed?.nonce).toBe(minted.nonce);
    expect(signer.check(minted, parsed?.signature ?? '')).toBe(true);
    expect(signer.check({ ...minted, decision: 'deny' }, parsed?.signature ?? '')).toBe(false);
    expect(signer.check({ ...minted, approver: 'mallory@example.com' }, parsed?.signature ?? '')).toBe(false);
    expect(signer.check({ ...minted, expiresAt: 2000 }, parsed?.signature ?? '')).toBe(false);
  });

  it('refuses another key’s signatures and malformed tokens', () => {
    const signer = new LinkSigner(randomBytes(32));
    const other = new LinkSigner(randomBytes(32));
    const { token, claim: minted } = other.mint(claim);
    expect(signer.check(minted, signer.parse(token)?.signature ?? '')).toBe(false);
    expect(signer.parse('short.token')).toBeUndefined();
    expect(signer.parse(`${token}.x`)).toBeUndefined();
    expect(token.length).toBeLessThanOrEqual(100);
  });
});
