import * as oidc from 'openid-client';
import type { OAuthCredentialConfig } from '../../core/config.js';
import { CustosError } from '../../core/errors.js';

/** A token endpoint answer, reduced to what the broker keeps. */
export interface TokenGrant {
  accessToken: string;
  /** Absent when the provider issued none (or, on refresh, did not rotate it). */
  refreshToken?: string;
  /** Seconds the access token lives, if the provider said. */
  expiresIn?: number;
  scope?: string;
  tokenType: string;
}

/** The token requests the broker makes of a provider. */
export interface ProviderClient {
  authorizationUrl(parameters: { redirectUri: string; state: string; codeChallenge: string }): Promise<URL>;
  exchangeCode(
    callback: URL,
    checks: { redirectUri: string; state: string; verifier: string },
  ): Promise<TokenGrant>;
  refresh(refreshToken: string): Promise<TokenGrant>;
  clientCredentials(): Promise<TokenGrant>;
}

function isLoopback(url: URL): boolean {
  return url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
}

function grantOf(response: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers): TokenGrant {
  const expiresIn = response.expiresIn();
  return {
    accessToken: response.access_token,
    ...(response.refresh_token === undefined ? {} : { refreshToken: response.refresh_token }),
    ...(expiresIn === undefined ? {} : { expiresIn }),
    ...(response.scope === undefined ? {} : { scope: response.scope }),
    tokenType: response.token_type,
  };
}

/**
 * The provider's own refusal (an OAuth error code such as invalid_grant) or a transport failure,
 * as a CustosError. The provider's description is left out: it may quote what was sent.
 */
export function providerError(credential: string, error: unknown): CustosError {
  if (error instanceof CustosError) return error;
  const oauthCode =
    error instanceof oidc.ResponseBodyError
      ? error.error
      : error instanceof oidc.AuthorizationResponseError
        ? error.error
        : undefined;
  return new CustosError(
    'oauth_refresh_failed',
    oauthCode === undefined
      ? `the OAuth provider of ${credential} did not answer`
      : `the OAuth provider of ${credential} refused the request (${oauthCode})`,
    {
      detail: { credential, ...(oauthCode === undefined ? {} : { providerError: oauthCode }) },
      cause: error,
    },
  );
}

/**
 * openid-client for one configured credential. Discovery happens on first use, so Custos
 * starts while a provider is down; a failed discovery is retried on the next request.
 */
export function openidProvider(
  name: string,
  settings: OAuthCredentialConfig,
  options: { clientSecret: () => Promise<string | undefined>; timeoutSeconds: number },
): ProviderClient {
  let configuration: Promise<oidc.Configuration> | undefined;
  const extra = (): Record<string, string> =>
    settings.resource === undefined ? {} : { resource: settings.resource };

  const configure = (): Promise<oidc.Configuration> => {
    configuration ??= (async () => {
      const secret = settings.clientSecret === undefined ? undefined : await options.clientSecret();
      if (settings.clientSecret !== undefined && secret === undefined) {
        throw new CustosError(
          'oauth_not_connected',
          `the client secret of ${name} (vault secret ${settings.clientSecret}) is not set`,
          { detail: { credential: name, fix: `custos secret set ${settings.clientSecret}` } },
        );
      }
      const auth =
        secret === undefined
          ? oidc.None()
          : settings.tokenEndpointAuth === 'client_secret_post'
            ? oidc.ClientSecretPost(secret)
            : oidc.ClientSecretBasic(secret);
      let config: oidc.Configuration;
      if (settings.issuer !== undefined) {
        const issuer = new URL(settings.issuer);
        // Plain http only for a provider on this machine (development and tests).
        const insecure = issuer.protocol === 'http:' && isLoopback(issuer);
        config = await oidc.discovery(issuer, settings.clientId, undefined, auth, {
          algorithm: settings.discovery,
          timeout: options.timeoutSeconds,
          ...(insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
        });
        if (settings.tokenEndpoint !== undefined || settings.authorizationEndpoint !== undefined) {
          const { supportsPKCE: _, ...discovered } = config.serverMetadata();
          config = new oidc.Configuration(
            {
              ...discovered,
              ...(settings.tokenEndpoint === undefined ? {} : { token_endpoint: settings.tokenEndpoint }),
              ...(settings.authorizationEndpoint === undefined
                ? {}
                : { authorization_endpoint: settings.authorizationEndpoint }),
            },
            settings.clientId,
            undefined,
            auth,
          );
          if (insecure) oidc.allowInsecureRequests(config);
        }
      } else {
        const token = new URL(settings.tokenEndpoint ?? '');
        config = new oidc.Configuration(
          {
            issuer: token.origin,
            token_endpoint: token.href,
            ...(settings.authorizationEndpoint === undefined
              ? {}
              : { authorization_endpoint: settings.authorizationEndpoint }),
          },
          settings.clientId,
          undefined,
          auth,
        );
        if (token.protocol === 'http:' && isLoopback(token)) oidc.allowInsecureRequests(config);
      }
      config.timeout = options.timeoutSeconds;
      return config;
    })().catch((error: unknown) => {
      configuration = undefined;
      if (error instanceof CustosError) throw error;
      throw new CustosError(
        'oauth_refresh_failed',
        `the OAuth provider of ${name} did not answer discovery`,
        {
          detail: { credential: name },
          cause: error,
        },
      );
    });
    return configuration;
  };

  const scope = settings.scopes.join(' ');
  return {
    async authorizationUrl({ redirectUri, state, codeChallenge }) {
      const config = await configure();
      return oidc.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        response_type: 'code',
        ...(scope === '' ? {} : { scope }),
        code_challenge: codeChallenge,
        code_challenge_method: 'S256',
        state,
        ...extra(),
      });
    },
    async exchangeCode(callback, { redirectUri, state, verifier }) {
      const config = await configure();
      // openid-client sends the callback URL without its query as redirect_uri: rebuild it on the
      // registered one, whatever host or proxy the browser came back through.
      const current = new URL(redirectUri);
      current.search = callback.search;
      try {
        return grantOf(
          await oidc.authorizationCodeGrant(
            config,
            current,
            { pkceCodeVerifier: verifier, expectedState: state, idTokenExpected: false },
            extra(),
          ),
        );
      } catch (error) {
        throw providerError(name, error);
      }
    },
    async refresh(refreshToken) {
      const config = await configure();
      try {
        return grantOf(await oidc.refreshTokenGrant(config, refreshToken, extra()));
      } catch (error) {
        throw providerError(name, error);
      }
    },
    async clientCredentials() {
      const config = await configure();
      try {
        return grantOf(
          await oidc.clientCredentialsGrant(config, { ...(scope === '' ? {} : { scope }), ...extra() }),
        );
      } catch (error) {
        throw providerError(name, error);
      }
    },
  };
}
