import { decodeJwt, importJWK, type JWK, jwtVerify } from 'jose';
import type { Clock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import type { AgentTable, Store } from '../store/index.js';
import { type AgentDirectory, type AgentView, agentViewFromRow } from './directory.js';
import { ReplayCache } from './replay.js';
import { burnVerification, verifyClientSecret } from './secrets.js';

/** RFC 7523 §2.2 client assertion type. */
export const jwtBearerAssertionType = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';

export interface AuthenticatedClient {
  readonly agent: AgentView;
  readonly method: ClientAuthMethod;
}

export interface ClientAuthenticatorOptions {
  store: Store;
  clock: Clock;
  directory: AgentDirectory;
  issuer: string;
  tokenEndpoint: string;
  /** Longest an assertion may live (exp minus now); 5 minutes by default. */
  maxAssertionLifetimeSeconds?: number;
  /** Assertion jtis remembered for replay detection; 100,000 by default. */
  replayCacheSize?: number;
}

const assertionClockToleranceSeconds = 30;
const agentIdPattern = /^agt_[0-9a-z]{26}$/;

/** invalid_client with a terse message for the wire and the reason in `cause`. */
function invalidClient(reason: string, cause?: unknown): CustosError {
  return new CustosError('invalid_client', 'client authentication failed', {
    cause: new Error(reason, cause === undefined ? undefined : { cause }),
  });
}

/** Whether a token request carries any client authentication (RFC 6749 §2.3). */
export function hasClientAuthentication(form: Record<string, string>, authorizationHeader?: string): boolean {
  return (
    authorizationHeader !== undefined ||
    form.client_secret !== undefined ||
    form.client_assertion !== undefined ||
    form.client_assertion_type !== undefined
  );
}

/**
 * Authenticates agents at the token endpoint: client_secret_basic and client_secret_post
 * (RFC 6749 §2.3.1) against scrypt hashes, and private_key_jwt (RFC 7523 §2.2, §3)
 * against registered public keys, with a replay cache of assertion jtis.
 *
 * The replay cache lives in this process: with several Custos replicas, an assertion
 * could be replayed once per replica within its (short) lifetime.
 */
export class ClientAuthenticator {
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly directory: AgentDirectory;
  private readonly audiences: string[];
  private readonly maxLifetime: number;
  /** `client_id NUL jti` until the time (ms) after which the assertion is expired anyway. */
  private readonly seenAssertions: ReplayCache;

  constructor(options: ClientAuthenticatorOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.directory = options.directory;
    this.audiences = [...new Set([options.tokenEndpoint, options.issuer])];
    this.maxLifetime = options.maxAssertionLifetimeSeconds ?? 300;
    this.seenAssertions = new ReplayCache(options.replayCacheSize ?? 100_000);
  }

  /**
   * Authenticate the client of a token request and return its agent. Fails with
   * invalid_client (bad or missing credentials, inactive agent) or bad_request (more
   * than one method, or a client_id that contradicts the credentials).
   */
  async authenticate(
    form: Record<string, string>,
    authorizationHeader?: string,
  ): Promise<AuthenticatedClient> {
    const basic = authorizationHeader === undefined ? undefined : parseBasic(authorizationHeader);
    const usesPost = form.client_secret !== undefined;
    const usesJwt = form.client_assertion !== undefined || form.client_assertion_type !== undefined;
    const used = [basic !== undefined, usesPost, usesJwt].filter(Boolean).length;
    if (used > 1) throw new CustosError('bad_request', 'use exactly one client authentication method');
    let agent: AgentTable;
    let method: ClientAuthMethod;
    if (basic !== undefined) {
      if (form.client_id !== undefined && form.client_id !== basic.clientId) {
        throw new CustosError('bad_request', 'client_id differs from the Authorization header');
      }
      agent = await this.verifySecret(basic.clientId, basic.secret);
      method = 'client_secret_basic';
    } else if (usesPost) {
      if (form.client_id === undefined) throw invalidClient('client_secret without client_id');
      agent = await this.verifySecret(form.client_id, form.client_secret as string);
      method = 'client_secret_post';
    } else if (usesJwt) {
      agent = await this.verifyAssertion(form);
      method = 'private_key_jwt';
    } else {
      throw invalidClient('no client authentication');
    }
    const view = agentViewFromRow(agent);
    this.directory.observe(view);
    const now = this.clock.now();
    if (agent.status !== 'active' || (view.expiresAt !== null && view.expiresAt <= now)) {
      // The caller proved who it is, so it may learn why it gets no token.
      throw new CustosError(
        'invalid_client',
        `agent is ${agent.status === 'active' ? 'expired' : agent.status}`,
        {
          cause: new Error(`agent ${agent.id} is not active`),
        },
      );
    }
    return { agent: view, method };
  }

  private async verifySecret(clientId: string, secret: string): Promise<AgentTable> {
    const agent = agentIdPattern.test(clientId) ? await this.loadAgent(clientId) : undefined;
    const hashes =
      agent === undefined
        ? []
        : await this.store.db
            .selectFrom('agent_credentials')
            .select('secret_hash')
            .where('agent_id', '=', agent.id)
            .where('kind', '=', 'client_secret')
            .where('revoked_at', 'is', null)
            .execute();
    if (hashes.length === 0) {
      // Same work as a real check, so timing does not reveal which client ids exist.
      await burnVerification(secret);
      throw invalidClient(agent === undefined ? 'unknown client' : 'no active client secret');
    }
    for (const { secret_hash } of hashes) {
      if (secret_hash !== null && (await verifyClientSecret(secret, secret_hash))) return agent as AgentTable;
    }
    throw invalidClient('wrong client secret');
  }

  /**
   * RFC 7523 §3 (and RFC 7521 §5.2): iss and sub are the client id; aud is one string naming
   * our token endpoint or issuer (several audiences are refused, so an assertion made for
   * another server cannot be replayed here); exp is required and at most
   * `maxAssertionLifetimeSeconds` away, also counted from iat; iat is not in the future; the
   * jti is used once; the alg is the one the registered key is for.
   */
  private async verifyAssertion(form: Record<string, string>): Promise<AgentTable> {
    if (form.client_assertion_type !== jwtBearerAssertionType) {
      throw invalidClient(`client_assertion_type must be ${jwtBearerAssertionType}`);
    }
    const assertion = form.client_assertion;
    if (assertion === undefined || assertion.length > 8192)
      throw invalidClient('missing or oversized client_assertion');
    let unverified: { iss?: unknown; sub?: unknown };
    try {
      unverified = decodeJwt(assertion);
    } catch (error) {
      throw invalidClient('malformed client_assertion', error);
    }
    const clientId = unverified.sub;
    if (typeof clientId !== 'string' || unverified.iss !== clientId)
      throw invalidClient('iss and sub must be the client id');
    if (form.client_id !== undefined && form.client_id !== clientId) {
      throw new CustosError('bad_request', 'client_id differs from the client assertion');
    }
    const agent = agentIdPattern.test(clientId) ? await this.loadAgent(clientId) : undefined;
    if (agent === undefined) throw invalidClient('unknown client');
    const keys = await this.store.db
      .selectFrom('agent_credentials')
      .select('public_jwk')
      .where('agent_id', '=', agent.id)
      .where('kind', '=', 'public_key')
      .where('revoked_at', 'is', null)
      .execute();
    const now = this.clock.now();
    let lastError: unknown = new Error('no registered public key');
    for (const { public_jwk } of keys) {
      if (public_jwk === null) continue;
      const jwk = JSON.parse(public_jwk) as JWK;
      const algorithms = jwk.alg === 'EdDSA' ? ['EdDSA', 'Ed25519'] : [jwk.alg as string];
      try {
        const key = await importJWK(jwk, jwk.alg);
        const { payload } = await jwtVerify(assertion, key, {
          algorithms,
          issuer: clientId,
          subject: clientId,
          audience: this.audiences,
          requiredClaims: ['exp', 'jti'],
          currentDate: new Date(now),
          clockTolerance: assertionClockToleranceSeconds,
        });
        if (typeof payload.aud !== 'string') throw invalidClient('aud must be a single string');
        const exp = payload.exp as number;
        if (exp * 1000 > now + (this.maxLifetime + assertionClockToleranceSeconds) * 1000) {
          throw invalidClient(`client assertion lives longer than ${this.maxLifetime}s`);
        }
        // jose checks iat only with maxTokenAge; an assertion from the future is refused here.
        if (payload.iat !== undefined && (payload.iat - assertionClockToleranceSeconds) * 1000 > now) {
          throw invalidClient('client assertion issued in the future (iat)');
        }
        if (payload.iat !== undefined && exp - payload.iat > this.maxLifetime) {
          throw invalidClient(`client assertion lives longer than ${this.maxLifetime}s (exp - iat)`);
        }
        const jti = payload.jti;
        if (typeof jti !== 'string' || jti === '' || jti.length > 256) throw invalidClient('bad jti');
        this.recordAssertion(clientId, jti, exp * 1000, now);
        return agent;
      } catch (error) {
        if (error instanceof CustosError) throw error;
        lastError = error;
      }
    }
    throw invalidClient('client assertion did not verify', lastError);
  }

  /** RFC 7523 §3 item 7: a jti is accepted once while its assertion could still be valid. */
  private recordAssertion(clientId: string, jti: string, exp: number, now: number): void {
    const verdict = this.seenAssertions.remember(
      `${clientId}\u0000${jti}`,
      exp + assertionClockToleranceSeconds * 1000,
      now,
    );
    if (verdict === 'replayed') throw invalidClient('client assertion replayed');
    if (verdict === 'too_old') throw invalidClient('client assertion too old for the replay cache');
  }

  private loadAgent(id: string): Promise<AgentTable | undefined> {
    return this.store.db.selectFrom('agents').selectAll().where('id', '=', id).executeTakeFirst();
  }
}

/** RFC 6749 §2.3.1: Basic credentials are form-urlencoded before base64. */
function parseBasic(header: string): { clientId: string; secret: string } {
  const match = /^Basic[ ]+([A-Za-z0-9+/=._~-]+)[ ]*$/i.exec(header);
  if (match === null) throw invalidClient('Authorization header is not Basic');
  const decoded = Buffer.from(match[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw invalidClient('Basic credentials lack a colon');
  try {
    const formDecode = (value: string) => decodeURIComponent(value.replace(/\+/g, ' '));
    return { clientId: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
  } catch (error) {
    throw invalidClient('Basic credentials are not form-urlencoded', error);
  }
}
