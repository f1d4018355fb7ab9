import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Client secrets are 256 random bits, shown to the operator once and stored only as a
 * scrypt hash with a per-secret salt. The parameters travel inside the stored string
 * (`scrypt$LOG2N$R$P$SALT$HASH`, base64url), so they can be raised later without
 * invalidating existing secrets.
 */
const secretPrefix = 'custos_sk_';
const keyLength = 32;
const defaultCost = { log2n: 15, r: 8, p: 1 };

export interface ScryptCost {
  /** log2 of the CPU/memory cost N. */
  readonly log2n: number;
  readonly r: number;
  readonly p: number;
}

/** A fresh client secret; the prefix lets secret scanners recognise a leaked one. */
export function generateClientSecret(): string {
  return `${secretPrefix}${randomBytes(32).toString('base64url')}`;
}

function derive(secret: string, salt: Buffer, cost: ScryptCost): Promise<Buffer> {
  const n = 2 ** cost.log2n;
  return new Promise((resolve, reject) => {
    scrypt(
      secret,
      salt,
      keyLength,
      { N: n, r: cost.r, p: cost.p, maxmem: 256 * n * cost.r + 1024 * 1024 },
      (error, key) => (error ? reject(error) : resolve(key)),
    );
  });
}

/** The storable hash of a client secret. */
export async function hashClientSecret(secret: string, cost: ScryptCost = defaultCost): Promise<string> {
  const salt = randomBytes(16);
  const hash = await derive(secret, salt, cost);
  return ['scrypt', cost.log2n, cost.r, cost.p, salt.toString('base64url'), hash.toString('base64url')].join(
    '$',
  );
}

/** Whether a presented secret matches a stored hash; the comparison runs in constant time. */
export async function verifyClientSecret(secret: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [log2n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (![log2n, r, p].every((v) => Number.isInteger(v) && v > 0) || log2n > 20) return false;
  const salt = Buffer.from(parts[4] as string, 'base64url');
  const expected = Buffer.from(parts[5] as string, 'base64url');
  const actual = await derive(secret, salt, { log2n, r, p });
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

let dummyHash: Promise<string> | undefined;

/**
 * Spend the same work as a real verification, for requests naming an unknown client, so
 * response time does not tell which client ids exist.
 */
export async function burnVerification(secret: string): Promise<void> {
  dummyHash ??= hashClientSecret(generateClientSecret());
  await verifyClientSecret(secret, await dummyHash);
}
