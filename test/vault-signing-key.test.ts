import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompactSign, compactVerify } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import { SigningKeys } from '../src/identity/index.js';
import { openStore } from '../src/store/index.js';
import { Vault } from '../src/vault/index.js';

describe('the token signing private key lives in the vault', () => {
  const dir = mkdtempSync(join(tmpdir(), 'custos-signing-vault-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('moves a plain-JSON private key written before the vault into it, keeping the kid', async () => {
    const file = join(dir, 'custos.db');
    const store = await openStore(`sqlite:${file}`);
    const clock = new ManualClock();
    // A key as Custos stored it before the vault: plain JSON in signing_keys.
    const before = new SigningKeys(store, clock);
    await before.load();
    const kid = before.current().kid;
    const plain = await store.db.selectFrom('signing_keys').select('private_jwk').executeTakeFirstOrThrow();
    const d = (JSON.parse(plain.private_jwk) as { d: string }).d;
    expect(d.length).toBeGreaterThan(20);

    const vault = await Vault.open({ store, clock, dataDir: dir, env: {} });
    const after = new SigningKeys(store, clock, vault);
    await after.load();
    expect(after.current().kid).toBe(kid);
    const row = await store.db.selectFrom('signing_keys').select('private_jwk').executeTakeFirstOrThrow();
    expect(row.private_jwk).toBe(`vault:custos/signing-key/${kid}`);
    expect((await vault.get(`custos/signing-key/${kid}`))?.kind).toBe('signing_key');
    // The moved key still signs what the public key verifies.
    const jws = await new CompactSign(new TextEncoder().encode('hello'))
      .setProtectedHeader({ alg: 'EdDSA' })
      .sign(after.current().privateKey);
    const { payload } = await compactVerify(jws, before.current().publicKey);
    expect(new TextDecoder().decode(payload)).toBe('hello');
    // A fresh key is created straight into the vault; the private part is in no file in plaintext.
    await store.db.deleteFrom('signing_keys').execute();
    const fresh = new SigningKeys(store, clock, vault);
    await fresh.load();
    const freshRow = await store.db
      .selectFrom('signing_keys')
      .select('private_jwk')
      .executeTakeFirstOrThrow();
    expect(freshRow.private_jwk.startsWith('vault:')).toBe(true);
    await store.close();
    for (const f of ['custos.db', 'custos.db-wal']) {
      try {
        expect(readFileSync(join(dir, f)).includes(Buffer.from(d))).toBe(false);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
  });
});
