/**
 * Every error Custos raises on purpose carries a stable string code. Callers switch on
 * `code`; the wire layers (HTTP, MCP) translate codes to responses in one place each.
 */
export type ErrorCode =
  // configuration and usage
  | 'config_invalid'
  | 'usage'
  // requests
  | 'bad_request'
  | 'body_too_large'
  | 'not_found'
  | 'conflict'
  | 'forbidden'
  | 'too_many_attempts'
  // identity
  | 'invalid_client'
  | 'invalid_grant'
  | 'invalid_token'
  | 'invalid_dpop_proof'
  | 'insufficient_scope'
  | 'unsupported_grant_type'
  | 'agent_inactive'
  | 'agent_offboarded'
  | 'agent_expired'
  | 'invalid_scope'
  | 'invalid_target'
  // the request path
  | 'unknown_server'
  | 'unknown_tool'
  | 'unknown_resource'
  | 'unknown_prompt'
  | 'policy_denied'
  | 'policy_invalid'
  | 'budget_exhausted'
  | 'contained'
  | 'rate_limited'
  | 'definition_drift'
  | 'upstream_unavailable'
  | 'upstream_error'
  // the OAuth broker (upstream credentials)
  | 'oauth_not_connected'
  | 'oauth_refresh_failed'
  | 'oauth_connect_invalid'
  | 'upstream_insufficient_scope'
  | 'upstream_token_rejected'
  // human approval
  | 'approval_pending'
  | 'approval_denied'
  | 'approval_expired'
  | 'approval_cancelled'
  | 'approval_closed'
  | 'approval_ineligible'
  | 'approval_misconfigured'
  | 'approval_link_invalid'
  // vault
  | 'vault_locked'
  | 'credential_missing'
  // infrastructure
  | 'store_unavailable'
  | 'internal';

const httpStatus: Record<ErrorCode, number> = {
  config_invalid: 500,
  usage: 400,
  bad_request: 400,
  body_too_large: 413,
  not_found: 404,
  conflict: 409,
  forbidden: 403,
  too_many_attempts: 429,
  invalid_client: 401,
  invalid_grant: 400,
  invalid_token: 401,
  invalid_dpop_proof: 401,
  insufficient_scope: 403,
  unsupported_grant_type: 400,
  agent_inactive: 403,
  agent_expired: 409,
  agent_offboarded: 409,
  invalid_scope: 400,
  invalid_target: 400,
  unknown_server: 404,
  unknown_tool: 404,
  unknown_resource: 404,
  unknown_prompt: 404,
  policy_denied: 403,
  policy_invalid: 400,
  budget_exhausted: 429,
  contained: 403,
  rate_limited: 429,
  definition_drift: 403,
  upstream_unavailable: 502,
  upstream_error: 502,
  oauth_not_connected: 503,
  oauth_refresh_failed: 502,
  oauth_connect_invalid: 400,
  upstream_insufficient_scope: 403,
  upstream_token_rejected: 502,
  approval_pending: 428,
  approval_denied: 403,
  approval_expired: 409,
  approval_cancelled: 409,
  approval_closed: 409,
  approval_ineligible: 403,
  approval_misconfigured: 500,
  approval_link_invalid: 403,
  vault_locked: 503,
  credential_missing: 502,
  store_unavailable: 503,
  internal: 500,
};

export class CustosError extends Error {
  readonly code: ErrorCode;
  /** Structured, non-secret detail safe to show to the caller. */
  readonly detail: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { detail?: Record<string, unknown>; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CustosError';
    this.code = code;
    this.detail = options?.detail;
  }

  get status(): number {
    return httpStatus[this.code];
  }
}

export function isCustosError(error: unknown): error is CustosError {
  return error instanceof CustosError;
}

/** Narrow an unknown thrown value to a message without leaking internals. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
