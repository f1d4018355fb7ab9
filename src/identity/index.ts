export {
  type AddedAgent,
  type Agent,
  type AgentFilter,
  AgentService,
  type AgentServiceOptions,
  type AgentStatus,
  type ChangeOptions,
  type CredentialInfo,
  type CredentialKind,
  type CredentialSpec,
  type IssuedCredential,
  type NewAgent,
  type OffboardReport,
} from './agents.js';
export {
  type AuthenticatedClient,
  ClientAuthenticator,
  type ClientAuthenticatorOptions,
  type ClientAuthMethod,
  jwtBearerAssertionType,
} from './client-auth.js';
export { type ClientKeyAlgorithm, type ClientPublicKey, parseClientPublicKey } from './client-keys.js';
export { AgentDirectory, type AgentView, isAgentViewActive } from './directory.js';
export {
  accessTokenHash,
  type DpopRequest,
  DpopVerifier,
  type DpopVerifierOptions,
  dpopAlgorithms,
  jwkThumbprint,
  type VerifiedProof,
} from './dpop.js';
export {
  type NewUser,
  passwordCost,
  type User,
  type UserRole,
  UserService,
  type UserServiceOptions,
  type UserTokenInfo,
  userRoles,
} from './humans.js';
export {
  type JwksDocument,
  type PrivateKeyStore,
  type SigningKey,
  SigningKeys,
  signingAlgorithm,
} from './keys.js';
export {
  dayMs,
  defaultExpiryRules,
  type ExpiryRules,
  type LifecycleAudit,
  type LifecycleAuditTransaction,
  type LifecycleVerb,
  lifecycleEvent,
  type OffboardStep,
  type OffboardSubject,
  unrecordedLifecycle,
} from './lifecycle.js';
export {
  type AuthorizationServerMetadata,
  accessTokenTypeUri,
  buildAuthorizationServerMetadata,
  buildProtectedResourceMetadata,
  grantTypes,
  isTokenError,
  type OAuthErrorCode,
  oauthEndpoints,
  type ProtectedResourceMetadata,
  TokenEndpoint,
  type TokenEndpointOptions,
  type TokenEndpointResult,
  type TokenError,
  type TokenSuccess,
  tokenResponseHeaders,
} from './oauth.js';
export { type OidcIdentity, OidcLogin, type OidcSettings } from './oidc.js';
export { findOrphans, type Orphan, type OrphanReason } from './orphans.js';
export { ReplayCache, type ReplayVerdict } from './replay.js';
export {
  AccessReview,
  type AccessReviewOptions,
  type AgentReach,
  type Attestation,
  type BindingReach,
  type ReachSources,
  type ServerReach,
  type ToolAccess,
} from './review.js';
export { createIdentityService, type IdentityOptions, type IdentityService } from './service.js';
export { parseTaskScope, type TaskGrant, type TaskReach, taskAllows, taskReachesServer } from './tasks.js';
export {
  type IssuedToken,
  type Principal,
  type TokenPresentation,
  TokenService,
  type TokenServiceOptions,
} from './tokens.js';
