import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { CustosError } from '../core/errors.js';
import { keyId, keyLength } from './crypto.js';

/** The master keys a vault may unwrap with: the current one, and during a rotation the next. */
export interface MasterKeyring {
  /** The key new data keys are wrapped with. */
  readonly current: MasterKey;
  /** Every key this process can unwrap with, by id. */
  readonly keys: ReadonlyMap<string, Buffer>;
  /** Where the key lives: the environment or a file (rotation writes the file). */
  readonly source: { kind: 'env' } | { kind: 'file'; path: string };
}

export interface MasterKey {
  readonly id: string;
  readonly key: Buffer;
}

export const masterKeyEnv = 'CUSTOS_MASTER_KEY';

export function masterKeyPath(dataDir: string): string {
  return join(dataDir, 'master-key');
}

/** The file a rotation writes before re-wrapping; it replaces master-key once the transaction commits. */
export function nextMasterKeyPath(dataDir: string): string {
  return join(dataDir, 'master-key.next');
}

/** Parse base64 of exactly 32 bytes; the message never contains the input. */
export function parseMasterKey(text: string, where: string): Buffer {
  const trimmed = text.trim();
  const key = Buffer.from(trimmed, 'base64');
  if (key.length !== keyLength || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    throw new CustosError('config_invalid', `${where} must be base64 of 32 random bytes`, {
      detail: { fix: 'generate one with: openssl rand -base64 32' },
    });
  }
  return key;
}

/** A new random master key, base64. */
export function generateMasterKey(): string {
  return randomBytes(keyLength).toString('base64');
}

/** Write a key file with mode 0600 and flush it to disk before returning. */
export function writeKeyFile(path: string, key: Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, `${key.toString('base64')}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/**
 * The master key from CUSTOS_MASTER_KEY, else from <dataDir>/master-key (created with mode
 * 0600 on first use). A master-key.next left by an interrupted rotation is loaded too, so
 * every data key stays readable whichever side of the rotation's transaction it is on.
 */
export function loadMasterKeyring(dataDir: string, env: NodeJS.ProcessEnv = process.env): MasterKeyring {
  const fromEnv = env[masterKeyEnv];
  if (fromEnv !== undefined && fromEnv !== '') {
    const key = parseMasterKey(fromEnv, masterKeyEnv);
    const extra = env.CUSTOS_MASTER_KEY_PREVIOUS;
    const keys = new Map([[keyId(key), key]]);
    if (extra) {
      const previous = parseMasterKey(extra, 'CUSTOS_MASTER_KEY_PREVIOUS');
      keys.set(keyId(previous), previous);
    }
    return { current: { id: keyId(key), key }, keys, source: { kind: 'env' } };
  }
  const path = masterKeyPath(dataDir);
  if (!existsSync(path)) writeKeyFile(path, randomBytes(keyLength));
  const key = parseMasterKey(readFileSync(path, 'utf8'), path);
  const keys = new Map([[keyId(key), key]]);
  const next = nextMasterKeyPath(dataDir);
  if (existsSync(next)) {
    const pending = parseMasterKey(readFileSync(next, 'utf8'), next);
    keys.set(keyId(pending), pending);
  }
  return { current: { id: keyId(key), key }, keys, source: { kind: 'file', path } };
}
