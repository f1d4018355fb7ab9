import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import { IdGenerator } from '../core/ids.js';
import { openStore, type Store } from '../store/index.js';
import { AgentService } from './agents.js';
import { AgentDirectory } from './directory.js';
import { verifyClientSecret } from './secrets.js';

const support = { name: 'support-bot', owner: 'alice@example.com', purpose: 'answer support tickets' };

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof CustosError) return error.code;
    throw error;
  }
  return 'no error';
}

describe('AgentService', () => {
  let store: Store;
  let clock: ManualClock;
  let directory: AgentDirectory;
  let agents: AgentService;

  beforeEach(async () => {
    store = await openStore('sqlite::memory:');
    clock = new ManualClock();
    directory = new AgentDirectory(store);
    agents = new AgentService({ store, clock, ids: new IdGenerator(clock), directory });
  });
  afterEach(() => store.close());

  it('returns the client secret once and stores only its scrypt hash', async () => {
    const added = await agents.add(support);
    expect(added.clientSecret).toMatch(/^custos_sk_[A-Za-z0-9_-]{43}$/);
    expect(added.clientId).toBe(added.agent.id);
    const rows = await store.db.selectFrom('agent_credentials').selectAll().execute();
    expect(rows).toHaveLength(1);
    const hash = rows[0]?.secret_hash ?? '';
    expect(hash).toMatch(/^scrypt\$15\$8\$1\$/);
    expect(hash).not.toContain(added.clientSecret);
    expect(await verifyClientSecret(added.clientSecret as string, hash)).toBe(true);
    expect(await verifyClientSecret(`${added.clientSecret}x`, hash)).toBe(false);
    // Reading the agent back never shows the secret or its hash again.
    const shown = JSON.stringify([
      await agents.get(added.agent.id),
      await agents.listCredentials('support-bot'),
    ]);
    expect(shown).not.toContain(added.clientSecret);
    expect(shown).not.toContain('scrypt');
  });

  it('fills defaults and treats times as integer milliseconds', async () => {
    const { agent } = await agents.add(support);
    // Every agent has an expiry: the default of 90 days unless onboarding names one.
    expect(agent).toMatchObject({
      environment: 'development',
      status: 'active',
      epoch: 0,
      expiresAt: clock.now() + 90 * 86_400_000,
    });
    expect(agent.createdAt).toBe(clock.now());
    expect(await agents.get('support-bot')).toEqual(agent);
    expect(await agents.get(agent.id)).toEqual(agent);
    expect(await agents.get('nobody')).toBeUndefined();
  });

  it('rejects an owner that is not an email, an empty purpose and a bad name', async () => {
    expect(await codeOf(agents.add({ ...support, owner: 'alice' }))).toBe('bad_request');
    expect(await codeOf(agents.add({ ...support, purpose: '  ' }))).toBe('bad_request');
    expect(await codeOf(agents.add({ ...support, name: 'Support Bot' }))).toBe('bad_request');
    expect(await agents.list()).toEqual([]);
  });

  it('refuses a second agent with the same name with code conflict', async () => {
    await agents.add(support);
    expect(await codeOf(agents.add({ ...support, owner: 'bob@example.com' }))).toBe('conflict');
  });

  it('lists agents filtered by status and owner', async () => {
    await agents.add(support);
    await agents.add({ ...support, name: 'triage', owner: 'bob@example.com' });
    await agents.suspend('triage');
    expect((await agents.list()).map((a) => a.name)).toEqual(['support-bot', 'triage']);
    expect((await agents.list({ status: 'suspended' })).map((a) => a.name)).toEqual(['triage']);
    expect((await agents.list({ owner: 'alice@example.com' })).map((a) => a.name)).toEqual(['support-bot']);
  });

  it('bumps the epoch on suspend, keeps it on resume, and refuses to resume an offboarded agent', async () => {
    const { agent } = await agents.add(support);
    const suspended = await agents.suspend(agent.id);
    expect(suspended).toMatchObject({ status: 'suspended', epoch: 1, active: false });
    expect(directory.get(agent.id)).toMatchObject({ status: 'suspended', epoch: 1 });
    expect((await agents.suspend(agent.id)).epoch).toBe(1);
    const resumed = await agents.resume('support-bot');
    expect(resumed).toMatchObject({ status: 'active', epoch: 1, active: true });
    const offboarded = await agents.offboard(agent.id);
    expect(offboarded).toMatchObject({ status: 'offboarded', epoch: 2 });
    expect(await codeOf(agents.resume(agent.id))).toBe('agent_offboarded');
    expect(await codeOf(agents.suspend(agent.id))).toBe('agent_offboarded');
    expect(await codeOf(agents.suspend('nobody'))).toBe('not_found');
  });

  it('revokes every credential and erases its secret material when offboarding', async () => {
    const { agent } = await agents.add(support);
    await agents.addCredential(agent.id, { kind: 'client_secret' });
    await agents.offboard(agent.id);
    const credentials = await agents.listCredentials(agent.id);
    expect(credentials).toHaveLength(2);
    expect(credentials.every((c) => c.revokedAt === clock.now())).toBe(true);
    const rows = await store.db
      .selectFrom('agent_credentials')
      .select(['secret_hash', 'public_jwk'])
      .execute();
    expect(rows).toEqual([
      { secret_hash: null, public_jwk: null },
      { secret_hash: null, public_jwk: null },
    ]);
  });

  it('treats an agent past its expiry time as inactive', async () => {
    const { agent } = await agents.add({ ...support, expiresAt: clock.now() + 60_000 });
    expect(agent.active).toBe(true);
    clock.advance(60_000);
    expect((await agents.get(agent.id))?.active).toBe(false);
    expect(await codeOf(agents.add({ ...support, name: 'late', expiresAt: clock.now() - 1 }))).toBe(
      'bad_request',
    );
  });

  it('registers a public key for private_key_jwt and refuses private key material', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const added = await agents.add({
      ...support,
      credential: { kind: 'public_key', jwk: await exportJWK(publicKey) },
    });
    expect(added.clientSecret).toBeUndefined();
    expect(added.credential.publicJwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256' });
    const privateJwk = await exportJWK(privateKey);
    expect(
      await codeOf(
        agents.add({ ...support, name: 'leaky', credential: { kind: 'public_key', jwk: privateJwk } }),
      ),
    ).toBe('bad_request');
    const weakJwk = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    expect(
      await codeOf(
        agents.add({ ...support, name: 'weak', credential: { kind: 'public_key', jwk: weakJwk } }),
      ),
    ).toBe('bad_request');
  });
});

describe('AgentDirectory', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'custos-directory-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("sees this process's writes at once and other processes' writes after refresh", async () => {
    const url = `sqlite:${join(dir, 'custos.db')}`;
    const server = await openStore(url);
    const cli = await openStore(url);
    try {
      const clock = new ManualClock();
      const directory = new AgentDirectory(server);
      await directory.refresh();
      const serverAgents = new AgentService({ store: server, clock, ids: new IdGenerator(clock), directory });
      const cliAgents = new AgentService({ store: cli, clock, ids: new IdGenerator(clock) });
      const { agent } = await serverAgents.add(support);
      expect(directory.get(agent.id)?.status).toBe('active');
      clock.advance(1);
      await cliAgents.suspend(agent.id);
      expect(directory.get(agent.id)?.status).toBe('active');
      await directory.refresh();
      expect(directory.get(agent.id)).toMatchObject({ status: 'suspended', epoch: 1 });
      clock.advance(1);
      await cliAgents.resume(agent.id);
      await directory.refresh();
      expect(directory.get(agent.id)).toMatchObject({ status: 'active', epoch: 1 });
    } finally {
      await server.close();
      await cli.close();
    }
  });

  it('keeps a newer local state over an older row from a refresh', async () => {
    const store = await openStore('sqlite::memory:');
    try {
      const clock = new ManualClock();
      const directory = new AgentDirectory(store);
      const agents = new AgentService({ store, clock, ids: new IdGenerator(clock), directory });
      const { agent } = await agents.add(support);
      const before = directory.get(agent.id);
      await agents.suspend(agent.id);
      directory.observe(before as NonNullable<typeof before>);
      expect(directory.get(agent.id)?.status).toBe('suspended');
    } finally {
      await store.close();
    }
  });
});
