import type { Clock } from '../core/clock.js';
import type { IdGenerator } from '../core/ids.js';
import type { Store } from '../store/index.js';
import { AgentService } from './agents.js';
import { ClientAuthenticator } from './client-auth.js';
import { AgentDirectory } from './directory.js';
import { DpopVerifier } from './dpop.js';
import { type JwksDocument, type PrivateKeyStore, SigningKeys } from './keys.js';
import type { ExpiryRules, LifecycleAudit, OffboardStep } from './lifecycle.js';
import {
  type AuthorizationServerMetadata,
  buildAuthorizationServerMetadata,
  buildProtectedResourceMetadata,
  oauthEndpoints,
  type ProtectedResourceMetadata,
  TokenEndpoint,
  type TokenEndpointResult,
} from './oauth.js';
import { type Principal, type TokenPresentation, TokenService } from './tokens.js';

export interface IdentityOptions {
  store: Store;
  clock: Clock;
  /** The vault: the token signing private key is kept in it (encrypted at rest). */
  signingKeySecrets?: PrivateKeyStore;
  ids: IdGenerator;
  /** Authorization server issuer URL, e.g. http://127.0.0.1:7400. */
  issuer: string;
  /** Protected resource URL tokens are minted for (aud), e.g. http://127.0.0.1:7400/mcp. */
  audience: string;
  /** Agent token lifetime; 600 by default. */
  tokenTtlSeconds?: number;
  /** Default task token lifetime; 300 by default. */
  taskTokenTtlSeconds?: number;
  /** Records lifecycle changes in the same transaction (the audit recorder). */
  audit?: LifecycleAudit;
  /** Expiry default and maximum (config `lifecycle`). */
  expiry?: ExpiryRules;
  /** What offboarding also removes (approvals, vault bindings), in order. */
  offboardSteps?: readonly OffboardStep[];
}

/** Everything identity offers the server, the gateway and the CLI, wired together. */
export interface IdentityService {
  readonly agents: AgentService;
  readonly directory: AgentDirectory;
  readonly keys: SigningKeys;
  readonly tokens: TokenService;
  readonly tokenEndpoint: TokenEndpoint;
  /** Gateway hot path: see TokenService.verifyAccessToken. */
  verifyAccessToken(token: string, presentation?: TokenPresentation): Promise<Principal>;
  /** POST /oauth/token; `dpopProof` is the DPoP header, if any. */
  handleTokenRequest(
    form: Record<string, string>,
    authorizationHeader?: string,
    dpopProof?: string,
  ): Promise<TokenEndpointResult>;
  /** GET /oauth/jwks. */
  jwks(): JwksDocument;
  /** GET /.well-known/oauth-authorization-server. */
  authorizationServerMetadata(): AuthorizationServerMetadata;
  /** GET /.well-known/oauth-protected-resource. */
  protectedResourceMetadata(scopes?: readonly string[]): ProtectedResourceMetadata;
  /** Pick up agent changes other processes made; call periodically (every few seconds). */
  refresh(): Promise<void>;
}

/** Load (or create) the signing keys and the agent directory, and wire the identity services. */
export async function createIdentityService(options: IdentityOptions): Promise<IdentityService> {
  const { store, clock, ids, issuer, audience } = options;
  const directory = new AgentDirectory(store);
  const keys = new SigningKeys(store, clock, options.signingKeySecrets);
  await Promise.all([directory.refresh(), keys.load()]);
  const agents = new AgentService({
    store,
    clock,
    ids,
    directory,
    ...(options.audit === undefined ? {} : { audit: options.audit }),
    ...(options.expiry === undefined ? {} : { expiry: options.expiry }),
    ...(options.offboardSteps === undefined ? {} : { offboardSteps: options.offboardSteps }),
  });
  // One verifier (one replay cache) for proofs at the token endpoint and at the gateway.
  const dpop = new DpopVerifier({ clock });
  const tokens = new TokenService({
    keys,
    directory,
    clock,
    issuer,
    audience,
    dpop,
    ...(options.tokenTtlSeconds === undefined ? {} : { ttlSeconds: options.tokenTtlSeconds }),
  });
  const clients = new ClientAuthenticator({
    store,
    clock,
    directory,
    issuer,
    tokenEndpoint: oauthEndpoints(issuer).tokenEndpoint,
  });
  const tokenEndpoint = new TokenEndpoint({
    store,
    clock,
    ids,
    directory,
    tokens,
    clients,
    dpop,
    tokenEndpoint: oauthEndpoints(issuer).tokenEndpoint,
    ...(options.taskTokenTtlSeconds === undefined ? {} : { taskTtlSeconds: options.taskTokenTtlSeconds }),
  });
  return {
    agents,
    directory,
    keys,
    tokens,
    tokenEndpoint,
    verifyAccessToken: (token, presentation) => tokens.verifyAccessToken(token, presentation),
    handleTokenRequest: (form, header, dpopProof) =>
      tokenEndpoint.handleTokenRequest(form, header, dpopProof),
    jwks: () => keys.jwks(),
    authorizationServerMetadata: () => buildAuthorizationServerMetadata(issuer),
    protectedResourceMetadata: (scopes) =>
      buildProtectedResourceMetadata({
        resource: audience,
        issuer,
        ...(scopes === undefined ? {} : { scopes }),
      }),
    refresh: () => directory.refresh(),
  };
}
