import { base64url, calculateJwkThumbprint, generateKeyPair, SignJWT } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import { IdGenerator } from '../core/ids.js';
import { openStore, type Store } from '../store/index.js';
import { createIdentityService, type IdentityService } from './service.js';
import { TokenService } from './tokens.js';

const issuer = 'http://127.0.0.1:7400';
const audience = 'http://127.0.0.1:7400/mcp';

/** The rejection of a promise as a CustosError, with the reason kept in its cause. */
async function rejection(
  promise: Promise<unknown>,
): Promise<{ code: string; message: string; reason: string }> {
  try {
    await promise;
  } catch (error) {
    if (!(error instanceof CustosError)) throw error;
    return {
      code: error.code,
      message: error.message,
      reason: (error.cause as Error | undefined)?.message ?? '',
    };
  }
  throw new Error('expected a rejection');
}

describe('access tokens', () => {
  let store: Store;
  let clock: ManualClock;
  let identity: IdentityService;
  let agentId: string;

  beforeEach(async () => {
    store = await openStore('sqlite::memory:');
    clock = new ManualClock();
    identity = await createIdentityService({ store, clock, ids: new IdGenerator(clock), issuer, audience });
    const { agent } = await identity.agents.add({
      name: 'support-bot',
      owner: 'alice@example.com',
      purpose: 'answer support tickets',
      environment: 'production',
    });
    agentId = agent.id;
  });
  afterEach(() => store.close());

  async function issue(): Promise<string> {
    const view = identity.directory.get(agentId);
    if (view === undefined) throw new Error('agent missing from the directory');
    return (await identity.tokens.issueAccessToken(view)).token;
  }

  it('verifies to a principal with the agent, owner, epoch and a 10 minute expiry', async () => {
    const token = await issue();
    const principal = await identity.verifyAccessToken(token);
    expect(principal).toMatchObject({
      agentId,
      agentName: 'support-bot',
      owner: 'alice@example.com',
      environment: 'production',
      purpose: 'answer support tickets',
      epoch: 0,
      expiresAt: clock.now() + 600_000,
      task: null,
    });
    expect(principal.tokenId).not.toBe('');
  });

  it('carries EdDSA, the kid, typ at+jwt and the standard claims', async () => {
    const token = await issue();
    const [header, payload] = token
      .split('.')
      .slice(0, 2)
      .map((part) => JSON.parse(new TextDecoder().decode(base64url.decode(part))));
    expect(header).toEqual({ alg: 'EdDSA', kid: identity.keys.current().kid, typ: 'at+jwt' });
    expect(payload).toMatchObject({
      iss: issuer,
      aud: audience,
      sub: agentId,
      client_id: agentId,
      owner: 'alice@example.com',
      epoch: 0,
    });
    expect(payload.exp - payload.iat).toBe(600);
    expect(typeof payload.jti).toBe('string');
  });

  it('rejects an expired token, from the cache and from a fresh verifier', async () => {
    const token = await issue();
    await identity.verifyAccessToken(token);
    clock.advance(600_000);
    expect(await rejection(identity.verifyAccessToken(token))).toMatchObject({
      code: 'invalid_token',
      reason: 'expired',
    });
    const fresh = new TokenService({
      keys: identity.keys,
      directory: identity.directory,
      clock,
      issuer,
      audience,
    });
    expect(await rejection(fresh.verifyAccessToken(token))).toMatchObject({
      code: 'invalid_token',
      reason: 'ERR_JWT_EXPIRED',
    });
  });

  it('rejects a token signed by another key under our kid, telling the client little', async () => {
    const token = await issue();
    const forger = await generateKeyPair('Ed25519');
    const [header, payload] = token.split('.');
    const forged = await new SignJWT(
      JSON.parse(new TextDecoder().decode(base64url.decode(payload as string))),
    )
      .setProtectedHeader(JSON.parse(new TextDecoder().decode(base64url.decode(header as string))))
      .sign(forger.privateKey);
    const result = await rejection(identity.verifyAccessToken(forged));
    expect(result).toMatchObject({ code: 'invalid_token', message: 'the access token is not valid' });
    expect(result.reason).toBe('ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
  });

  it('rejects a token for another audience', async () => {
    const other = new TokenService({
      keys: identity.keys,
      directory: identity.directory,
      clock,
      issuer,
      audience: 'https://elsewhere.example/mcp',
    });
    const view = identity.directory.get(agentId);
    const { token } = await other.issueAccessToken(view as NonNullable<typeof view>);
    expect(await rejection(identity.verifyAccessToken(token))).toMatchObject({
      code: 'invalid_token',
      reason: 'ERR_JWT_CLAIM_VALIDATION_FAILED',
    });
  });

  it('rejects an unsigned token (alg none)', async () => {
    const token = await issue();
    const payload = token.split('.')[1] as string;
    const header = base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt' }));
    expect((await rejection(identity.verifyAccessToken(`${header}.${payload}.`))).code).toBe('invalid_token');
  });

  it('rejects garbage, a token for an unknown agent and a token of another type', async () => {
    expect((await rejection(identity.verifyAccessToken('not-a-jwt'))).code).toBe('invalid_token');
    const key = identity.keys.current();
    const base = () =>
      new SignJWT({ client_id: 'agt_0000000000000000000000000a', owner: 'x@example.com', epoch: 0 })
        .setIssuer(issuer)
        .setAudience(audience)
        .setSubject('agt_0000000000000000000000000a')
        .setIssuedAt(Math.floor(clock.now() / 1000))
        .setExpirationTime(Math.floor(clock.now() / 1000) + 60)
        .setJti('j1');
    const unknown = await base()
      .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: 'at+jwt' })
      .sign(key.privateKey);
    expect(await rejection(identity.verifyAccessToken(unknown))).toMatchObject({
      code: 'invalid_token',
      reason: 'unknown agent',
    });
    const idToken = await base()
      .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: 'JWT' })
      .sign(key.privateKey);
    expect((await rejection(identity.verifyAccessToken(idToken))).code).toBe('invalid_token');
  });

  it("stops a suspended agent's unexpired token at once, cached or not, and resume needs a new token", async () => {
    const token = await issue();
    await identity.verifyAccessToken(token);
    await identity.agents.suspend(agentId);
    expect(await rejection(identity.verifyAccessToken(token))).toMatchObject({
      code: 'agent_inactive',
      reason: 'agent suspended',
    });
    await identity.agents.resume(agentId);
    expect(await rejection(identity.verifyAccessToken(token))).toMatchObject({
      code: 'invalid_token',
      reason: 'stale epoch 0, agent at 1',
    });
    const renewed = await issue();
    expect((await identity.verifyAccessToken(renewed)).epoch).toBe(1);
  });

  it('treats a token of an agent past its expiry time as inactive', async () => {
    const { agent } = await identity.agents.add({
      name: 'short-lived',
      owner: 'bob@example.com',
      purpose: 'a one-day experiment',
      expiresAt: clock.now() + 60_000,
    });
    const view = identity.directory.get(agent.id);
    const { token } = await identity.tokens.issueAccessToken(view as NonNullable<typeof view>);
    await identity.verifyAccessToken(token);
    clock.advance(60_000);
    expect(await rejection(identity.verifyAccessToken(token))).toMatchObject({
      code: 'agent_inactive',
      reason: 'agent expired',
    });
  });

  it('caches the verification of a token string but checks the agent on every call', async () => {
    const token = await issue();
    await identity.verifyAccessToken(token);
    await identity.verifyAccessToken(token);
    expect(identity.tokens.cachedTokens).toBe(1);
    await identity.agents.offboard(agentId);
    expect((await rejection(identity.verifyAccessToken(token))).code).toBe('agent_inactive');
  });

  it('keeps the cache bounded', async () => {
    const small = new TokenService({
      keys: identity.keys,
      directory: identity.directory,
      clock,
      issuer,
      audience,
      cacheSize: 2,
    });
    for (let i = 0; i < 5; i++) await small.verifyAccessToken(await issue());
    expect(small.cachedTokens).toBe(2);
  });
});

describe('signing keys', () => {
  it('creates an Ed25519 key at first start, named by its RFC 7638 thumbprint, and reuses it', async () => {
    const store = await openStore('sqlite::memory:');
    try {
      const clock = new ManualClock();
      const options = { store, clock, ids: new IdGenerator(clock), issuer, audience };
      const first = await createIdentityService(options);
      const jwks = first.jwks();
      expect(jwks.keys).toHaveLength(1);
      const jwk = jwks.keys[0];
      expect(jwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
      expect(jwk).not.toHaveProperty('d');
      expect(jwk?.kid).toBe(
        await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: jwk?.x as string }),
      );
      const second = await createIdentityService(options);
      expect(second.jwks()).toEqual(jwks);
    } finally {
      await store.close();
    }
  });
});
