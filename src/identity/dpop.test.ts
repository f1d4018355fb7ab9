import { type CryptoKey, decodeJwt, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import { IdGenerator } from '../core/ids.js';
import { openStore, type Store } from '../store/index.js';
import { accessTokenHash, jwkThumbprint } from './dpop.js';
import { accessTokenTypeUri, grantTypes, isTokenError, type TokenEndpointResult } from './oauth.js';
import { ReplayCache } from './replay.js';
import { createIdentityService, type IdentityService } from './service.js';

const issuer = 'http://127.0.0.1:7400';
const audience = `${issuer}/mcp`;
const tokenEndpoint = `${issuer}/oauth/token`;
const support = { name: 'support-bot', owner: 'alice@example.com', purpose: 'answer support tickets' };

interface DpopKey {
  privateKey: CryptoKey;
  jwk: JWK;
  alg: string;
}

async function dpopKey(alg: 'ES256' | 'EdDSA' = 'ES256'): Promise<DpopKey> {
  const pair = await generateKeyPair(alg, { extractable: true });
  return { privateKey: pair.privateKey, jwk: await exportJWK(pair.publicKey), alg };
}

let store: Store;
let clock: ManualClock;
let identity: IdentityService;
let clientId: string;
let secret: string;
let key: DpopKey;

beforeEach(async () => {
  store = await openStore('sqlite::memory:');
  clock = new ManualClock();
  identity = await createIdentityService({ store, clock, ids: new IdGenerator(clock), issuer, audience });
  const added = await identity.agents.add(support);
  clientId = added.clientId;
  secret = added.clientSecret as string;
  key = await dpopKey();
});
afterEach(() => store.close());

/** A DPoP proof (RFC 9449 §4.2); every claim and header member can be overridden or removed. */
async function proof(
  claims: Record<string, unknown> = {},
  options: { header?: Record<string, unknown>; key?: DpopKey; signWith?: CryptoKey | Uint8Array } = {},
): Promise<string> {
  const k = options.key ?? key;
  return new SignJWT({
    jti: crypto.randomUUID(),
    htm: 'POST',
    htu: tokenEndpoint,
    iat: Math.floor(clock.now() / 1000),
    ...claims,
  })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: k.alg, jwk: k.jwk, ...options.header } as { alg: string })
    .sign(options.signWith ?? k.privateKey);
}

function tokenRequest(dpop?: string, form: Record<string, string> = {}): Promise<TokenEndpointResult> {
  return identity.handleTokenRequest(
    { grant_type: 'client_credentials', client_id: clientId, client_secret: secret, ...form },
    undefined,
    dpop,
  );
}

async function boundToken(k: DpopKey = key): Promise<string> {
  const result = await tokenRequest(await proof({}, { key: k }));
  if (isTokenError(result)) throw new Error(JSON.stringify(result.body));
  return result.access_token;
}

/** A proof for a call to /mcp presenting `token`. */
function callProof(token: string, claims: Record<string, unknown> = {}, options = {}): Promise<string> {
  return proof({ htm: 'POST', htu: audience, ath: accessTokenHash(token), ...claims }, options);
}

async function present(token: string, dpop: string | undefined, url = audience, method = 'POST') {
  return identity.verifyAccessToken(token, { scheme: 'DPoP', proof: dpop, method, url });
}

/** The error code and internal reason of a failed verification. */
async function refusal(promise: Promise<unknown>): Promise<{ code: string; reason: string }> {
  try {
    await promise;
  } catch (error) {
    if (!(error instanceof CustosError)) throw error;
    return { code: error.code, reason: (error.cause as Error | undefined)?.message ?? '' };
  }
  throw new Error('expected a refusal');
}

describe('the token endpoint with a DPoP proof (RFC 9449 §5)', () => {
  it('issues token_type DPoP bound to the proof key by cnf.jkt', async () => {
    const result = await tokenRequest(await proof());
    if (isTokenError(result)) throw new Error(JSON.stringify(result.body));
    expect(result.token_type).toBe('DPoP');
    expect(decodeJwt(result.access_token).cnf).toEqual({
      jkt: jwkThumbprint(key.jwk as Record<string, unknown>),
    });
  });

  it('issues a Bearer token without cnf when no proof is sent', async () => {
    const result = await tokenRequest();
    if (isTokenError(result)) throw new Error(JSON.stringify(result.body));
    expect(result.token_type).toBe('Bearer');
    expect(decodeJwt(result.access_token).cnf).toBeUndefined();
  });

  it('answers a bad proof with 400 invalid_dpop_proof and issues nothing', async () => {
    const result = await tokenRequest(await proof({ htu: `${issuer}/elsewhere` }));
    expect(isTokenError(result) && { status: result.status, error: result.body.error }).toEqual({
      status: 400,
      error: 'invalid_dpop_proof',
    });
  });

  it('computes the RFC 7638 thumbprint of the RFC 7638 §3.1 example key', () => {
    const example = {
      kty: 'RSA',
      n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
      e: 'AQAB',
      alg: 'RS256',
      kid: '2011-04-29',
    };
    expect(jwkThumbprint(example)).toBe('NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  });
});

describe('a DPoP-bound token at the gateway (RFC 9449 §4.3, §7.1)', () => {
  let token: string;
  beforeEach(async () => {
    token = await boundToken();
  });

  it('is accepted with a fresh proof of its key for this request', async () => {
    expect((await present(token, await callProof(token))).agentId).toBe(clientId);
    expect((await present(`${token}`, await callProof(token, { htu: `${audience}?x=1` }))).agentId).toBe(
      clientId,
    );
  });

  it('is refused when presented as a Bearer token', async () => {
    expect(await refusal(identity.verifyAccessToken(token))).toEqual({
      code: 'invalid_token',
      reason: 'DPoP-bound token presented as a bearer token',
    });
  });

  it('is refused without a proof, or with two DPoP headers', async () => {
    expect(await refusal(present(token, undefined))).toMatchObject({ code: 'invalid_dpop_proof' });
    const two = `${await callProof(token)}, ${await callProof(token)}`;
    expect(await refusal(present(token, two))).toEqual({
      code: 'invalid_dpop_proof',
      reason: 'more than one DPoP header',
    });
  });

  it('refuses typ other than dpop+jwt', async () => {
    const bad = await callProof(token, {}, { header: { typ: 'JWT' } });
    expect((await refusal(present(token, bad))).reason).toBe('typ must be dpop+jwt');
  });

  it('refuses symmetric algorithms and none', async () => {
    const hs = await callProof(token, {}, { header: { alg: 'HS256' }, signWith: new Uint8Array(32) });
    expect((await refusal(present(token, hs))).reason).toBe('alg HS256 is not accepted');
    const [, body] = (await callProof(token)).split('.');
    const none = `${Buffer.from(JSON.stringify({ typ: 'dpop+jwt', alg: 'none', jwk: key.jwk })).toString('base64url')}.${body}.`;
    expect((await refusal(present(token, none))).reason).toBe('alg none is not accepted');
  });

  it('refuses a jwk holding a private key, or a jwk of another key type than alg', async () => {
    const priv = await exportJWK(key.privateKey);
    expect(
      (await refusal(present(token, await callProof(token, {}, { header: { jwk: priv } })))).reason,
    ).toBe('jwk holds private key material');
    const ed = await dpopKey('EdDSA');
    const mixed = await callProof(token, {}, { header: { jwk: ed.jwk } });
    expect((await refusal(present(token, mixed))).reason).toMatch(/does not fit/);
  });

  it('refuses a proof signed by a key other than its jwk', async () => {
    const other = await dpopKey();
    const forged = await callProof(token, {}, { signWith: other.privateKey });
    expect((await refusal(present(token, forged))).reason).toBe('signature does not verify with the jwk');
  });

  it('refuses another method (htm) or another URL (htu)', async () => {
    expect((await refusal(present(token, await callProof(token, { htm: 'GET' })))).reason).toBe(
      'htm must be POST',
    );
    expect(
      (await refusal(present(token, await callProof(token, { htu: `${audience}/files` })))).reason,
    ).toMatch(/^htu must be/);
    expect(
      (await refusal(present(token, await callProof(token, { htu: 'http://evil.example/mcp' })))).reason,
    ).toMatch(/^htu must be/);
  });

  it('refuses a proof older than 60 s or more than 5 s in the future', async () => {
    const now = Math.floor(clock.now() / 1000);
    expect((await refusal(present(token, await callProof(token, { iat: now - 61 })))).reason).toBe(
      'proof older than 60s',
    );
    expect((await refusal(present(token, await callProof(token, { iat: now + 30 })))).reason).toBe(
      'iat is in the future',
    );
    expect((await present(token, await callProof(token, { iat: now - 59 }))).agentId).toBe(clientId);
  });

  it('refuses a replayed proof (same jti)', async () => {
    const once = await callProof(token);
    await present(token, once);
    expect((await refusal(present(token, once))).reason).toBe('DPoP proof replayed');
  });

  it('refuses a proof without ath, or with the hash of another token (ath)', async () => {
    expect((await refusal(present(token, await callProof(token, { ath: undefined })))).reason).toBe(
      'ath does not match the access token',
    );
    const other = await boundToken();
    expect(
      (await refusal(present(token, await callProof(other, { ath: accessTokenHash(other) })))).reason,
    ).toBe('ath does not match the access token');
  });

  it('refuses a valid proof by another key than cnf.jkt', async () => {
    const thief = await dpopKey();
    const stolen = await callProof(token, {}, { key: thief });
    expect(await refusal(present(token, stolen))).toEqual({
      code: 'invalid_dpop_proof',
      reason: 'DPoP key differs from the key the token is bound to (cnf.jkt)',
    });
  });

  it('refuses a bearer token presented with the DPoP scheme', async () => {
    const result = await tokenRequest();
    const unbound = isTokenError(result) ? '' : result.access_token;
    expect((await refusal(present(unbound, await callProof(unbound)))).reason).toBe(
      'bearer token presented with the DPoP scheme',
    );
  });
});

describe('agents that require DPoP', () => {
  it('get no token without a proof, and their earlier bearer tokens stop working', async () => {
    const before = await tokenRequest();
    const bearer = isTokenError(before) ? '' : before.access_token;
    await identity.verifyAccessToken(bearer);
    const agent = await identity.agents.setRequireDpop(clientId, true);
    expect(agent.requireDpop).toBe(true);

    const refused = await tokenRequest();
    expect(isTokenError(refused) && [refused.status, refused.body.error]).toEqual([
      400,
      'invalid_dpop_proof',
    ]);
    expect(await refusal(identity.verifyAccessToken(bearer))).toMatchObject({
      code: 'invalid_token',
      reason: 'the agent requires DPoP and the token is not bound',
    });
    const bound = await boundToken();
    expect((await present(bound, await callProof(bound))).agentId).toBe(clientId);

    await identity.agents.setRequireDpop(clientId, false);
    expect((await identity.verifyAccessToken(bearer)).agentId).toBe(clientId);
  });

  it('keep the setting in the store for other processes (directory refresh)', async () => {
    await identity.agents.setRequireDpop(clientId, true);
    const other = await createIdentityService({
      store,
      clock,
      ids: new IdGenerator(clock),
      issuer,
      audience,
    });
    expect(other.directory.get(clientId)?.requireDpop).toBe(true);
    expect((await identity.agents.require(clientId)).requireDpop).toBe(true);
  });
});

describe('token exchange of a DPoP-bound subject token', () => {
  function exchange(subject: string, dpop?: string): Promise<TokenEndpointResult> {
    return identity.handleTokenRequest(
      {
        grant_type: grantTypes.tokenExchange,
        subject_token: subject,
        subject_token_type: accessTokenTypeUri,
        task_purpose: 'triage one ticket',
      },
      undefined,
      dpop,
    );
  }

  it('needs a proof of the same key and binds the task token to it', async () => {
    const subject = await boundToken();
    const without = await exchange(subject);
    expect(isTokenError(without) && without.body.error).toBe('invalid_request');
    const thief = await dpopKey();
    const foreign = await exchange(subject, await proof({}, { key: thief }));
    expect(isTokenError(foreign) && foreign.body.error).toBe('invalid_request');

    const result = await exchange(subject, await proof());
    if (isTokenError(result)) throw new Error(JSON.stringify(result.body));
    expect(result.token_type).toBe('DPoP');
    expect(decodeJwt(result.access_token).cnf).toEqual(decodeJwt(subject).cnf);
    await expect(identity.verifyAccessToken(result.access_token)).rejects.toThrow();
  });
});

describe('the replay cache', () => {
  it('refuses a value while it is remembered and forgets it after its time', () => {
    const cache = new ReplayCache(10);
    expect(cache.remember('a', 2000, 1000)).toBe('fresh');
    expect(cache.remember('a', 2000, 1500)).toBe('replayed');
    expect(cache.remember('a', 4000, 2500)).toBe('fresh');
  });

  it('when full, refuses what it may have forgotten instead of opening a replay', () => {
    const cache = new ReplayCache(10);
    for (let i = 0; i < 10; i++) expect(cache.remember(`k${i}`, 10_000 + i, 0)).toBe('fresh');
    expect(cache.remember('k10', 10_010, 0)).toBe('fresh');
    expect(cache.size).toBeLessThanOrEqual(10);
    // k0 was evicted: replaying it is refused as too old rather than accepted.
    expect(cache.remember('k0', 10_000, 0)).toBe('too_old');
    expect(cache.remember('fresh-one', 20_000, 0)).toBe('fresh');
  });
});
