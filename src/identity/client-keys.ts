import { createPublicKey } from 'node:crypto';
import type { JWK } from 'jose';
import { CustosError } from '../core/errors.js';

/** Signature algorithms an agent may use for private_key_jwt client assertions (RFC 7523). */
export type ClientKeyAlgorithm = 'EdDSA' | 'ES256' | 'RS256';

export const clientAssertionAlgorithms: readonly string[] = ['EdDSA', 'Ed25519', 'ES256', 'RS256'];

/** A registered public key: only the public members, with the algorithm it must be used with. */
export interface ClientPublicKey {
  readonly jwk: JWK;
  readonly alg: ClientKeyAlgorithm;
}

const privateMembers = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/**
 * Check a JWK an operator registers for an agent and keep only its public members.
 * Accepted: Ed25519 (OKP), P-256 (EC, ES256) and RSA of at least 2048 bits (RS256).
 */
export function parseClientPublicKey(input: unknown): ClientPublicKey {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new CustosError('bad_request', 'the public key must be a JWK object');
  }
  const jwk = input as Record<string, unknown>;
  if (privateMembers.some((member) => member in jwk)) {
    throw new CustosError(
      'bad_request',
      'the JWK contains private key material; register the public key only',
    );
  }
  const str = (name: string): string => {
    const value = jwk[name];
    if (typeof value !== 'string' || value === '') {
      throw new CustosError('bad_request', `the JWK lacks "${name}"`);
    }
    return value;
  };
  let pub: JWK;
  let alg: ClientKeyAlgorithm;
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') {
    pub = { kty: 'OKP', crv: 'Ed25519', x: str('x') };
    alg = 'EdDSA';
  } else if (jwk.kty === 'EC' && jwk.crv === 'P-256') {
    pub = { kty: 'EC', crv: 'P-256', x: str('x'), y: str('y') };
    alg = 'ES256';
  } else if (jwk.kty === 'RSA') {
    pub = { kty: 'RSA', n: str('n'), e: str('e') };
    alg = 'RS256';
  } else {
    throw new CustosError('bad_request', 'unsupported key type: use Ed25519 (OKP), P-256 (EC) or RSA');
  }
  if (jwk.alg !== undefined && jwk.alg !== alg && !(alg === 'EdDSA' && jwk.alg === 'Ed25519')) {
    throw new CustosError(
      'bad_request',
      `the JWK says alg "${String(jwk.alg)}" but its key type needs ${alg}`,
    );
  }
  if (typeof jwk.kid === 'string') pub.kid = jwk.kid;
  let keyObject: ReturnType<typeof createPublicKey>;
  try {
    keyObject = createPublicKey({ key: pub as import('node:crypto').JsonWebKey, format: 'jwk' });
  } catch (error) {
    throw new CustosError('bad_request', 'the JWK is not a valid public key', { cause: error });
  }
  if (alg === 'RS256' && (keyObject.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
    throw new CustosError('bad_request', 'RSA keys must have at least 2048 bits');
  }
  return { jwk: { ...pub, alg }, alg };
}
