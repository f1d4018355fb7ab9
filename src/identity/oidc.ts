import { randomBytes } from 'node:crypto';
import * as oidc from 'openid-client';
import type { Clock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';

/** Console single sign-on with an OpenID Connect provider (authorization code flow with PKCE). */
export interface OidcSettings {
  issuer: string;
  clientId: string;
  /** Absent for a public client (PKCE only). */
  clientSecret?: string;
  scopes: readonly string[];
  /** Where the provider sends the browser back: <custos>/api/v1/session/oidc/callback. */
  redirectUri: string;
}

/** Who the provider says logged in. Custos matches the email to a provisioned user. */
export interface OidcIdentity {
  subject: string;
  email: string;
}

interface Transaction {
  state: string;
  nonce: string;
  verifier: string;
  expiresAt: number;
}

// A login has ten minutes to come back from the provider; at most this many may be open at once.
const transactionTtlMs = 10 * 60_000;
const maxTransactions = 10_000;

function isLoopback(url: URL): boolean {
  return url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
}

/**
 * The relying party side of console SSO, on openid-client. The provider's metadata is
 * discovered on first use (so Custos starts while the provider is down). Open logins live in
 * this process's memory, keyed by an id the browser carries in a cookie, so a callback
 * completes only in the browser that started it.
 */
export class OidcLogin {
  private config: Promise<oidc.Configuration> | undefined;
  private readonly transactions = new Map<string, Transaction>();

  constructor(
    private readonly settings: OidcSettings,
    private readonly clock: Clock,
  ) {}

  private configuration(): Promise<oidc.Configuration> {
    if (this.config === undefined) {
      const issuer = new URL(this.settings.issuer);
      // Plain http only for a provider on this machine (development and tests).
      const insecure = issuer.protocol === 'http:' && isLoopback(issuer);
      const auth =
        this.settings.clientSecret === undefined
          ? oidc.None()
          : oidc.ClientSecretPost(this.settings.clientSecret);
      this.config = oidc
        .discovery(issuer, this.settings.clientId, undefined, auth, {
          ...(insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
          timeout: 10,
        })
        .catch((error: unknown) => {
          this.config = undefined;
          throw new CustosError(
            'upstream_unavailable',
            `the OIDC provider ${issuer.origin} did not answer discovery`,
            {
              cause: error,
            },
          );
        });
    }
    return this.config;
  }

  /** Start a login: the provider URL to send the browser to, and the id of this login. */
  async begin(): Promise<{ url: string; transactionId: string }> {
    const config = await this.configuration();
    const now = this.clock.now();
    for (const [id, t] of this.transactions) if (t.expiresAt <= now) this.transactions.delete(id);
    if (this.transactions.size >= maxTransactions) {
      throw new CustosError('conflict', 'too many single sign-on logins are open; try again shortly');
    }
    const transaction: Transaction = {
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      verifier: oidc.randomPKCECodeVerifier(),
      expiresAt: now + transactionTtlMs,
    };
    const transactionId = randomBytes(32).toString('base64url');
    this.transactions.set(transactionId, transaction);
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: this.settings.redirectUri,
      scope: this.settings.scopes.join(' '),
      response_type: 'code',
      code_challenge: await oidc.calculatePKCECodeChallenge(transaction.verifier),
      code_challenge_method: 'S256',
      state: transaction.state,
      nonce: transaction.nonce,
    });
    return { url: url.href, transactionId };
  }

  /**
   * Finish a login from the callback URL: exchange the code (checking state, nonce and
   * PKCE), verify the ID token, and return the verified email. Each login finishes once.
   */
  async finish(transactionId: string, callbackUrl: URL): Promise<OidcIdentity> {
    const transaction = this.transactions.get(transactionId);
    this.transactions.delete(transactionId);
    if (transaction === undefined || transaction.expiresAt <= this.clock.now()) {
      throw new CustosError('invalid_grant', 'this single sign-on login is unknown or expired; start again');
    }
    const config = await this.configuration();
    let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
    try {
      tokens = await oidc.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: transaction.verifier,
        expectedState: transaction.state,
        expectedNonce: transaction.nonce,
        idTokenExpected: true,
      });
    } catch (error) {
      throw new CustosError('invalid_grant', 'the OIDC provider did not confirm the login', { cause: error });
    }
    const claims = tokens.claims();
    if (claims === undefined) throw new CustosError('invalid_grant', 'the OIDC provider sent no ID token');
    let email = claims.email;
    let verified = claims.email_verified;
    // Providers that conform ID token claims put the email in userinfo only.
    if (typeof email !== 'string') {
      const info = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
      email = info.email;
      verified = info.email_verified;
    }
    if (typeof email !== 'string' || email === '') {
      throw new CustosError(
        'invalid_grant',
        'the OIDC provider did not say which email logged in (scope email)',
      );
    }
    if (verified === false) {
      throw new CustosError('invalid_grant', `the OIDC provider has not verified ${email}`);
    }
    return { subject: claims.sub, email: email.toLowerCase() };
  }
}
