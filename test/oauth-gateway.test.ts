import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tokenSecretNames } from '../src/vault/index.js';
import { startTestCustos, type TestCustos } from './support/custos.js';
import { consentAtProvider, startTestOAuth, type TestOAuth } from './support/oauth-provider.js';

/**
 * The OAuth broker end to end: a human connects through the admin API and the provider's
 * consent pages, the redirect comes back to Custos, and agents call a real OAuth-protected
 * API through /proxy with the brokered token injected (they never hold it).
 */
const clientSecret = 'client secret of custos at the test provider';
const machineSecret = 'machine client secret at the test provider';
const policy = `
@id("api-all")
permit(principal, action == Action::"http_request", resource in Server::"tickets");
@id("machine-all")
permit(principal, action == Action::"http_request", resource in Server::"machine");
`;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

describe('OAuth broker through the gateway (/proxy)', { timeout: 60_000 }, () => {
  let oauth: TestOAuth;
  let t: TestCustos;
  let agent = '';
  let base = '';

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    // A 300 s token refreshed 295 s ahead: stale 5 s after it is issued, so the test sees an expiry.
    oauth = await startTestOAuth({
      accessTokenTtl: 300,
      clients: [
        {
          client_id: 'custos',
          client_secret: clientSecret,
          grant_types: ['authorization_code', 'refresh_token'],
          redirect_uris: [`${base}/oauth/callback/tickets`],
        },
        {
          client_id: 'custos-machine',
          client_secret: machineSecret,
          grant_types: ['client_credentials'],
          scope: 'api:read',
        },
      ],
    });
    t = await startTestCustos({
      servers: {},
      policies: { 'api.cedar': policy },
      agents: [{ name: 'worker' }],
      extra: {
        listen: { host: '127.0.0.1', port },
        // Fifty identical calls at once is what the runaway detectors stop; this test is about the broker.
        detect: {
          ceiling: { action: 'off' },
          anomaly: { action: 'off' },
          denials: { action: 'off' },
          loop: { action: 'off' },
          bytes: { action: 'off' },
        },
        apis: {
          tickets: { url: oauth.apiUrl, credential: 'oauth:tickets' },
          machine: { url: oauth.apiUrl, credential: 'oauth:machine' },
        },
        oauth: {
          refreshSkewSeconds: 295,
          credentials: {
            tickets: {
              issuer: oauth.issuer,
              clientId: 'custos',
              clientSecret: 'tickets-oauth-client',
              scopes: ['api:read'],
            },
            machine: {
              issuer: oauth.issuer,
              clientId: 'custos-machine',
              clientSecret: 'machine-oauth-client',
              grant: 'client_credentials',
              scopes: ['api:read'],
              refreshSkewSeconds: 0,
            },
          },
        },
      },
    });
    await t.custos.vault.set('tickets-oauth-client', clientSecret);
    await t.custos.vault.set('machine-oauth-client', machineSecret);
    agent = await t.token('worker');
  }, 60_000);

  afterAll(async () => {
    await t?.close();
    await oauth?.close();
  });

  const call = (api: string, path: string, method = 'GET') =>
    fetch(`${t.url}/proxy/${api}${path}`, { method, headers: { authorization: `Bearer ${agent}` } });

  it('before any connection, a call fails with oauth_not_connected', async () => {
    const res = await call('tickets', '/items');
    const body = (await res.json()) as { error: { code: string } };
    expect(body.error.code).toBe('oauth_not_connected');
  });

  it('connects through the admin API and the provider, then injects the token; 50 calls during expiry refresh once', async () => {
    const start = await t.admin<{ kind: string; url: string; redirectUri: string }>(
      '/api/v1/oauth/credentials/tickets/connect',
      { method: 'POST' },
    );
    expect(start.kind).toBe('redirect');
    expect(start.redirectUri).toBe(`${base}/oauth/callback/tickets`);
    const callback = await consentAtProvider(start.url, start.redirectUri, 'owner@example.com');
    const page = await fetch(callback);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Connected tickets');
    // The redirect is single use.
    expect((await fetch(callback)).status).toBe(400);

    const first = await call('tickets', '/items');
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({
      ok: true,
      subject: 'owner@example.com',
      scopes: ['api:read'],
    });

    const refreshes = oauth.grants.refresh_token ?? 0;
    await new Promise((r) => setTimeout(r, 5500));
    const answers = await Promise.all(Array.from({ length: 50 }, () => call('tickets', '/items')));
    expect(answers.map((a) => a.status)).toEqual(Array(50).fill(200));
    expect((oauth.grants.refresh_token ?? 0) - refreshes).toBe(1);

    const list = await t.admin<{
      credentials: Array<{ name: string; status: string; refreshCount: number }>;
    }>('/api/v1/oauth/credentials');
    expect(list.credentials.find((c) => c.name === 'tickets')).toMatchObject({
      status: 'connected',
      refreshCount: 1,
    });
    // Connecting is an audit event, with who did it.
    const events = await t.custos.store.db
      .selectFrom('audit_events')
      .select(['method', 'target', 'owner'])
      .where('method', 'like', 'oauth/%')
      .execute();
    expect(events).toContainEqual({ method: 'oauth/connect', target: 'tickets', owner: 'admin token' });
  });

  it('the tokens appear nowhere in plaintext: logs, audit records, admin answers, the database file', async () => {
    const names = tokenSecretNames('tickets');
    const tokens = [await t.custos.vault.reveal(names.access), await t.custos.vault.reveal(names.refresh)];
    const listed = JSON.stringify(await t.admin('/api/v1/oauth/credentials'));
    const audit = JSON.stringify([
      await t.custos.store.db.selectFrom('audit_events').selectAll().execute(),
      await t.custos.store.db.selectFrom('audit_content').selectAll().execute(),
    ]);
    const logs = JSON.stringify(t.logs);
    const { readFileSync, existsSync } = await import('node:fs');
    const files = [t.dbFile, `${t.dbFile}-wal`]
      .filter((f) => existsSync(f))
      .map((f) => readFileSync(f).toString('latin1'));
    for (const token of tokens) {
      expect(token).toBeTruthy();
      const value = token ?? '';
      expect(listed).not.toContain(value);
      expect(audit).not.toContain(value);
      expect(logs).not.toContain(value);
      for (const file of files) expect(file.includes(value)).toBe(false);
    }
  });

  it('reports insufficient_scope as such, distinct from a rejected token', async () => {
    const write = await call('tickets', '/items', 'POST');
    expect(write.status).toBe(403);
    expect(write.headers.get('www-authenticate')).toBeNull();
    const body = (await write.json()) as { error: { code: string; detail?: { scope?: string } } };
    expect(body.error.code).toBe('upstream_insufficient_scope');
    expect(body.error.detail?.scope).toBe('api:write');

    // A token the API no longer accepts (here: replaced in the vault by one it never issued).
    await t.custos.vault.set(tokenSecretNames('tickets').access, 'not-a-token-the-provider-issued', {
      kind: 'oauth_access_token',
    });
    await t.custos.store.db
      .updateTable('oauth_credentials')
      .set({ generation: 99 })
      .where('name', '=', 'tickets')
      .execute();
    await new Promise((r) => setTimeout(r, 2100));
    const rejected = await call('tickets', '/items');
    expect(rejected.status).toBe(502);
    expect(((await rejected.json()) as { error: { code: string } }).error.code).toBe(
      'upstream_token_rejected',
    );
    // The rejected token is not used again: the next call refreshes and succeeds.
    const again = await call('tickets', '/items');
    expect(again.status).toBe(200);
  });

  it('client credentials: a token is obtained without a human and injected', async () => {
    const before = oauth.grants.client_credentials ?? 0;
    const answers = await Promise.all(Array.from({ length: 20 }, () => call('machine', '/status')));
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
    expect(await answers[0]?.json()).toMatchObject({ ok: true, subject: 'custos-machine' });
    expect((oauth.grants.client_credentials ?? 0) - before).toBe(1);
  });

  it('disconnect deletes the tokens; calls fail with oauth_not_connected again', async () => {
    await t.admin('/api/v1/oauth/credentials/tickets/disconnect', { method: 'POST' });
    await new Promise((r) => setTimeout(r, 2100));
    const res = await call('tickets', '/items');
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('oauth_not_connected');
  });
});
