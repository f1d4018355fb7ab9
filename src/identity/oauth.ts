import type { Clock } from '../core/clock.js';
import { CustosError, type ErrorCode } from '../core/errors.js';
import type { IdGenerator } from '../core/ids.js';
import type { Store } from '../store/index.js';
import { type ClientAuthenticator, hasClientAuthentication } from './client-auth.js';
import { clientAssertionAlgorithms } from './client-keys.js';
import type { AgentDirectory } from './directory.js';
import { type DpopVerifier, dpopAlgorithms, invalidProof } from './dpop.js';
import { formatTaskScope, narrowReach, parseTaskScope, type TaskGrant } from './tasks.js';
import type { Principal, TokenService } from './tokens.js';

export const grantTypes = {
  clientCredentials: 'client_credentials',
  /** RFC 8693 §2.1. */
  tokenExchange: 'urn:ietf:params:oauth:grant-type:token-exchange',
} as const;

/** RFC 8693 §3 token type identifier of an access token. */
export const accessTokenTypeUri = 'urn:ietf:params:oauth:token-type:access_token';

/** Headers every token endpoint response carries (RFC 6749 §5.1). */
export const tokenResponseHeaders: Readonly<Record<string, string>> = Object.freeze({
  'cache-control': 'no-store',
  pragma: 'no-cache',
});

/** RFC 6749 §5.1 (and RFC 8693 §2.2.1) successful token response. */
export interface TokenSuccess {
  access_token: string;
  /** DPoP when the token is bound to the key of the request's DPoP proof (RFC 9449 §5). */
  token_type: 'Bearer' | 'DPoP';
  expires_in: number;
  scope?: string;
  issued_token_type?: string;
}

/** Error codes of RFC 6749 §5.2, RFC 8707 and RFC 8693 that this endpoint returns. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'invalid_dpop_proof';

/** An error response: send `body` as JSON with `status` and `headers` (plus tokenResponseHeaders). */
export interface TokenError {
  status: number;
  body: { error: OAuthErrorCode; error_description: string };
  headers?: Record<string, string>;
  /** The internal error, for the log only; never send it. */
  cause?: CustosError;
}

export type TokenEndpointResult = TokenSuccess | TokenError;

export function isTokenError(result: TokenEndpointResult): result is TokenError {
  return 'status' in result && 'body' in result;
}

/** Internal codes to wire codes, in this one place. */
const wireErrors: Partial<Record<ErrorCode, { error: OAuthErrorCode; status: number }>> = {
  bad_request: { error: 'invalid_request', status: 400 },
  invalid_client: { error: 'invalid_client', status: 401 },
  invalid_grant: { error: 'invalid_grant', status: 400 },
  unsupported_grant_type: { error: 'unsupported_grant_type', status: 400 },
  invalid_scope: { error: 'invalid_scope', status: 400 },
  invalid_target: { error: 'invalid_target', status: 400 },
  // RFC 9449 §5: a bad or missing proof at the token endpoint is a 400.
  invalid_dpop_proof: { error: 'invalid_dpop_proof', status: 400 },
};

/** Token endpoint, JWKS and metadata locations, derived from the issuer URL. */
export function oauthEndpoints(issuer: string): { tokenEndpoint: string; jwksUri: string } {
  const base = issuer.replace(/\/+$/, '');
  return { tokenEndpoint: `${base}/oauth/token`, jwksUri: `${base}/oauth/jwks` };
}

/** RFC 8414 authorization server metadata, for /.well-known/oauth-authorization-server. */
export interface AuthorizationServerMetadata {
  issuer: string;
  token_endpoint: string;
  jwks_uri: string;
  response_types_supported: string[];
  grant_types_supported: string[];
  token_endpoint_auth_methods_supported: string[];
  token_endpoint_auth_signing_alg_values_supported: string[];
  dpop_signing_alg_values_supported: string[];
}

export function buildAuthorizationServerMetadata(issuer: string): AuthorizationServerMetadata {
  const { tokenEndpoint, jwksUri } = oauthEndpoints(issuer);
  return {
    issuer,
    token_endpoint: tokenEndpoint,
    jwks_uri: jwksUri,
    // No authorization endpoint: agents are confidential clients using client credentials.
    response_types_supported: [],
    grant_types_supported: [grantTypes.clientCredentials, grantTypes.tokenExchange],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: [...clientAssertionAlgorithms],
    dpop_signing_alg_values_supported: [...dpopAlgorithms],
  };
}

/** RFC 9728 protected resource metadata, for /.well-known/oauth-protected-resource. */
export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  bearer_methods_supported: string[];
  scopes_supported?: string[];
  dpop_signing_alg_values_supported: string[];
  /** False: DPoP is required per agent (`requireDpop`), not for every agent. */
  dpop_bound_access_tokens_required: boolean;
}

export function buildProtectedResourceMetadata(options: {
  resource: string;
  issuer: string;
  scopes?: readonly string[];
}): ProtectedResourceMetadata {
  return {
    resource: options.resource,
    authorization_servers: [options.issuer],
    bearer_methods_supported: ['header'],
    dpop_signing_alg_values_supported: [...dpopAlgorithms],
    dpop_bound_access_tokens_required: false,
    ...(options.scopes === undefined || options.scopes.length === 0
      ? {}
      : { scopes_supported: [...options.scopes] }),
  };
}

export interface TokenEndpointOptions {
  store: Store;
  clock: Clock;
  ids: IdGenerator;
  directory: AgentDirectory;
  tokens: TokenService;
  clients: ClientAuthenticator;
  /** Verifies DPoP proofs on token requests; without it a DPoP header is refused. */
  dpop?: DpopVerifier;
  /** This endpoint's URL, which a DPoP proof's htu must name. */
  tokenEndpoint?: string;
  /** Default lifetime of task tokens; 5 minutes. */
  taskTtlSeconds?: number;
  /** Longest task token a client may ask for with expires_in; the agent token lifetime by default. */
  maxTaskTtlSeconds?: number;
}

const positiveInteger = /^[1-9][0-9]{0,8}$/;

/**
 * The token endpoint (POST /oauth/token) as a plain function of the form body and the
 * Authorization header, so the HTTP layer only parses and sends.
 */
export class TokenEndpoint {
  private readonly options: TokenEndpointOptions;
  private readonly taskTtlSeconds: number;
  private readonly maxTaskTtlSeconds: number;

  constructor(options: TokenEndpointOptions) {
    this.options = options;
    this.taskTtlSeconds = options.taskTtlSeconds ?? 300;
    this.maxTaskTtlSeconds = options.maxTaskTtlSeconds ?? options.tokens.ttlSeconds;
  }

  /**
   * Handle a token request: the RFC 6749 §5.1 success body, or an error value per §5.2.
   * `dpopProof` is the request's DPoP header (RFC 9449 §5): with a valid one the token is
   * bound to the proof's key and its type is DPoP.
   * Infrastructure failures (the store is down) are thrown, not turned into OAuth errors.
   */
  async handleTokenRequest(
    form: Record<string, string>,
    authorizationHeader?: string,
    dpopProof?: string,
  ): Promise<TokenEndpointResult> {
    try {
      const grantType = form.grant_type;
      if (grantType === undefined || grantType === '')
        throw new CustosError('bad_request', 'grant_type is required');
      this.checkResource(form);
      const jkt = await this.proofKey(dpopProof);
      if (grantType === grantTypes.clientCredentials)
        return await this.clientCredentials(form, authorizationHeader, jkt);
      if (grantType === grantTypes.tokenExchange)
        return await this.tokenExchange(form, authorizationHeader, jkt);
      throw new CustosError('unsupported_grant_type', `grant_type "${grantType}" is not supported`, {
        detail: { supported: Object.values(grantTypes) },
      });
    } catch (error) {
      if (error instanceof CustosError) {
        const wire = wireErrors[error.code];
        if (wire !== undefined) {
          return {
            status: wire.status,
            body: { error: wire.error, error_description: error.message },
            // RFC 6749 §5.2: a 401 after Authorization-header authentication names the scheme.
            ...(wire.status === 401 && authorizationHeader !== undefined
              ? { headers: { 'www-authenticate': 'Basic realm="custos"' } }
              : {}),
            cause: error,
          };
        }
      }
      throw error;
    }
  }

  /** RFC 8707: a resource (or RFC 8693 audience) parameter must name our protected resource. */
  private checkResource(form: Record<string, string>): void {
    const audience = this.options.tokens.audience;
    for (const name of ['resource', 'audience'] as const) {
      const value = form[name];
      if (value !== undefined && value !== audience) {
        throw new CustosError('invalid_target', `${name} must be ${audience}`);
      }
    }
  }

  /** RFC 9449 §4.3 at the token endpoint: the thumbprint of a valid proof's key, or null without one. */
  private async proofKey(proof: string | undefined): Promise<string | null> {
    if (proof === undefined) return null;
    const { dpop, tokenEndpoint } = this.options;
    if (dpop === undefined || tokenEndpoint === undefined) throw invalidProof('DPoP is not enabled');
    return (await dpop.verify(proof, { method: 'POST', url: tokenEndpoint })).jkt;
  }

  /** An agent that requires DPoP gets tokens only with a proof (RFC 9449 §5.2, dpop_bound_access_tokens). */
  private checkDpopRequired(agentId: string, jkt: string | null): void {
    if (jkt === null && this.options.directory.get(agentId)?.requireDpop === true) {
      throw new CustosError(
        'invalid_dpop_proof',
        'this agent must send a DPoP proof with its token requests',
        {
          cause: new Error('the agent requires DPoP and the request has no DPoP header'),
        },
      );
    }
  }

  /** RFC 6749 §4.4. A requested scope is ignored: an agent token carries the agent's whole reach. */
  private async clientCredentials(
    form: Record<string, string>,
    authorizationHeader: string | undefined,
    jkt: string | null,
  ): Promise<TokenSuccess> {
    const { agent } = await this.options.clients.authenticate(form, authorizationHeader);
    this.checkDpopRequired(agent.id, jkt);
    const issued = await this.options.tokens.issueAccessToken(agent, { jkt });
    return {
      access_token: issued.token,
      token_type: jkt === null ? 'Bearer' : 'DPoP',
      expires_in: issued.expiresIn,
    };
  }

  /**
   * RFC 8693 token exchange: trade a Custos access token for a task token that is
   * narrower (scope), no richer (budget) and no longer-lived than the subject token.
   */
  private async tokenExchange(
    form: Record<string, string>,
    authorizationHeader: string | undefined,
    jkt: string | null,
  ): Promise<TokenSuccess> {
    const { subject_token: subjectToken, subject_token_type: subjectType } = form;
    if (subjectToken === undefined || subjectToken === '') {
      throw new CustosError('bad_request', 'subject_token is required');
    }
    if (subjectType !== accessTokenTypeUri) {
      throw new CustosError('bad_request', `subject_token_type must be ${accessTokenTypeUri}`);
    }
    if (form.requested_token_type !== undefined && form.requested_token_type !== accessTokenTypeUri) {
      throw new CustosError('bad_request', `requested_token_type must be ${accessTokenTypeUri}`);
    }
    if (form.actor_token !== undefined) {
      throw new CustosError('bad_request', 'actor_token is not supported: an agent narrows its own token');
    }
    let subject: Principal;
    try {
      // A DPoP-bound subject token needs a proof of its key on this request (RFC 9449 §7.1).
      subject = await this.options.tokens.verifyAccessToken(subjectToken, { scheme: 'proven', jkt });
    } catch (error) {
      if (!(error instanceof CustosError)) throw error;
      // RFC 8693 §2.2.2: an unacceptable subject_token is invalid_request.
      const inactive = error.code === 'agent_inactive';
      throw new CustosError(
        'bad_request',
        inactive ? 'the agent is not active' : 'subject_token is not valid',
        {
          cause: error,
        },
      );
    }
    if (hasClientAuthentication(form, authorizationHeader)) {
      const { agent } = await this.options.clients.authenticate(form, authorizationHeader);
      if (agent.id !== subject.agentId) {
        throw new CustosError('bad_request', 'the authenticated client is not the subject of subject_token');
      }
    }
    this.checkDpopRequired(subject.agentId, jkt);
    const purpose = (form.task_purpose ?? '').trim();
    if (purpose === '')
      throw new CustosError('bad_request', 'task_purpose is required: say what the task is for');
    if (purpose.length > 500)
      throw new CustosError('bad_request', 'task_purpose is longer than 500 characters');

    const parent = subject.task;
    const reach = narrowReach(parent, parseTaskScope(form.scope));
    const budget = this.taskBudget(form.task_budget, parent);
    let ttlSeconds = this.taskTtlSeconds;
    if (form.expires_in !== undefined) {
      if (!positiveInteger.test(form.expires_in)) {
        throw new CustosError('bad_request', 'expires_in must be a positive integer (seconds)');
      }
      ttlSeconds = Math.min(Number(form.expires_in), this.maxTaskTtlSeconds);
    }
    const agent = this.options.directory.get(subject.agentId);
    if (agent === undefined) throw new CustosError('bad_request', 'subject_token is not valid');

    const task: Omit<TaskGrant, 'expiresAt'> = {
      id: this.options.ids.next('task'),
      purpose,
      servers: reach.servers,
      tools: reach.tools,
      budget,
    };
    const issued = await this.options.tokens.issueAccessToken(agent, {
      ttlSeconds,
      notAfter: subject.expiresAt,
      task,
      jkt,
    });
    await this.options.store.db
      .insertInto('tasks')
      .values({
        id: task.id,
        agent_id: agent.id,
        purpose,
        servers: reach.servers === null ? null : JSON.stringify(reach.servers),
        tools: reach.tools === null ? null : JSON.stringify(reach.tools),
        budget,
        created_at: this.options.clock.now(),
        expires_at: issued.expiresAt,
        parent_id: parent?.id ?? null,
      })
      .execute();
    const scope = formatTaskScope(reach);
    return {
      access_token: issued.token,
      token_type: jkt === null ? 'Bearer' : 'DPoP',
      expires_in: issued.expiresIn,
      issued_token_type: accessTokenTypeUri,
      ...(scope === undefined ? {} : { scope }),
    };
  }

  /** A child task's budget never exceeds its parent's; without a request it inherits it. */
  private taskBudget(requested: string | undefined, parent: TaskGrant | null): number | null {
    const parentBudget = parent?.budget ?? null;
    if (requested === undefined) return parentBudget;
    if (!positiveInteger.test(requested))
      throw new CustosError('bad_request', 'task_budget must be a positive integer');
    const budget = Number(requested);
    if (parentBudget !== null && budget > parentBudget) {
      throw new CustosError(
        'invalid_scope',
        `task_budget ${budget} exceeds the subject task's budget ${parentBudget}`,
      );
    }
    return budget;
  }
}
