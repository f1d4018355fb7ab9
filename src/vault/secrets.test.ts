import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeEachStore } from '../../test/support/stores.js';
import { ManualClock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import { generateMasterKey, masterKeyPath, Vault } from './index.js';
import { nextMasterKeyPath } from './master-key.js';

let dataDir = '';
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'custos-vault-'));
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

const noEnv = {};

await describeEachStore('vault', (current) => {
  it('stores a value encrypted and reveals it; metadata never carries the value', async () => {
    const { store } = current();
    const vault = await Vault.open({ store, clock: new ManualClock(), dataDir, env: noEnv });
    const meta = await vault.set('gh-token', 'ghp_sentinel_value_1', {
      kind: 'api_key',
      metadata: { upstream: 'github' },
    });
    expect(meta).toMatchObject({
      name: 'gh-token',
      kind: 'api_key',
      version: 1,
      metadata: { upstream: 'github' },
    });
    expect(JSON.stringify(meta)).not.toContain('ghp_sentinel_value_1');
    expect(await vault.reveal('gh-token')).toBe('ghp_sentinel_value_1');
    const row = await store.db
      .selectFrom('vault_secrets')
      .selectAll()
      .where('name', '=', 'gh-token')
      .executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain('ghp_sentinel_value_1');
    expect(JSON.stringify(row)).not.toContain(Buffer.from('ghp_sentinel_value_1').toString('base64'));
    expect(await vault.reveal('missing')).toBeUndefined();
    expect((await vault.list({ prefix: 'gh' })).map((s) => s.name)).toContain('gh-token');
    await vault.delete('gh-token');
  });

  it('creates the master key file with mode 0600 on first open', async () => {
    const { store } = current();
    await Vault.open({ store, clock: new ManualClock(), dataDir, env: noEnv });
    expect(statSync(masterKeyPath(dataDir)).mode & 0o777).toBe(0o600);
  });

  it('rotate makes the next reveal return the new value and bumps the version', async () => {
    const { store } = current();
    const vault = await Vault.open({ store, clock: new ManualClock(), dataDir, env: noEnv });
    await vault.set('rot', 'old-value');
    const rotated = await vault.rotate('rot', 'new-value');
    expect(rotated.version).toBe(2);
    expect(await vault.reveal('rot')).toBe('new-value');
    await expect(vault.rotate('nope', 'x')).rejects.toMatchObject({ code: 'not_found' });
    await vault.delete('rot');
  });

  it('a ciphertext moved to another secret name does not open (AAD binds name and version)', async () => {
    const { store } = current();
    const vault = await Vault.open({ store, clock: new ManualClock(), dataDir, env: noEnv });
    await vault.set('aad-a', 'value-a');
    await vault.set('aad-b', 'value-b');
    const a = await store.db
      .selectFrom('vault_secrets')
      .selectAll()
      .where('name', '=', 'aad-a')
      .executeTakeFirstOrThrow();
    await store.db
      .updateTable('vault_secrets')
      .set({ wrapped_key: a.wrapped_key, ciphertext: a.ciphertext })
      .where('name', '=', 'aad-b')
      .execute();
    await expect(vault.reveal('aad-b')).rejects.toMatchObject({ code: 'vault_locked' });
    await store.db
      .updateTable('vault_secrets')
      .set({ version: a.version + 1 })
      .where('name', '=', 'aad-a')
      .execute();
    await expect(vault.reveal('aad-a')).rejects.toMatchObject({ code: 'vault_locked' });
    await vault.delete('aad-a');
    await vault.delete('aad-b');
  });

  it('refuses a wrong master key with vault_locked, never a wrong value', async () => {
    const { store } = current();
    const key = generateMasterKey();
    const vault = await Vault.open({
      store,
      clock: new ManualClock(),
      dataDir,
      env: { CUSTOS_MASTER_KEY: key },
    });
    await vault.set('locked', 'value');
    const other = await Vault.open({
      store,
      clock: new ManualClock(),
      dataDir,
      env: { CUSTOS_MASTER_KEY: generateMasterKey() },
    });
    const error = await other.reveal('locked').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CustosError);
    expect((error as CustosError).code).toBe('vault_locked');
    await vault.delete('locked');
  });

  it('rejects a malformed CUSTOS_MASTER_KEY with a clear error', async () => {
    const { store } = current();
    await expect(
      Vault.open({ store, clock: new ManualClock(), dataDir, env: { CUSTOS_MASTER_KEY: 'c2hvcnQ=' } }),
    ).rejects.toMatchObject({ code: 'config_invalid' });
  });

  it('rotates the master key: every data key is re-wrapped, every value still opens, the old key no longer does', async () => {
    const { store } = current();
    const vault = await Vault.open({ store, clock: new ManualClock(), dataDir, env: noEnv });
    const oldKeyFile = readFileSync(masterKeyPath(dataDir), 'utf8');
    for (let i = 0; i < 5; i++) await vault.set(`mk-${i}`, `value-${i}`);
    const result = await vault.rotateMasterKey();
    expect(result.rewrapped).toBeGreaterThanOrEqual(5);
    expect(result.keyId).not.toBe(result.previousKeyId);
    expect(existsSync(nextMasterKeyPath(dataDir))).toBe(false);
    expect(readFileSync(masterKeyPath(dataDir), 'utf8')).not.toBe(oldKeyFile);
    const reopened = await Vault.open({ store, clock: new ManualClock(), dataDir, env: noEnv });
    for (let i = 0; i < 5; i++) expect(await reopened.reveal(`mk-${i}`)).toBe(`value-${i}`);
    const stale = await Vault.open({
      store,
      clock: new ManualClock(),
      dataDir,
      env: { CUSTOS_MASTER_KEY: oldKeyFile.trim() },
    });
    await expect(stale.reveal('mk-0')).rejects.toMatchObject({ code: 'vault_locked' });
    for (let i = 0; i < 5; i++) await vault.delete(`mk-${i}`);
  });

  it('a crash before the re-wrap commits leaves the old key in force; a crash after it finishes the swap', async () => {
    const { store } = current();
    const vault = await Vault.open({ store, clock: new ManualClock(), dataDir, env: noEnv });
    await vault.set('crash-1', 'v1');
    // Crash before commit: master-key.next written, rows untouched.
    writeFileSync(nextMasterKeyPath(dataDir), `${generateMasterKey()}\n`, { mode: 0o600 });
    const afterEarlyCrash = await Vault.open({ store, clock: new ManualClock(), dataDir, env: noEnv });
    expect(existsSync(nextMasterKeyPath(dataDir))).toBe(false);
    expect(await afterEarlyCrash.reveal('crash-1')).toBe('v1');
    // Crash after commit, before the rename: simulate by rotating, then restoring the old file as master-key.
    const oldKey = readFileSync(masterKeyPath(dataDir), 'utf8');
    await afterEarlyCrash.rotateMasterKey();
    const newKey = readFileSync(masterKeyPath(dataDir), 'utf8');
    writeFileSync(nextMasterKeyPath(dataDir), newKey, { mode: 0o600 });
    writeFileSync(masterKeyPath(dataDir), oldKey, { mode: 0o600 });
    const afterLateCrash = await Vault.open({ store, clock: new ManualClock(), dataDir, env: noEnv });
    expect(existsSync(nextMasterKeyPath(dataDir))).toBe(false);
    expect(readFileSync(masterKeyPath(dataDir), 'utf8')).toBe(newKey);
    expect(await afterLateCrash.reveal('crash-1')).toBe('v1');
    await vault.delete('crash-1');
  });

  it('rejects bad names, empty and oversized values', async () => {
    const { store } = current();
    const vault = await Vault.open({ store, clock: new ManualClock(), dataDir, env: noEnv });
    await expect(vault.set('bad name', 'x')).rejects.toMatchObject({ code: 'bad_request' });
    await expect(vault.set('ok', '')).rejects.toMatchObject({ code: 'bad_request' });
    await expect(vault.set('ok', 'x'.repeat(64 * 1024 + 1))).rejects.toMatchObject({ code: 'bad_request' });
  });
});
