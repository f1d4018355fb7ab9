import { afterAll, beforeAll, expect, it } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import { buildConfig } from '../src/core/config.js';
import { CustosError } from '../src/core/errors.js';
import { openStore, type Store } from '../src/store/index.js';
import { classifyRefusal, OAuthBroker, tokenSecretNames } from '../src/vault/broker/index.js';
import { generateMasterKey, Vault } from '../src/vault/index.js';
import { consentAtProvider, startTestOAuth, type TestOAuth } from './support/oauth-provider.js';
import { describeEachStore } from './support/stores.js';

/**
 * The OAuth broker against a real authorization server (oidc-provider on loopback) and a
 * resource API that verifies its tokens. Token grants are counted by the provider itself.
 */
const baseUrl = 'http://127.0.0.1:7400';
const secrets = {
  web: 'web client secret for the test provider',
  machine: 'machine client secret for the test',
};
const masterKey = generateMasterKey();

async function expectCode(promise: Promise<unknown>, code: string): Promise<CustosError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(CustosError);
    expect((error as CustosError).code).toBe(code);
    return error as CustosError;
  }
  throw new Error(`expected a rejection with ${code}`);
}

await describeEachStore('oauth_broker', (current) => {
  let oauth: TestOAuth;
  let clock: ManualClock;
  let other: Store;
  let brokers: [OAuthBroker, OAuthBroker];
  let vault: Vault;

  const clients = ['tickets', 'rotating'] as const;
  /** The two brokers in turn, so concurrent callers are spread over both processes' stores. */
  const pick = (i: number): OAuthBroker => brokers[i % 2] as OAuthBroker;

  beforeAll(async () => {
    oauth = await startTestOAuth({
      accessTokenTtl: 300,
      rotatingClients: ['custos-rotating'],
      clients: [
        ...clients.map((c) => ({
          client_id: `custos-${c}`,
          client_secret: secrets.web,
          grant_types: ['authorization_code', 'refresh_token'],
          redirect_uris: [`${baseUrl}/oauth/callback/${c}`],
        })),
        {
          client_id: 'custos-machine',
          client_secret: secrets.machine,
          grant_types: ['client_credentials'],
          scope: 'api:read',
        },
      ],
    });
    const config = buildConfig(
      {
        oauth: {
          refreshSkewSeconds: 60,
          credentials: {
            tickets: {
              issuer: oauth.issuer,
              clientId: 'custos-tickets',
              clientSecret: 'tickets-client',
              scopes: ['api:read'],
            },
            rotating: {
              issuer: oauth.issuer,
              clientId: 'custos-rotating',
              clientSecret: 'tickets-client',
              scopes: ['api:read', 'api:write'],
            },
            machine: {
              issuer: oauth.issuer,
              clientId: 'custos-machine',
              clientSecret: 'machine-client',
              grant: 'client_credentials',
              scopes: ['api:read'],
            },
          },
        },
      },
      process.cwd(),
      { env: {} },
    );
    clock = new ManualClock(Date.now());
    const env = { CUSTOS_MASTER_KEY: masterKey };
    vault = await Vault.open({ store: current().store, clock, dataDir: '/nonexistent', env });
    other = await openStore(current().url);
    const otherVault = await Vault.open({ store: other, clock, dataDir: '/nonexistent', env });
    await vault.set('tickets-client', secrets.web);
    await vault.set('machine-client', secrets.machine);
    const make = (store: Store, v: Vault) =>
      new OAuthBroker({ store, clock, secrets: v, config: config.oauth, baseUrl, pollMs: 20 });
    brokers = [make(current().store, vault), make(other, otherVault)];
  }, 60_000);

  afterAll(async () => {
    await other?.close();
    await oauth?.close();
  });

  async function connect(name: string, broker = brokers[0]) {
    const start = await broker.connect(name, 'alice@example.com');
    if (start.kind !== 'redirect') throw new Error('expected a redirect');
    const callback = await consentAtProvider(start.url, start.redirectUri, 'alice@example.com');
    return { start, callback, status: await broker.finishConnect(name, callback) };
  }

  it('connects with authorization code and PKCE (S256), storing the tokens encrypted in the vault', async () => {
    const { start, status } = await connect('tickets');
    const url = new URL(start.url);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(url.searchParams.get('redirect_uri')).toBe(`${baseUrl}/oauth/callback/tickets`);
    expect(status).toMatchObject({
      status: 'connected',
      hasRefreshToken: true,
      connectedBy: 'alice@example.com',
    });
    expect(oauth.grants.authorization_code).toBe(1);
    const token = await brokers[0].accessToken('tickets');
    const answer = await fetch(`${oauth.apiUrl}/tickets`, { headers: { authorization: `Bearer ${token}` } });
    expect(answer.status).toBe(200);
    // Stored encrypted: neither token appears in any vault or broker row.
    const names = tokenSecretNames('tickets');
    const refresh = await vault.reveal(names.refresh);
    expect(refresh).toBeTruthy();
    const rows = JSON.stringify([
      await current().store.db.selectFrom('vault_secrets').selectAll().execute(),
      await current().store.db.selectFrom('oauth_credentials').selectAll().execute(),
      await current().store.db.selectFrom('oauth_connects').selectAll().execute(),
    ]);
    expect(rows).not.toContain(token);
    expect(rows).not.toContain(refresh);
    expect(rows).not.toContain(url.searchParams.get('state'));
  });

  it('refuses a replayed, forged or foreign callback', async () => {
    const start = await brokers[0].connect('tickets', 'alice@example.com');
    if (start.kind !== 'redirect') throw new Error('expected a redirect');
    const forged = new URL(`${start.redirectUri}?code=made-up&state=made-up`);
    await expectCode(brokers[0].finishConnect('tickets', forged), 'oauth_connect_invalid');
    const callback = await consentAtProvider(start.url, start.redirectUri, 'alice@example.com');
    // The state belongs to tickets: presenting it for another credential fails (and does not spend it).
    await expectCode(brokers[0].finishConnect('rotating', callback), 'oauth_connect_invalid');
    await brokers[1].finishConnect('tickets', callback);
    await expectCode(brokers[0].finishConnect('tickets', callback), 'oauth_connect_invalid');
    const denied = await brokers[0].connect('tickets', 'alice@example.com');
    if (denied.kind !== 'redirect') throw new Error('expected a redirect');
    const state = new URL(denied.url).searchParams.get('state') ?? '';
    const error = await expectCode(
      brokers[0].finishConnect(
        'tickets',
        new URL(`${denied.redirectUri}?error=access_denied&state=${state}`),
      ),
      'oauth_connect_invalid',
    );
    expect(error.detail).toMatchObject({ providerError: 'access_denied' });
  });

  it('50 concurrent calls on two brokers sharing the store during expiry cause exactly one refresh', async () => {
    // Each broker rechecks the store's generation within 2 s: both follow the reconnection above.
    clock.advance(2500);
    const before = await Promise.all(brokers.map((b) => b.accessToken('tickets')));
    expect(before[1]).toBe(before[0]);
    const refreshes = oauth.grants.refresh_token ?? 0;
    // Inside the 60 s skew of the 300 s token: every caller needs a fresh one.
    clock.advance(250_000);
    const tokens = await Promise.all(Array.from({ length: 50 }, (_, i) => pick(i).accessToken('tickets')));
    expect((oauth.grants.refresh_token ?? 0) - refreshes).toBe(1);
    expect(new Set(tokens).size).toBe(1);
    expect(tokens[0]).not.toBe(before[0]);
    const status = await brokers[1].get('tickets');
    expect(status.refreshCount).toBe(1);
    // And again, a second expiry: one more refresh, not fifty.
    clock.advance(250_000);
    await Promise.all(Array.from({ length: 50 }, (_, i) => pick(i).accessToken('tickets')));
    expect((oauth.grants.refresh_token ?? 0) - refreshes).toBe(2);
  });

  it('stores a rotated refresh token and never uses the old one again', async () => {
    await connect('rotating');
    const names = tokenSecretNames('rotating');
    const first = await vault.reveal(names.refresh);
    clock.advance(250_000);
    const refreshes = oauth.grants.refresh_token ?? 0;
    await brokers[0].accessToken('rotating');
    const second = await vault.reveal(names.refresh);
    expect(second).toBeTruthy();
    expect(second).not.toBe(first);
    clock.advance(250_000);
    await Promise.all(Array.from({ length: 10 }, (_, i) => pick(i).accessToken('rotating')));
    const third = await vault.reveal(names.refresh);
    expect(third).not.toBe(second);
    // Every refresh succeeded: the provider would refuse (and revoke the grant) on reuse of a rotated token.
    expect((oauth.grants.refresh_token ?? 0) - refreshes).toBe(2);
    expect((await brokers[0].get('rotating')).status).toBe('connected');
  });

  it('a refresh token the provider refuses marks the credential for reconnection (oauth_not_connected)', async () => {
    await connect('rotating');
    const names = tokenSecretNames('rotating');
    await vault.set(names.refresh, 'a refresh token the provider never issued', {
      kind: 'oauth_refresh_token',
    });
    clock.advance(250_000);
    const error = await expectCode(brokers[1].accessToken('rotating'), 'oauth_not_connected');
    expect(error.message).toContain('connect it again');
    expect(await brokers[0].get('rotating')).toMatchObject({
      status: 'reconnect_required',
      lastError: 'invalid_grant',
    });
    await expectCode(brokers[0].accessToken('rotating'), 'oauth_not_connected');
  });

  it('client credentials: obtained on first use, one grant for 50 concurrent calls at each expiry', async () => {
    const grants = () => oauth.grants.client_credentials ?? 0;
    const before = grants();
    const first = await Promise.all(Array.from({ length: 50 }, (_, i) => pick(i).accessToken('machine')));
    expect(new Set(first).size).toBe(1);
    expect(grants() - before).toBe(1);
    const ok = await fetch(`${oauth.apiUrl}/status`, { headers: { authorization: `Bearer ${first[0]}` } });
    expect(ok.status).toBe(200);
    clock.advance(250_000);
    const second = await Promise.all(Array.from({ length: 50 }, (_, i) => pick(i).accessToken('machine')));
    expect(new Set(second).size).toBe(1);
    expect(second[0]).not.toBe(first[0]);
    expect(grants() - before).toBe(2);
    await expectCode(
      brokers[0].finishConnect('machine', new URL(`${baseUrl}/oauth/callback/machine?state=x`)),
      'oauth_connect_invalid',
    );
  });

  it('tells insufficient_scope from an invalid token, as the real API answers them', async () => {
    const token = await brokers[0].accessToken('tickets');
    const write = await fetch(`${oauth.apiUrl}/tickets`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(write.status).toBe(403);
    expect(classifyRefusal(write.status, write.headers.get('www-authenticate'))).toEqual({
      kind: 'insufficient_scope',
      scope: 'api:write',
    });
    const forged = await fetch(`${oauth.apiUrl}/tickets`, {
      headers: { authorization: 'Bearer not.a.token' },
    });
    expect(classifyRefusal(forged.status, forged.headers.get('www-authenticate'))).toEqual({
      kind: 'invalid_token',
    });
  });

  it('disconnect forgets the tokens (vault secrets deleted) and the credential stops working', async () => {
    await brokers[0].disconnect('tickets', 'bob@example.com');
    expect(await vault.get(tokenSecretNames('tickets').access)).toBeUndefined();
    expect(await vault.get(tokenSecretNames('tickets').refresh)).toBeUndefined();
    await expectCode(brokers[0].accessToken('tickets'), 'oauth_not_connected');
    expect((await brokers[1].list()).find((c) => c.name === 'tickets')).toMatchObject({
      status: 'disconnected',
    });
  });
});
