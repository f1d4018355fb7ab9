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
 * Signs and checks webhook decision links: base64url(JSON claim) "." base64url(HMAC-SHA256).
 * The signature makes a link unforgeable; the stored nonce makes it single use.
 */
export class LinkSigner {
  constructor(private readonly key: Buffer) {}

  mint(claim: Omit<LinkClaim, 'nonce'>): { token: string; claim: LinkClaim } {
    const full: LinkClaim = { ...claim, nonce: randomBytes(16).toString('base64url') };
    const body = Buffer.from(
      JSON.stringify([full.approvalId, full.approver, full.decision, full.expiresAt, full.nonce]),
    ).toString('base64url');
    return { token: `${body}.${this.sign(body)}`, claim: full };
  }

  /** The claim of a well-formed, correctly signed token (expiry and use are checked by the caller). */
  verify(token: string): LinkClaim | undefined {
    const [body, signature, extra] = token.split('.');
    if (body === undefined || signature === undefined || extra !== undefined) return undefined;
    const expected = Buffer.from(this.sign(body));
    const given = Buffer.from(signature);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return undefined;
    try {
      const [approvalId, approver, decision, expiresAt, nonce] = JSON.parse(
        Buffer.from(body, 'base64url').toString('utf8'),
      ) as unknown[];
      if (
        typeof approvalId !== 'string' ||
        typeof approver !== 'string' ||
        (decision !== 'approve' && decision !== 'deny') ||
        typeof expiresAt !== 'number' ||
        typeof nonce !== 'string'
      ) {
        return undefined;
      }
      return { approvalId, approver, decision, expiresAt, nonce };
    } catch {
      return undefined;
    }
  }

  private sign(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url');
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
