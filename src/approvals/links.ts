import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** What a one-time decision link says: this person may decide this approval this way until then. */
export interface LinkClaim {
  readonly approvalId: string;
  readonly approver: string;
  readonly decision: 'approve' | 'deny';
  readonly expiresAt: number;
  /** Random, stored, and marked used when the link is used. */
  readonly nonce: string;
}

/**
 * Signs and checks webhook decision links: "<nonce>.<HMAC-SHA256 of the claim>", short enough
 * for any URL. The claim itself is stored under its nonce; the signature makes a link
 * unforgeable (and binds it to exactly that stored claim), the stored nonce makes it single use.
 */
export class LinkSigner {
  constructor(private readonly key: Buffer) {}

  mint(claim: Omit<LinkClaim, 'nonce'>): { token: string; claim: LinkClaim } {
    const full: LinkClaim = { ...claim, nonce: randomBytes(16).toString('base64url') };
    return { token: `${full.nonce}.${this.sign(full)}`, claim: full };
  }

  /** The nonce and signature of a well-formed token. */
  parse(token: string): { nonce: string; signature: string } | undefined {
    const match = /^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/.exec(token);
    return match === null ? undefined : { nonce: match[1] as string, signature: match[2] as string };
  }

  /** Whether the signature is the one this key gives the stored claim (constant time). */
  check(claim: LinkClaim, signature: string): boolean {
    const expected = Buffer.from(this.sign(claim));
    const given = Buffer.from(signature);
    return expected.length === given.length && timingSafeEqual(expected, given);
  }

  private sign(claim: LinkClaim): string {
    const text = JSON.stringify([
      claim.nonce,
      claim.approvalId,
      claim.approver,
      claim.decision,
      claim.expiresAt,
    ]);
    return createHmac('sha256', this.key).update(text).digest('base64url');
  }
}

/** The link-signing key kept in the data directory (created at first use, mode 0600). */
export function loadLinkKey(dataDir: string): Buffer {
  const file = join(dataDir, 'approval-link-key');
  if (existsSync(file)) return Buffer.from(readFileSync(file, 'utf8').trim(), 'base64url');
  mkdirSync(dataDir, { recursive: true });
  const key = randomBytes(32);
  writeFileSync(file, `${key.toString('base64url')}\n`, { mode: 0o600 });
  return key;
}
