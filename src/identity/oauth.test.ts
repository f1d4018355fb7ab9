import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { IdGenerator } from '../core/ids.js';
import { openStore, type Store } from '../store/index.js';
import { jwtBearerAssertionType } from './client-auth.js';
import {
  accessTokenTypeUri,
  grantTypes,
  isTokenError,
  type TokenEndpointResult,
  type TokenSuccess,
} from './oauth.js';
import { createIdentityService, type IdentityService } from './service.js';

const issuer = 'http://127.0.0.1:7400';
const audience = 'http://127.0.0.1:7400/mcp';
const tokenEndpoint = `${issuer}/oauth/token`;
const support = { name: 'support-bot', owner: 'alice@example.com', purpose: 'answer support tickets' };

function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

function success(result: TokenEndpointResult): TokenSuccess {
  if (isTokenError(result)) throw new Error(`token request failed: ${JSON.stringify(result.body)}`);
  return result;
}

/** The internal reason a failed request keeps for the log (the cause of its CustosError). */
function reasonOf(result: TokenEndpointResult): Error | undefined {
  return isTokenError(result) ? (result.cause?.cause as Error | undefined) : undefined;
}

function failure(result: TokenEndpointResult): { status: number; error: string; description: string } {
  if (!isTokenError(result)) throw new Error('expected the token request to fail');
  return { status: result.status, error: result.body.error, description: result.body.error_description };
}

let store: Store;
let clock: ManualClock;
let identity: IdentityService;

beforeEach(async () => {
  store = await openStore('sqlite::memory:');
  clock = new ManualClock();
  identity = await createIdentityService({ store, clock, ids: new IdGenerator(clock), issuer, audience });
});
afterEach(() => store.close());

describe('client_credentials with a client secret', () => {
  let clientId: string;
  let secret: string;
  beforeEach(async () => {
    const added = await identity.agents.add(support);
    clientId = added.clientId;
    secret = added.clientSecret as string;
  });

  it('issues a Bearer token with client_secret_basic', async () => {
    const result = success(
      await identity.handleTokenRequest({ grant_type: 'client_credentials' }, basic(clientId, secret)),
    );
    expect(result).toMatchObject({ token_type: 'Bearer', expires_in: 600 });
    expect((await identity.verifyAccessToken(result.access_token)).agentId).toBe(clientId);
  });

  it('issues a token with client_secret_post and honours a matching resource', async () => {
    const result = await identity.handleTokenRequest({
      grant_type: 'client_credentials',
      client_id: clientId,
      client_secret: secret,
      resource: audience,
    });
    expect(success(result).token_type).toBe('Bearer');
  });

  it('rejects a wrong secret with 401 invalid_client and a WWW-Authenticate header', async () => {
    const result = await identity.handleTokenRequest(
      { grant_type: 'client_credentials' },
      basic(clientId, `${secret}x`),
    );
    expect(failure(result)).toEqual({
      status: 401,
      error: 'invalid_client',
      description: 'client authentication failed',
    });
    expect(isTokenError(result) && result.headers).toEqual({ 'www-authenticate': 'Basic realm="custos"' });
    expect(reasonOf(result)?.message).toBe('wrong client secret');
  });

  it('rejects an unknown client id the same way', async () => {
    const result = await identity.handleTokenRequest({
      grant_type: 'client_credentials',
      client_id: 'agt_0000000000000000000000000a',
      client_secret: secret,
    });
    expect(failure(result)).toMatchObject({
      status: 401,
      error: 'invalid_client',
      description: 'client authentication failed',
    });
  });

  it('refuses two authentication methods at once', async () => {
    const result = await identity.handleTokenRequest(
      { grant_type: 'client_credentials', client_secret: secret },
      basic(clientId, secret),
    );
    expect(failure(result)).toMatchObject({ status: 400, error: 'invalid_request' });
  });

  it('refuses a suspended agent, and an offboarded one whose credentials are revoked', async () => {
    await identity.agents.suspend(clientId);
    const suspended = await identity.handleTokenRequest(
      { grant_type: 'client_credentials' },
      basic(clientId, secret),
    );
    expect(failure(suspended)).toMatchObject({
      status: 401,
      error: 'invalid_client',
      description: 'agent is suspended',
    });
    await identity.agents.offboard(clientId);
    const offboarded = await identity.handleTokenRequest(
      { grant_type: 'client_credentials' },
      basic(clientId, secret),
    );
    expect(failure(offboarded)).toMatchObject({
      error: 'invalid_client',
      description: 'client authentication failed',
    });
  });

  it('answers an unknown grant type with unsupported_grant_type and a missing one with invalid_request', async () => {
    const unknown = await identity.handleTokenRequest({ grant_type: 'password' }, basic(clientId, secret));
    expect(failure(unknown)).toMatchObject({ status: 400, error: 'unsupported_grant_type' });
    expect(failure(await identity.handleTokenRequest({}))).toMatchObject({
      status: 400,
      error: 'invalid_request',
    });
  });

  it('answers a foreign resource with invalid_target', async () => {
    const result = await identity.handleTokenRequest(
      { grant_type: 'client_credentials', resource: 'https://elsewhere.example/mcp' },
      basic(clientId, secret),
    );
    expect(failure(result)).toMatchObject({ status: 400, error: 'invalid_target' });
  });
});

describe('client_credentials with private_key_jwt (RFC 7523)', () => {
  for (const alg of ['EdDSA', 'ES256', 'RS256'] as const) {
    it(`issues a token for a ${alg} assertion`, async () => {
      const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
      const { clientId } = await identity.agents.add({
        ...support,
        credential: { kind: 'public_key', jwk: await exportJWK(publicKey) },
      });
      const assertion = await sign(privateKey, alg, clientId);
      const result = await identity.handleTokenRequest({
        grant_type: 'client_credentials',
        client_assertion_type: jwtBearerAssertionType,
        client_assertion: assertion,
      });
      expect((await identity.verifyAccessToken(success(result).access_token)).agentId).toBe(clientId);
    });
  }

  describe('with an Ed25519 key registered', () => {
    let clientId: string;
    let privateKey: CryptoKey;
    beforeEach(async () => {
      const pair = await generateKeyPair('Ed25519', { extractable: true });
      privateKey = pair.privateKey;
      const jwk: JWK = await exportJWK(pair.publicKey);
      clientId = (await identity.agents.add({ ...support, credential: { kind: 'public_key', jwk } }))
        .clientId;
    });

    async function request(assertion: string): Promise<TokenEndpointResult> {
      return identity.handleTokenRequest({
        grant_type: 'client_credentials',
        client_id: clientId,
        client_assertion_type: jwtBearerAssertionType,
        client_assertion: assertion,
      });
    }

    function reason(result: TokenEndpointResult): string {
      return reasonOf(result)?.message ?? '';
    }

    it('accepts the issuer as audience too', async () => {
      expect(
        success(await request(await sign(privateKey, 'EdDSA', clientId, { aud: issuer }))).token_type,
      ).toBe('Bearer');
    });

    it('rejects an assertion signed with another key', async () => {
      const other = await generateKeyPair('Ed25519');
      const result = await request(await sign(other.privateKey, 'EdDSA', clientId));
      expect(failure(result)).toMatchObject({ status: 401, error: 'invalid_client' });
      expect(reason(result)).toBe('client assertion did not verify');
    });

    it('rejects a replayed jti', async () => {
      const assertion = await sign(privateKey, 'EdDSA', clientId, { jti: 'once' });
      success(await request(assertion));
      const replay = await request(assertion);
      expect(failure(replay)).toMatchObject({ error: 'invalid_client' });
      expect(reason(replay)).toBe('client assertion replayed');
    });

    it('rejects an expired assertion', async () => {
      const assertion = await sign(privateKey, 'EdDSA', clientId, { lifetime: 60 });
      clock.advance(120_000);
      const result = await request(assertion);
      expect(failure(result)).toMatchObject({ error: 'invalid_client' });
      expect(reasonOf(result)?.cause).toHaveProperty('code', 'ERR_JWT_EXPIRED');
    });

    it('rejects an assertion that lives too long, lacks a jti, or names another audience', async () => {
      expect(reason(await request(await sign(privateKey, 'EdDSA', clientId, { lifetime: 3600 })))).toMatch(
        /longer than/,
      );
      expect(failure(await request(await sign(privateKey, 'EdDSA', clientId, { jti: null }))).error).toBe(
        'invalid_client',
      );
      const foreign = await sign(privateKey, 'EdDSA', clientId, { aud: 'https://elsewhere.example/token' });
      expect(failure(await request(foreign)).error).toBe('invalid_client');
    });

    /** An assertion with full control over its claims and header (RFC 7523 §3 rule tests). */
    async function craft(
      claims: Record<string, unknown>,
      header: Record<string, unknown> = { alg: 'EdDSA' },
      key: CryptoKey | Uint8Array = privateKey,
    ): Promise<string> {
      const now = Math.floor(clock.now() / 1000);
      return new SignJWT({
        iss: clientId,
        sub: clientId,
        aud: tokenEndpoint,
        iat: now,
        exp: now + 60,
        jti: crypto.randomUUID(),
        ...claims,
      })
        .setProtectedHeader(header as { alg: string })
        .sign(key);
    }

    it('refuses a multi-valued aud even when it names the token endpoint (RFC 7523 §3 item 3)', async () => {
      const both = await request(await craft({ aud: [tokenEndpoint, 'https://elsewhere.example/token'] }));
      expect(failure(both)).toMatchObject({ status: 401, error: 'invalid_client' });
      expect(reason(both)).toBe('aud must be a single string');
      expect(reason(await request(await craft({ aud: [tokenEndpoint] })))).toBe(
        'aud must be a single string',
      );
    });

    it('accepts aud exactly the token endpoint or the issuer, nothing near them', async () => {
      expect(success(await request(await craft({ aud: tokenEndpoint }))).token_type).toBe('Bearer');
      for (const aud of [
        `${tokenEndpoint}/`,
        `${issuer}/`,
        `${audience}`,
        'http://127.0.0.1:7400/OAUTH/token',
      ]) {
        expect(failure(await request(await craft({ aud }))).error).toBe('invalid_client');
      }
    });

    it('refuses an assertion without exp (RFC 7523 §3 item 4)', async () => {
      const result = await request(await craft({ exp: undefined }));
      expect(failure(result).error).toBe('invalid_client');
    });

    it('refuses an assertion whose exp is far from its iat though near now', async () => {
      const now = Math.floor(clock.now() / 1000);
      const result = await request(await craft({ iat: now - 250, exp: now + 200 }));
      expect(reason(result)).toMatch(/exp - iat/);
    });

    it('refuses an assertion issued in the future (iat beyond the 30 s tolerance)', async () => {
      const now = Math.floor(clock.now() / 1000);
      const result = await request(await craft({ iat: now + 120, exp: now + 180 }));
      expect(failure(result).error).toBe('invalid_client');
      expect(reason(result)).toBe('client assertion issued in the future (iat)');
      // Within the tolerance for clock skew it is accepted.
      expect(success(await request(await craft({ iat: now + 20, exp: now + 80 }))).token_type).toBe('Bearer');
    });

    it('refuses a jti that is not a non-empty string', async () => {
      expect(reason(await request(await craft({ jti: 42 })))).toBe('bad jti');
      expect(failure(await request(await craft({ jti: '' }))).error).toBe('invalid_client');
    });

    it("refuses algorithms other than the registered key's: HS256 keyed with the public key, and none", async () => {
      const jwk = (await identity.agents.listCredentials(clientId))[0]?.publicJwk as Record<string, string>;
      const hmac = await craft({}, { alg: 'HS256' }, new TextEncoder().encode(JSON.stringify(jwk)));
      expect(failure(await request(hmac)).error).toBe('invalid_client');
      const [head, body] = (await craft({})).split('.');
      const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${body}.`;
      expect(head).toBeDefined();
      expect(failure(await request(none)).error).toBe('invalid_client');
      const es256 = await generateKeyPair('ES256');
      expect(failure(await request(await craft({}, { alg: 'ES256' }, es256.privateKey))).error).toBe(
        'invalid_client',
      );
    });

    it('refuses iss and sub that are not the client id, even when they agree with each other', async () => {
      const other = 'agt_0000000000000000000000000b';
      const result = await identity.handleTokenRequest({
        grant_type: 'client_credentials',
        client_id: clientId,
        client_assertion_type: jwtBearerAssertionType,
        client_assertion: await craft({ iss: other, sub: other }),
      });
      expect(failure(result)).toMatchObject({ status: 400, error: 'invalid_request' });
    });

    it('rejects an assertion whose iss is not its sub', async () => {
      const assertion = await new SignJWT({})
        .setProtectedHeader({ alg: 'EdDSA' })
        .setIssuer('someone-else')
        .setSubject(clientId)
        .setAudience(tokenEndpoint)
        .setExpirationTime(Math.floor(clock.now() / 1000) + 60)
        .setJti('j')
        .sign(privateKey);
      expect(failure(await request(assertion)).error).toBe('invalid_client');
    });
  });
});

async function sign(
  key: CryptoKey,
  alg: string,
  clientId: string,
  options: { aud?: string; jti?: string | null; lifetime?: number } = {},
): Promise<string> {
  const now = Math.floor(clock.now() / 1000);
  const jwt = new SignJWT({})
    .setProtectedHeader({ alg })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(options.aud ?? tokenEndpoint)
    .setIssuedAt(now)
    .setExpirationTime(now + (options.lifetime ?? 60));
  if (options.jti !== null) jwt.setJti(options.jti ?? crypto.randomUUID());
  return jwt.sign(key);
}

describe('token exchange (RFC 8693) for task tokens', () => {
  let clientId: string;
  let agentToken: string;
  beforeEach(async () => {
    const added = await identity.agents.add(support);
    clientId = added.clientId;
    const issued = await identity.handleTokenRequest(
      { grant_type: 'client_credentials' },
      basic(clientId, added.clientSecret as string),
    );
    agentToken = success(issued).access_token;
  });

  function exchange(subjectToken: string, extra: Record<string, string>): Promise<TokenEndpointResult> {
    return identity.handleTokenRequest({
      grant_type: grantTypes.tokenExchange,
      subject_token: subjectToken,
      subject_token_type: accessTokenTypeUri,
      ...extra,
    });
  }

  it('issues a narrower, shorter-lived task token and records the task', async () => {
    const result = success(
      await exchange(agentToken, {
        scope: 'server:files tool:tickets.create',
        task_purpose: 'close ticket 42',
        task_budget: '20',
      }),
    );
    expect(result).toMatchObject({
      token_type: 'Bearer',
      expires_in: 300,
      issued_token_type: accessTokenTypeUri,
      scope: 'server:files tool:tickets.create',
    });
    const principal = await identity.verifyAccessToken(result.access_token);
    expect(principal.agentId).toBe(clientId);
    expect(principal.task).toMatchObject({
      purpose: 'close ticket 42',
      servers: ['files'],
      tools: ['tickets.create'],
      budget: 20,
      expiresAt: clock.now() + 300_000,
    });
    const row = await store.db.selectFrom('tasks').selectAll().executeTakeFirstOrThrow();
    expect(row).toMatchObject({
      id: principal.task?.id,
      agent_id: clientId,
      servers: '["files"]',
      tools: '["tickets.create"]',
      budget: 20,
      expires_at: clock.now() + 300_000,
      parent_id: null,
    });
  });

  it('narrows a task token further and records its parent', async () => {
    const parent = success(
      await exchange(agentToken, {
        scope: 'server:files tool:tickets.create',
        task_purpose: 'p',
        task_budget: '20',
      }),
    );
    const child = success(
      await exchange(parent.access_token, {
        scope: 'tool:files.read tool:tickets.create',
        task_purpose: 'c',
      }),
    );
    const principal = await identity.verifyAccessToken(child.access_token);
    expect(principal.task).toMatchObject({
      servers: [],
      tools: ['files.read', 'tickets.create'],
      budget: 20,
    });
    const parentId = (await identity.verifyAccessToken(parent.access_token)).task?.id;
    const row = await store.db
      .selectFrom('tasks')
      .selectAll()
      .where('id', '=', principal.task?.id as string)
      .executeTakeFirst();
    expect(row?.parent_id).toBe(parentId);
    // An empty scope inherits the parent's reach.
    const same = success(await exchange(parent.access_token, { task_purpose: 'same' }));
    expect((await identity.verifyAccessToken(same.access_token)).task).toMatchObject({
      servers: ['files'],
      tools: ['tickets.create'],
    });
  });

  it('refuses to widen servers, tools or budget', async () => {
    const parent = success(
      await exchange(agentToken, {
        scope: 'server:files tool:tickets.create',
        task_purpose: 'p',
        task_budget: '5',
      }),
    ).access_token;
    const cases: Record<string, string>[] = [
      { scope: 'server:tickets' },
      { scope: 'tool:tickets.delete' },
      { scope: 'server:files', task_budget: '6' },
    ];
    for (const extra of cases) {
      expect(failure(await exchange(parent, { task_purpose: 'wider', ...extra }))).toMatchObject({
        status: 400,
        error: 'invalid_scope',
      });
    }
  });

  it('never outlives the subject token and caps expires_in', async () => {
    const capped = success(await exchange(agentToken, { task_purpose: 'long', expires_in: '86400' }));
    expect(capped.expires_in).toBe(600);
    clock.advance(500_000);
    const late = success(await exchange(agentToken, { task_purpose: 'late' }));
    expect(late.expires_in).toBe(100);
    const task = success(await exchange(agentToken, { task_purpose: 'parent', expires_in: '60' }));
    const child = success(await exchange(task.access_token, { task_purpose: 'child', expires_in: '120' }));
    expect(child.expires_in).toBe(60);
  });

  it('requires a purpose, a valid subject token and well-formed parameters', async () => {
    expect(failure(await exchange(agentToken, {})).description).toMatch(/task_purpose is required/);
    expect(failure(await exchange('garbage', { task_purpose: 'x' }))).toMatchObject({
      error: 'invalid_request',
      description: 'subject_token is not valid',
    });
    expect(failure(await exchange(agentToken, { task_purpose: 'x', scope: 'files' })).error).toBe(
      'invalid_scope',
    );
    expect(failure(await exchange(agentToken, { task_purpose: 'x', task_budget: '0' })).error).toBe(
      'invalid_request',
    );
    expect(
      failure(
        await exchange(agentToken, {
          task_purpose: 'x',
          subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        }),
      ).error,
    ).toBe('invalid_request');
  });

  it('refuses a subject token of a suspended agent', async () => {
    await identity.agents.suspend(clientId);
    expect(failure(await exchange(agentToken, { task_purpose: 'x' }))).toMatchObject({
      error: 'invalid_request',
      description: 'the agent is not active',
    });
  });
});

describe('metadata', () => {
  it('describes the authorization server (RFC 8414) and the protected resource (RFC 9728)', () => {
    expect(identity.authorizationServerMetadata()).toMatchObject({
      issuer,
      token_endpoint: tokenEndpoint,
      jwks_uri: `${issuer}/oauth/jwks`,
      grant_types_supported: ['client_credentials', grantTypes.tokenExchange],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
      token_endpoint_auth_signing_alg_values_supported: expect.arrayContaining(['EdDSA', 'ES256', 'RS256']),
      dpop_signing_alg_values_supported: expect.arrayContaining(['EdDSA', 'ES256']),
    });
    expect(identity.protectedResourceMetadata()).toEqual({
      resource: audience,
      authorization_servers: [issuer],
      bearer_methods_supported: ['header'],
      dpop_signing_alg_values_supported: expect.arrayContaining(['EdDSA', 'ES256']),
      dpop_bound_access_tokens_required: false,
    });
    expect(identity.protectedResourceMetadata(['server:files']).scopes_supported).toEqual(['server:files']);
  });
});
