import { describe, expect, it } from 'vitest';
import { bearerChallenge, classifyRefusal } from '../../core/bearer-challenge.js';
import { buildConfig } from '../../core/config.js';
import { CustosError } from '../../core/errors.js';
import { sealVerifier, stateHash, unsealVerifier } from './seal.js';

describe('PKCE verifier sealing', () => {
  it('opens only with the state it was sealed under, and the sealed text does not contain the verifier', () => {
    const sealed = sealVerifier('state-one', 'the-code-verifier-value');
    expect(sealed).not.toContain('the-code-verifier-value');
    expect(unsealVerifier('state-one', sealed)).toBe('the-code-verifier-value');
    expect(() => unsealVerifier('state-two', sealed)).toThrow(CustosError);
    expect(() => unsealVerifier('state-one', 'short')).toThrow(CustosError);
    expect(stateHash('state-one')).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('RFC 6750 challenges', () => {
  it('reads quoted and token parameters of the Bearer challenge', () => {
    expect(
      bearerChallenge('Basic realm="x", Bearer realm="api", error="insufficient_scope", scope="a b"'),
    ).toEqual({
      realm: 'api',
      error: 'insufficient_scope',
      scope: 'a b',
    });
    expect(bearerChallenge('Basic realm="x"')).toBeUndefined();
  });

  it('tells insufficient scope from an invalid token, and ignores other refusals', () => {
    expect(classifyRefusal(403, 'Bearer error="insufficient_scope", scope="write"')).toEqual({
      kind: 'insufficient_scope',
      scope: 'write',
    });
    expect(classifyRefusal(401, 'Bearer error="invalid_token"')).toEqual({ kind: 'invalid_token' });
    expect(classifyRefusal(401, undefined)).toEqual({ kind: 'other' });
    expect(classifyRefusal(401, 'Bearer realm="api"')).toEqual({ kind: 'other' });
    expect(classifyRefusal(403, undefined)).toEqual({ kind: 'other' });
    expect(classifyRefusal(500, 'Bearer error="insufficient_scope"')).toEqual({ kind: 'other' });
  });
});

describe('oauth configuration', () => {
  const build = (credential: Record<string, unknown>) =>
    buildConfig({ oauth: { credentials: { c: credential } } }, process.cwd(), { env: {} });

  it('refuses a credential without issuer or token endpoint, and client credentials without a secret', () => {
    expect(() => build({ clientId: 'x' })).toThrow(/oauth\.credentials\.c\.issuer/);
    expect(() =>
      build({ tokenEndpoint: 'https://a.example/token', clientId: 'x', grant: 'client_credentials' }),
    ).toThrow(/clientSecret/);
    expect(() => build({ issuer: 'https://a.example', clientId: 'x', clientSecretValue: 'no' })).toThrow(
      /unknown key/,
    );
  });

  it('takes the defaults for skew, connection time and timeout', () => {
    const config = build({ issuer: 'https://a.example', clientId: 'x' });
    expect(config.oauth).toMatchObject({
      refreshSkewSeconds: 60,
      connectTtlSeconds: 600,
      timeoutSeconds: 15,
    });
    expect(config.oauth.credentials.c).toMatchObject({ grant: 'authorization_code', discovery: 'oidc' });
  });
});
