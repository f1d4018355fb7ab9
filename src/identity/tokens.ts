import { randomBytes } from 'node:crypto';
import { type JWTHeaderParameters, jwtVerify, SignJWT } from 'jose';
import { z } from 'zod';
import type { Clock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import { type AgentDirectory, type AgentView, isAgentViewActive } from './directory.js';
import type { DpopVerifier } from './dpop.js';
import { type SigningKeys, signingAlgorithm } from './keys.js';
import type { TaskGrant } from './tasks.js';

export type { TaskGrant } from './tasks.js';

/**
 * Who is calling, as the gateway sees it after authentication. Times are milliseconds
 * since the Unix epoch. Name, owner, environment and purpose come from the agent
 * directory (current values), epoch and task from the token.
 */
export interface Principal {
  agentId: string;
  agentName: string;
  owner: string;
  environment: string;
  purpose: string;
  epoch: number;
  tokenId: string;
  expiresAt: number;
  task: TaskGrant | null;
}

/**
 * How an access token reached us (RFC 9449 §7.1): as a bearer token, with a DPoP proof of
 * the request it came with, or (at the token endpoint, for RFC 8693 exchange) after the
 * caller verified a DPoP proof itself (`jkt`, or null when the request carried none).
 */
export type TokenPresentation =
  | { readonly scheme: 'Bearer' }
  | {
      readonly scheme: 'DPoP';
      readonly proof: string | undefined;
      readonly method: string;
      readonly url: string;
    }
  | { readonly scheme: 'proven'; readonly jkt: string | null };

const bearer: TokenPresentation = Object.freeze({ scheme: 'Bearer' });

/** RFC 9068 media type of JWT access tokens; checked on verification so no other JWT passes as one. */
const accessTokenType = 'at+jwt';
/** Tokens longer than this are refused before any parsing. */
const maxTokenLength = 8192;

export interface IssuedToken {
  readonly token: string;
  readonly tokenId: string;
  /** Milliseconds since the Unix epoch. */
  readonly expiresAt: number;
  /** Seconds from now, for the token response's expires_in. */
  readonly expiresIn: number;
}

export interface TokenServiceOptions {
  keys: SigningKeys;
  directory: AgentDirectory;
  clock: Clock;
  /** The authorization server's issuer URL (iss). */
  issuer: string;
  /** The protected resource's URL (aud), e.g. https://custos.example/mcp. */
  audience: string;
  /** Lifetime of agent tokens; 10 minutes by default. */
  ttlSeconds?: number;
  /** How many verified tokens to remember; 10,000 by default. */
  cacheSize?: number;
  /** Verifies DPoP proofs of DPoP-bound tokens; without it the DPoP scheme is refused. */
  dpop?: DpopVerifier;
}

const taskClaim = z.strictObject({
  id: z.string().min(1),
  purpose: z.string(),
  servers: z.array(z.string()).nullable(),
  tools: z.array(z.string()).nullable(),
  budget: z.number().int().positive().nullable(),
});

const claimsSchema = z.object({
  sub: z.string().min(1),
  client_id: z.string().min(1),
  owner: z.string(),
  epoch: z.number().int().nonnegative(),
  jti: z.string().min(1),
  iat: z.number(),
  exp: z.number(),
  task: taskClaim.optional(),
  /** RFC 9449 §6.1: the token is bound to the DPoP key with this RFC 7638 thumbprint. */
  cnf: z.object({ jkt: z.string().min(1) }).optional(),
});

/** What a verified token says, before the live agent check. */
interface VerifiedClaims {
  readonly agentId: string;
  readonly epoch: number;
  readonly tokenId: string;
  readonly expiresAt: number;
  readonly task: TaskGrant | null;
  /** Thumbprint of the DPoP key the token is bound to (cnf.jkt), or null for a bearer token. */
  readonly jkt: string | null;
}

/** An invalid_token error that tells the client little and keeps the reason in `cause`. */
function invalidToken(reason: string, cause?: unknown): CustosError {
  return new CustosError('invalid_token', 'the access token is not valid', {
    cause: new Error(reason, cause === undefined ? undefined : { cause }),
  });
}

/** A sound token of an agent that must use DPoP-bound tokens; the message says what to do. */
function dpopRequired(): CustosError {
  return new CustosError('invalid_token', 'this agent must use DPoP-bound access tokens (RFC 9449)', {
    cause: new Error('the agent requires DPoP and the token is not bound'),
  });
}

/**
 * Issues and verifies Custos access tokens: JWTs signed with EdDSA (RFC 9068 profile)
 * carrying the agent id (sub, client_id), its owner, its revocation epoch and, for task
 * tokens, the task grant.
 *
 * Verification is split in two. The signature and claim checks are cached per token
 * string until the token expires, so a busy agent pays for them once. The agent's
 * status and epoch are checked against the directory on every call, never cached, so a
 * suspension takes effect on the next call.
 *
 * Failure codes: `invalid_token` for anything wrong with the token itself (malformed,
 * bad signature, wrong issuer or audience, expired, unknown agent, stale epoch), and
 * `agent_inactive` when the token is sound but its agent is suspended, offboarded or
 * past its expiry: the client then knows a new token will not help.
 */
export class TokenService {
  readonly issuer: string;
  readonly audience: string;
  readonly ttlSeconds: number;
  private readonly keys: SigningKeys;
  private readonly directory: AgentDirectory;
  private readonly clock: Clock;
  private readonly cacheSize: number;
  private readonly verified = new Map<string, VerifiedClaims>();
  private readonly dpop: DpopVerifier | undefined;

  constructor(options: TokenServiceOptions) {
    this.keys = options.keys;
    this.directory = options.directory;
    this.clock = options.clock;
    this.issuer = options.issuer;
    this.audience = options.audience;
    this.ttlSeconds = options.ttlSeconds ?? 600;
    this.cacheSize = options.cacheSize ?? 10_000;
    this.dpop = options.dpop;
  }

  /**
   * Sign an access token for an agent. `task` makes it a task token; `notAfter` (ms)
   * caps its expiry (a task token never outlives the token it came from); `jkt` binds it
   * to a DPoP key (RFC 9449 §6.1, claim cnf.jkt).
   */
  async issueAccessToken(
    agent: AgentView,
    options: {
      ttlSeconds?: number;
      notAfter?: number;
      task?: Omit<TaskGrant, 'expiresAt'>;
      jkt?: string | null;
    } = {},
  ): Promise<IssuedToken> {
    const key = this.keys.current();
    const iat = Math.floor(this.clock.now() / 1000);
    let exp = iat + (options.ttlSeconds ?? this.ttlSeconds);
    if (options.notAfter !== undefined) exp = Math.min(exp, Math.floor(options.notAfter / 1000));
    // A token never outlives its agent: at the agent's expiry it stops, whatever the lifetime.
    if (agent.expiresAt !== null) exp = Math.min(exp, Math.floor(agent.expiresAt / 1000));
    if (exp <= iat) throw new CustosError('invalid_grant', 'the token would expire immediately');
    const tokenId = randomBytes(16).toString('base64url');
    const claims: Record<string, unknown> = { client_id: agent.id, owner: agent.owner, epoch: agent.epoch };
    if (options.task !== undefined) {
      const { id, purpose, servers, tools, budget } = options.task;
      claims.task = { id, purpose, servers, tools, budget };
    }
    if (options.jkt != null) claims.cnf = { jkt: options.jkt };
    const header: JWTHeaderParameters = { alg: signingAlgorithm, kid: key.kid, typ: accessTokenType };
    const token = await new SignJWT(claims)
      .setProtectedHeader(header)
      .setIssuer(this.issuer)
      .setAudience(this.audience)
      .setSubject(agent.id)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(tokenId)
      .sign(key.privateKey);
    return { token, tokenId, expiresAt: exp * 1000, expiresIn: exp - iat };
  }

  /**
   * Authenticate an access token: the Principal, or a CustosError (`invalid_token`,
   * `invalid_dpop_proof` or `agent_inactive`, see the class comment) whose `cause` holds the
   * reason for the log. A DPoP-bound token is accepted only with a valid proof of its key
   * (RFC 9449 §7.1), never as a bearer token; an agent that requires DPoP has its unbound
   * tokens refused.
   */
  async verifyAccessToken(token: string, presentation: TokenPresentation = bearer): Promise<Principal> {
    const now = this.clock.now();
    let claims = this.verified.get(token);
    if (claims !== undefined && claims.expiresAt <= now) {
      this.verified.delete(token);
      // Tokens end at their agent's expiry: say the agent expired, so the client knows a new token will not help.
      const agent = this.directory.get(claims.agentId);
      if (agent !== undefined && agent.expiresAt !== null && agent.expiresAt <= now) {
        throw new CustosError('agent_inactive', 'the agent is not active', {
          cause: new Error('agent expired'),
        });
      }
      throw invalidToken('expired');
    }
    if (claims === undefined) {
      claims = await this.verifySignedClaims(token, now);
      this.remember(token, claims);
    }
    const principal = await this.checkAgent(claims, now);
    await this.checkBinding(token, claims, presentation);
    return principal;
  }

  /** RFC 9449 §7.1 and §7.2: the token is presented the way it is bound, and the agent's rule holds. */
  private async checkBinding(
    token: string,
    claims: VerifiedClaims,
    presentation: TokenPresentation,
  ): Promise<void> {
    if (presentation.scheme === 'Bearer') {
      if (claims.jkt !== null) throw invalidToken('DPoP-bound token presented as a bearer token');
      if (this.directory.get(claims.agentId)?.requireDpop === true) throw dpopRequired();
      return;
    }
    if (presentation.scheme === 'proven') {
      if (claims.jkt !== null && presentation.jkt !== claims.jkt) {
        throw invalidToken(
          presentation.jkt === null
            ? 'DPoP-bound token without a DPoP proof'
            : 'DPoP key differs from cnf.jkt',
        );
      }
      return;
    }
    if (claims.jkt === null) throw invalidToken('bearer token presented with the DPoP scheme');
    if (this.dpop === undefined) throw invalidToken('DPoP is not enabled');
    const proof = await this.dpop.verify(presentation.proof, {
      method: presentation.method,
      url: presentation.url,
      accessToken: token,
    });
    if (proof.jkt !== claims.jkt) {
      throw new CustosError('invalid_dpop_proof', 'the DPoP proof is not valid', {
        cause: new Error('DPoP key differs from the key the token is bound to (cnf.jkt)'),
      });
    }
  }

  private async verifySignedClaims(token: string, now: number): Promise<VerifiedClaims> {
    if (token.length > maxTokenLength) throw invalidToken('token too long');
    let payload: unknown;
    try {
      const result = await jwtVerify(
        token,
        async (header) => {
          const key = header.kid === undefined ? undefined : await this.keys.find(header.kid);
          if (key === undefined) throw new Error(`unknown signing key ${String(header.kid)}`);
          return key.publicKey;
        },
        {
          algorithms: [signingAlgorithm],
          issuer: this.issuer,
          audience: this.audience,
          typ: accessTokenType,
          requiredClaims: ['sub', 'jti', 'iat', 'exp'],
          currentDate: new Date(now),
        },
      );
      payload = result.payload;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw invalidToken(typeof code === 'string' ? code : 'verification failed', error);
    }
    const parsed = claimsSchema.safeParse(payload);
    if (!parsed.success) throw invalidToken('malformed claims', parsed.error);
    const c = parsed.data;
    if (c.client_id !== c.sub) throw invalidToken('client_id differs from sub');
    const expiresAt = c.exp * 1000;
    return Object.freeze({
      agentId: c.sub,
      epoch: c.epoch,
      tokenId: c.jti,
      expiresAt,
      task: c.task === undefined ? null : Object.freeze({ ...c.task, expiresAt }),
      jkt: c.cnf?.jkt ?? null,
    });
  }

  /** The live check, on every call: the agent exists, is active, and the token's epoch is current. */
  private async checkAgent(claims: VerifiedClaims, now: number): Promise<Principal> {
    let agent = this.directory.get(claims.agentId);
    // A token from a newer epoch (or an agent this process has not seen) means another
    // process wrote first; read that one row rather than wait for the next refresh.
    if (agent === undefined || claims.epoch > agent.epoch)
      agent = await this.directory.reload(claims.agentId);
    if (agent === undefined) throw invalidToken('unknown agent');
    if (!isAgentViewActive(agent, now)) {
      throw new CustosError('agent_inactive', 'the agent is not active', {
        cause: new Error(agent.status === 'active' ? 'agent expired' : `agent ${agent.status}`),
      });
    }
    if (claims.epoch !== agent.epoch)
      throw invalidToken(`stale epoch ${claims.epoch}, agent at ${agent.epoch}`);
    return {
      agentId: agent.id,
      agentName: agent.name,
      owner: agent.owner,
      environment: agent.environment,
      purpose: agent.purpose,
      epoch: claims.epoch,
      tokenId: claims.tokenId,
      expiresAt: claims.expiresAt,
      task: claims.task,
    };
  }

  private remember(token: string, claims: VerifiedClaims): void {
    if (this.verified.size >= this.cacheSize) {
      // Insertion order is roughly expiry order: drop the oldest entry.
      const oldest = this.verified.keys().next();
      if (!oldest.done) this.verified.delete(oldest.value);
    }
    this.verified.set(token, claims);
  }

  /** Number of cached verifications (for metrics and tests). */
  get cachedTokens(): number {
    return this.verified.size;
  }
}
