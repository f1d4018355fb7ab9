/**
 * C2SP signed-note (https://c2sp.org/signed-note), the envelope of tlog checkpoints:
 * a UTF-8 text ending in a newline, a blank line, then one or more signature lines
 * `— <key name> <base64(key id || signature)>`. Only Ed25519 keys (signature type
 * 0x01) are supported, in the vkey/skey text formats of golang.org/x/mod/sumdb/note.
 *
 * Parsing and verifying untrusted notes return result values; parsing a key or
 * signing a malformed text throws, because keys and texts come from this
 * installation's own configuration and code.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  randomBytes,
  sign as signBytes,
  verify as verifyBytes,
} from 'node:crypto';
import { CustosError } from '../core/errors.js';

const SIGNATURE_PREFIX = '\u2014 '; // em dash and a space
const ALG_ED25519 = 0x01;
const ED25519_KEY_SIZE = 32;
const ED25519_SIGNATURE_SIZE = 64;
const KEY_ID_SIZE = 4;
const SIGNER_KEY_PREFIX = 'PRIVATE+KEY+';
/** Go's note.Open refuses more; so do we, to bound the work an untrusted note can cause. */
export const MAX_SIGNATURES = 100;
/** Upper bound on a whole note in bytes; a checkpoint is a few hundred. */
export const MAX_NOTE_BYTES = 1 << 20;

/** RFC 8410 DER prefixes that wrap a raw 32-byte Ed25519 key for node:crypto. */
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

/** One signature line of a note. */
export interface NoteSignature {
  /** Key name, typically the log origin, e.g. `custos.example.com/audit`. */
  readonly name: string;
  /** First 4 bytes of the key's hash, as an unsigned 32-bit number. */
  readonly keyId: number;
  /** The signature proper, without the key id. */
  readonly signature: Buffer;
}

/** A note: its text (ending in a newline) and its signatures. */
export interface Note {
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

/** A public key that checks signatures on notes. */
export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  /** The key in vkey form, `<name>+<hex key id>+<base64(0x01 || public key)>`. */
  readonly verifierKey: string;
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

/** A private key that signs notes. */
export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  /** The matching verifier. */
  readonly verifier: NoteVerifier;
  sign(message: Uint8Array): Buffer;
}

/** Why a note was not accepted. */
export type NoteFailureCode =
  /** The note breaks the signed-note syntax. */
  | 'malformed_note'
  /** No signature is by a key the caller trusts. */
  | 'unknown_key'
  /** A signature by a trusted key does not verify. */
  | 'bad_signature';

export type NoteParse =
  | { readonly ok: true; readonly note: Note }
  | { readonly ok: false; readonly code: 'malformed_note'; readonly message: string };

export type NoteVerification =
  | {
      readonly ok: true;
      readonly note: Note;
      /** Signatures by trusted keys, all verified. */
      readonly verified: readonly NoteSignature[];
      /** Signatures by keys the caller did not pass (for example other witnesses). */
      readonly unverified: readonly NoteSignature[];
    }
  | { readonly ok: false; readonly code: NoteFailureCode; readonly message: string };

/** Key id = first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key), big-endian. */
export function computeKeyId(name: string, publicKey: Uint8Array): number {
  const digest = createHash('sha256')
    .update(name, 'utf8')
    .update(Uint8Array.of(0x0a, ALG_ED25519))
    .update(publicKey)
    .digest();
  return digest.readUInt32BE(0);
}

function formatKeyId(keyId: number): string {
  return keyId.toString(16).padStart(8, '0');
}

/** Base64 (standard alphabet, padded) decoding that accepts only the canonical encoding. */
function decodeBase64(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

// A lone surrogate has no UTF-8 encoding; Buffer.from would replace it silently.
const LONE_SURROGATE = /\p{Cs}/u;
/** C0 controls other than newline, and DEL. */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if ((code < 0x20 && code !== 0x0a) || code === 0x7f) return true;
  }
  return false;
}
// Unicode spaces as Go's unicode.IsSpace sees them (JavaScript's \s misses U+0085).
const SPACE = /[\s\u0085]/u;

function checkKeyName(name: string): string | undefined {
  if (name.length === 0) return 'key name is empty';
  if (name.includes('+')) return `key name ${JSON.stringify(name)} contains '+'`;
  if (SPACE.test(name)) return `key name ${JSON.stringify(name)} contains a space`;
  if (hasControl(name) || LONE_SURROGATE.test(name))
    return `key name ${JSON.stringify(name)} is not printable UTF-8`;
  return undefined;
}

function checkText(text: string): string | undefined {
  if (text.length === 0) return 'note text is empty';
  if (!text.endsWith('\n')) return 'note text does not end with a newline';
  if (LONE_SURROGATE.test(text)) return 'note text is not valid UTF-8';
  if (hasControl(text)) return 'note text contains a control character';
  return undefined;
}

function invalidKey(message: string): CustosError {
  return new CustosError('config_invalid', message);
}

function verifierFor(name: string, publicKey: Buffer): NoteVerifier {
  const keyId = computeKeyId(name, publicKey);
  const key: KeyObject = createPublicKey({
    key: Buffer.concat([SPKI_ED25519, publicKey]),
    format: 'der',
    type: 'spki',
  });
  const encoded = Buffer.concat([Uint8Array.of(ALG_ED25519), publicKey]).toString('base64');
  return Object.freeze({
    name,
    keyId,
    verifierKey: `${name}+${formatKeyId(keyId)}+${encoded}`,
    verify(message: Uint8Array, signature: Uint8Array): boolean {
      return signature.length === ED25519_SIGNATURE_SIZE && verifyBytes(null, message, key, signature);
    },
  });
}

function signerFor(name: string, seed: Buffer): NoteSigner {
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' });
  const publicKey = createPublicKey(key)
    .export({ format: 'der', type: 'spki' })
    .subarray(SPKI_ED25519.length);
  const verifier = verifierFor(name, publicKey);
  return Object.freeze({
    name,
    keyId: verifier.keyId,
    verifier,
    sign: (message: Uint8Array): Buffer => signBytes(null, message, key),
  });
}

/** Split `<name>+<hex id>+<base64>` (the base64 may itself contain '+') and check each part. */
function splitKey(text: string, what: string): { name: string; keyId: number; keyData: Buffer } {
  const first = text.indexOf('+');
  const second = first < 0 ? -1 : text.indexOf('+', first + 1);
  if (second < 0) throw invalidKey(`${what} is not in the form <name>+<hex key id>+<base64 key>`);
  const name = text.slice(0, first);
  const idHex = text.slice(first + 1, second);
  const nameProblem = checkKeyName(name);
  if (nameProblem !== undefined) throw invalidKey(`${what}: ${nameProblem}`);
  if (!/^[0-9a-fA-F]{8}$/.test(idHex))
    throw invalidKey(`${what}: key id ${JSON.stringify(idHex)} is not 8 hex digits`);
  const keyData = decodeBase64(text.slice(second + 1));
  if (keyData === undefined) throw invalidKey(`${what}: key is not canonical base64`);
  if (keyData[0] !== ALG_ED25519) {
    throw invalidKey(
      `${what}: unsupported signature type ${keyData[0] ?? 'none'}, only Ed25519 (1) is supported`,
    );
  }
  if (keyData.length !== 1 + ED25519_KEY_SIZE) {
    throw invalidKey(`${what}: an Ed25519 key is ${ED25519_KEY_SIZE} bytes, got ${keyData.length - 1}`);
  }
  return { name, keyId: Number.parseInt(idHex, 16), keyData: keyData.subarray(1) };
}

/** Parse a verifier key `<name>+<hex key id>+<base64(0x01 || public key)>`; throws config_invalid. */
export function parseVerifierKey(verifierKey: string): NoteVerifier {
  const { name, keyId, keyData } = splitKey(verifierKey, 'verifier key');
  const verifier = verifierFor(name, Buffer.from(keyData));
  if (verifier.keyId !== keyId) {
    throw invalidKey(
      `verifier key: key id ${formatKeyId(keyId)} does not match the key (${formatKeyId(verifier.keyId)})`,
    );
  }
  return verifier;
}

/** Parse a signer key `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`; throws config_invalid. */
export function parseSignerKey(signerKey: string): NoteSigner {
  if (!signerKey.startsWith(SIGNER_KEY_PREFIX))
    throw invalidKey(`signer key does not start with ${SIGNER_KEY_PREFIX}`);
  const { name, keyId, keyData } = splitKey(signerKey.slice(SIGNER_KEY_PREFIX.length), 'signer key');
  const signer = signerFor(name, Buffer.from(keyData));
  if (signer.keyId !== keyId) {
    throw invalidKey(
      `signer key: key id ${formatKeyId(keyId)} does not match the key (${formatKeyId(signer.keyId)})`,
    );
  }
  return signer;
}

/**
 * A new Ed25519 key pair for `name`, as signer key (keep secret) and verifier key
 * (publish to auditors). `random` is injectable so tests get fixed keys.
 */
export function generateSignerKey(
  name: string,
  random: (n: number) => Buffer = randomBytes,
): { signerKey: string; verifierKey: string } {
  const nameProblem = checkKeyName(name);
  if (nameProblem !== undefined) throw invalidKey(nameProblem);
  const seed = random(ED25519_KEY_SIZE);
  const signer = signerFor(name, seed);
  const encodedSeed = Buffer.concat([Uint8Array.of(ALG_ED25519), seed]).toString('base64');
  return {
    signerKey: `${SIGNER_KEY_PREFIX}${name}+${formatKeyId(signer.keyId)}+${encodedSeed}`,
    verifierKey: signer.verifier.verifierKey,
  };
}

function malformed(message: string): { ok: false; code: 'malformed_note'; message: string } {
  return { ok: false, code: 'malformed_note', message };
}

function parseSignatureLine(line: string, lineNumber: number): NoteSignature | string {
  const where = `signature line ${lineNumber}`;
  if (!line.startsWith(SIGNATURE_PREFIX)) return `${where} does not start with "— "`;
  const rest = line.slice(SIGNATURE_PREFIX.length);
  const space = rest.indexOf(' ');
  if (space < 0) return `${where} has no space between key name and signature`;
  const name = rest.slice(0, space);
  const nameProblem = checkKeyName(name);
  if (nameProblem !== undefined) return `${where}: ${nameProblem}`;
  const bytes = decodeBase64(rest.slice(space + 1));
  if (bytes === undefined) return `${where}: signature is not canonical base64`;
  if (bytes.length <= KEY_ID_SIZE) return `${where}: signature is too short`;
  return { name, keyId: bytes.readUInt32BE(0), signature: Buffer.from(bytes.subarray(KEY_ID_SIZE)) };
}

/**
 * Parse a signed note without checking signatures. The text is everything up to the
 * last blank line (so the text itself may contain blank lines, as in Go's note.Open).
 */
export function parseNote(message: string | Uint8Array): NoteParse {
  let text: string;
  if (typeof message === 'string') {
    text = message;
  } else {
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(message);
    } catch {
      return malformed('note is not valid UTF-8');
    }
  }
  if (Buffer.byteLength(text, 'utf8') > MAX_NOTE_BYTES)
    return malformed(`note is larger than ${MAX_NOTE_BYTES} bytes`);
  if (LONE_SURROGATE.test(text)) return malformed('note is not valid UTF-8');
  if (hasControl(text)) return malformed('note contains a control character');
  if (!text.endsWith('\n')) return malformed('note does not end with a newline');
  const split = text.lastIndexOf('\n\n');
  if (split < 0) return malformed('note has no blank line before its signatures');
  const body = text.slice(0, split + 1);
  const block = text.slice(split + 2);
  if (block.length === 0) return malformed('note has no signatures');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) return malformed(`note has more than ${MAX_SIGNATURES} signatures`);
  const signatures: NoteSignature[] = [];
  for (const [i, line] of lines.entries()) {
    const parsed = parseSignatureLine(line, i + 1);
    if (typeof parsed === 'string') return malformed(parsed);
    signatures.push(parsed);
  }
  return { ok: true, note: { text: body, signatures } };
}

/** The signature line for one signature, without its newline. */
export function formatSignatureLine(signature: NoteSignature): string {
  const bytes = Buffer.alloc(KEY_ID_SIZE + signature.signature.length);
  bytes.writeUInt32BE(signature.keyId >>> 0, 0);
  bytes.set(signature.signature, KEY_ID_SIZE);
  return `${SIGNATURE_PREFIX}${signature.name} ${bytes.toString('base64')}`;
}

/** Serialize a note; throws bad_request for a text or signature that could not be parsed back. */
export function formatNote(note: Note): string {
  const textProblem = checkText(note.text);
  if (textProblem !== undefined) throw new CustosError('bad_request', textProblem);
  if (note.signatures.length === 0)
    throw new CustosError('bad_request', 'a note needs at least one signature');
  if (note.signatures.length > MAX_SIGNATURES) {
    throw new CustosError('bad_request', `a note carries at most ${MAX_SIGNATURES} signatures`);
  }
  const lines = note.signatures.map((signature) => {
    const nameProblem = checkKeyName(signature.name);
    if (nameProblem !== undefined) throw new CustosError('bad_request', nameProblem);
    if (signature.signature.length === 0) throw new CustosError('bad_request', 'signature is empty');
    return `${formatSignatureLine(signature)}\n`;
  });
  return `${note.text}\n${lines.join('')}`;
}

/**
 * Sign a text, or add signatures to an already signed note (cosigning), and return
 * the signed note. Throws bad_request for a text that is not a valid note text.
 */
export function signNote(note: string | Note, signers: readonly NoteSigner[]): string {
  const base: Note = typeof note === 'string' ? { text: note, signatures: [] } : note;
  const textProblem = checkText(base.text);
  if (textProblem !== undefined) throw new CustosError('bad_request', textProblem);
  const message = Buffer.from(base.text, 'utf8');
  const added = signers.map((signer) => ({
    name: signer.name,
    keyId: signer.keyId,
    signature: signer.sign(message),
  }));
  return formatNote({ text: base.text, signatures: [...base.signatures, ...added] });
}

function describeKey(signature: NoteSignature): string {
  return `${signature.name}+${formatKeyId(signature.keyId)}`;
}

/**
 * Parse a signed note and verify it against trusted keys: accepted when at least
 * one signature is by a trusted key and every signature by a trusted key verifies
 * (one bad signature by a trusted key rejects the note). Signatures by other keys are
 * returned unverified. Of several signatures by the same key, the first decides.
 */
export function openNote(message: string | Uint8Array, verifiers: readonly NoteVerifier[]): NoteVerification {
  const parsed = parseNote(message);
  if (!parsed.ok) return parsed;
  const { note } = parsed;
  const text = Buffer.from(note.text, 'utf8');
  const verified: NoteSignature[] = [];
  const unverified: NoteSignature[] = [];
  const seen = new Set<NoteVerifier>();
  for (const signature of note.signatures) {
    const verifier = verifiers.find((v) => v.name === signature.name && v.keyId === signature.keyId);
    if (verifier === undefined) {
      unverified.push(signature);
      continue;
    }
    if (seen.has(verifier)) continue;
    seen.add(verifier);
    if (!verifier.verify(text, signature.signature)) {
      return {
        ok: false,
        code: 'bad_signature',
        message: `signature by ${describeKey(signature)} does not verify`,
      };
    }
    verified.push(signature);
  }
  if (verified.length === 0) {
    const signers = note.signatures.map(describeKey).join(', ');
    return {
      ok: false,
      code: 'unknown_key',
      message: `note is not signed by a trusted key (signed by ${signers})`,
    };
  }
  return { ok: true, note, verified, unverified };
}
