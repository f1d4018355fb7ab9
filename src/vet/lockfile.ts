import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Config } from '../core/config.js';
import { CustosError } from '../core/errors.js';
import type { Lockfile } from './pins.js';

export function emptyLockfile(): Lockfile {
  return { lockfileVersion: 1, servers: {} };
}

/** Read a pin lockfile; a missing file is an empty one, a malformed one an error (never "no pins"). */
export function readLockfile(path: string): Lockfile {
  if (!existsSync(path)) return emptyLockfile();
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new CustosError(
      'config_invalid',
      `the pin lockfile ${path} is not valid JSON: ${(error as Error).message}`,
    );
  }
  const lock = parsed as Partial<Lockfile>;
  if (lock?.lockfileVersion !== 1 || typeof lock.servers !== 'object' || lock.servers === null) {
    throw new CustosError('config_invalid', `the pin lockfile ${path} is not a version 1 Custos lockfile`);
  }
  return lock as Lockfile;
}

/** Write the lockfile atomically (temp file, then rename), servers in name order for clean diffs. */
export function writeLockfile(path: string, lock: Lockfile): void {
  const servers = Object.fromEntries(Object.entries(lock.servers).sort(([a], [b]) => a.localeCompare(b)));
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ lockfileVersion: 1, servers }, null, 2)}\n`);
  renameSync(tmp, path);
}

/** Where pins live: an explicit path, else vet.lockfile from the configuration, else custos.lock.json beside it. */
export function lockfilePath(config: Pick<Config, 'baseDir' | 'vet'>, override?: string): string {
  if (override) return resolve(override);
  return resolve(config.baseDir, config.vet.lockfile ?? 'custos.lock.json');
}
