import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { CustosError } from '../../core/errors.js';

/**
 * The PKCE code verifier of an open connection is kept in the store sealed under a key derived
 * from the `state` parameter, and the state itself is stored only as its SHA-256. The state
 * travels to the provider and back in the browser's redirect; it is never written down, so the
 * store alone (a backup, a dump) cannot unseal a verifier. A connection started by the CLI can
 * then be finished by any Custos process that shares the store, with nothing held in memory.
 */
const info = Buffer.from('custos oauth pkce verifier v1');

function keyOf(state: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(state, 'utf8'), Buffer.alloc(0), info, 32));
}

/** Where a connection is found: SHA-256 of its state, hex. */
export function stateHash(state: string): string {
  return createHash('sha256').update(state, 'utf8').digest('hex');
}

/** AES-256-GCM: base64url of iv (12 bytes), ciphertext and tag (16 bytes). */
export function sealVerifier(state: string, verifier: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyOf(state), iv);
  const body = Buffer.concat([cipher.update(verifier, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

export function unsealVerifier(state: string, sealed: string): string {
  const raw = Buffer.from(sealed, 'base64url');
  if (raw.length < 29) throw new CustosError('oauth_connect_invalid', 'the connection record is damaged');
  const decipher = createDecipheriv('aes-256-gcm', keyOf(state), raw.subarray(0, 12));
  decipher.setAuthTag(raw.subarray(raw.length - 16));
  try {
    return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString(
      'utf8',
    );
  } catch (error) {
    throw new CustosError('oauth_connect_invalid', 'the connection record does not open with this state', {
      cause: error,
    });
  }
}
