import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/** AES-256-GCM: 96-bit random IV, 128-bit tag; the sealed form is IV || ciphertext || tag. */
const ivLength = 12;
const tagLength = 16;
export const keyLength = 32;

export function seal(key: Buffer, plaintext: Buffer, aad: string): Buffer {
  const iv = randomBytes(ivLength);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: tagLength });
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]);
}

/** Open a sealed buffer; throws when the key, the associated data or the bytes are wrong. */
export function open(key: Buffer, sealed: Buffer, aad: string): Buffer {
  if (sealed.length < ivLength + tagLength) throw new Error('sealed value is too short');
  const iv = sealed.subarray(0, ivLength);
  const tag = sealed.subarray(sealed.length - tagLength);
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: tagLength });
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(tag);
  return Buffer.concat([
    decipher.update(sealed.subarray(ivLength, sealed.length - tagLength)),
    decipher.final(),
  ]);
}

/** A master key's public name: the first 16 hex digits of its SHA-256 (never the key). */
export function keyId(key: Buffer): string {
  return createHash('sha256').update('custos-vault-master-key').update(key).digest('hex').slice(0, 16);
}

/** Associated data binding a wrapped data key and a value to the secret's name and version. */
export function wrapAad(name: string, version: number): string {
  return `custos-vault/v1/key\u0000${name}\u0000${version}`;
}

export function valueAad(name: string, version: number): string {
  return `custos-vault/v1/value\u0000${name}\u0000${version}`;
}
