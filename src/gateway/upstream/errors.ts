import { ProtocolError, SdkError, SdkErrorCode, SdkHttpError } from '@modelcontextprotocol/client';
import { classifyRefusal } from '../../core/bearer-challenge.js';
import { CustosError } from '../../core/errors.js';
import { UpstreamRpcError } from './types.js';

export interface RequestContext {
  server: string;
  method: string;
  timeoutMs: number;
  /** The caller's signal: when it aborted, a timeout-coded SDK rejection means "cancelled". */
  signal?: AbortSignal | undefined;
}

/** The upstream could not take requests right now (not connected, restarting, closed). */
export function unavailable(server: string, why: string, cause?: unknown): CustosError {
  return new CustosError('upstream_unavailable', `upstream "${server}" is unavailable: ${why}`, {
    detail: { server, reason: why },
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * The upstream refused the credential Custos injected on a call (the agent never held it), read
 * from the HTTP status and its Bearer challenge (RFC 6750 section 3): missing scope and a
 * rejected token become the same distinct errors /proxy reports; anything else is undefined
 * (the caller's usual error applies).
 */
export function refusedCredential(
  server: string,
  method: string,
  status: number,
  challenge: string | null | undefined,
): CustosError | undefined {
  const refusal = classifyRefusal(status, challenge);
  if (refusal.kind === 'insufficient_scope') {
    return new CustosError(
      'upstream_insufficient_scope',
      `upstream "${server}" refused ${method}: Custos's credential lacks the scope it needs${refusal.scope ? ` (${refusal.scope})` : ''}; ask its owner to grant it and reconnect`,
      { detail: { server, method, httpStatus: status, ...(refusal.scope ? { scope: refusal.scope } : {}) } },
    );
  }
  if (refusal.kind === 'invalid_token') {
    return new CustosError(
      'upstream_token_rejected',
      `upstream "${server}" rejected Custos's credential for ${method} as invalid or expired; the next call uses a fresh one`,
      { detail: { server, method, httpStatus: status } },
    );
  }
  return undefined;
}

/** The caller's signal aborted the request. */
export function cancelled(context: RequestContext, cause?: unknown): CustosError {
  const { server, method } = context;
  return new CustosError('upstream_unavailable', `request ${method} to upstream "${server}" was cancelled`, {
    detail: { server, method, reason: 'cancelled' },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** The request outlived its timeout; progress does not extend it. */
export function timedOut(context: RequestContext, cause?: unknown): CustosError {
  const { server, method, timeoutMs } = context;
  return new CustosError(
    'upstream_unavailable',
    `request ${method} to upstream "${server}" timed out after ${timeoutMs} ms`,
    { detail: { server, method, reason: 'timeout', timeoutMs }, ...(cause === undefined ? {} : { cause }) },
  );
}

/**
 * Whether an error means the connection itself is gone (as opposed to one request failing):
 * a closed or unwritable transport, an HTTP-level failure, or a network error from fetch.
 */
export function isConnectionFailure(error: unknown): boolean {
  if (ProtocolError.isInstance(error)) return false;
  if (SdkHttpError.isInstance(error)) return true;
  if (SdkError.isInstance(error)) {
    return (
      error.code === SdkErrorCode.ConnectionClosed ||
      error.code === SdkErrorCode.SendFailed ||
      error.code === SdkErrorCode.NotConnected
    );
  }
  if (error instanceof CustosError || error instanceof UpstreamRpcError) return false;
  // fetch rejects with a TypeError ("fetch failed") when the server cannot be reached.
  return error instanceof Error;
}

/**
 * Translate what the SDK threw into the upstream contract: the upstream's own JSON-RPC error
 * passes through as UpstreamRpcError; everything else becomes upstream_unavailable, with a
 * message that says whether the caller cancelled, the request timed out, or the link failed.
 * The raw error stays as `cause` for the log; messages carry no URLs or headers.
 */
export function translateRequestError(error: unknown, context: RequestContext): Error {
  if (error instanceof CustosError || error instanceof UpstreamRpcError) return error;
  if (ProtocolError.isInstance(error)) return new UpstreamRpcError(error.code, error.message, error.data);
  const { server, method } = context;
  const detail = { server, method };
  if (context.signal?.aborted) return cancelled(context, error);
  if (SdkError.isInstance(error)) {
    switch (error.code) {
      case SdkErrorCode.RequestTimeout:
        return timedOut(context, error);
      case SdkErrorCode.ConnectionClosed:
      case SdkErrorCode.NotConnected:
        return new CustosError(
          'upstream_unavailable',
          `upstream "${server}" closed the connection before answering ${method}`,
          { detail: { ...detail, reason: 'connection_closed' }, cause: error },
        );
      case SdkErrorCode.InvalidResult:
      case SdkErrorCode.UnsupportedResultType:
        return new CustosError('upstream_error', `upstream "${server}" sent an invalid answer to ${method}`, {
          detail: { ...detail, reason: 'invalid_result' },
          cause: error,
        });
      default:
        break;
    }
  }
  const status = SdkHttpError.isInstance(error) ? error.status : undefined;
  return new CustosError('upstream_unavailable', `upstream "${server}" could not be reached for ${method}`, {
    detail: { ...detail, reason: 'unreachable', ...(status === undefined ? {} : { httpStatus: status }) },
    cause: error,
  });
}
