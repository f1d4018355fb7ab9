import type { FastifyReply } from 'fastify';
import { CustosError, isCustosError } from '../core/errors.js';

/** The JSON body of every HTTP error Custos returns (outside OAuth and MCP, which have their own). */
export interface ErrorBody {
  error: { code: string; message: string; detail?: Record<string, unknown> };
}

/**
 * Translate an error into an HTTP reply. Known errors keep their code and message;
 * anything else is an internal error whose detail stays in the log.
 */
export function sendError(reply: FastifyReply, error: unknown): FastifyReply {
  const known = toCustosError(error);
  if (known.code === 'internal') reply.log.error({ err: error }, 'internal error');
  const body: ErrorBody = {
    error: { code: known.code, message: known.message, ...(known.detail ? { detail: known.detail } : {}) },
  };
  return reply.code(known.status).type('application/json').send(body);
}

/** Map framework errors (body too large, bad JSON) onto stable codes. */
export function toCustosError(error: unknown): CustosError {
  if (isCustosError(error)) return error;
  const fastifyCode = (error as { code?: unknown } | null)?.code;
  if (fastifyCode === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new CustosError('body_too_large', 'request body is larger than limits.maxBodyBytes');
  }
  if (fastifyCode === 'FST_ERR_CTP_INVALID_JSON_BODY' || (error instanceof SyntaxError && 'body' in error)) {
    return new CustosError('bad_request', 'request body is not valid JSON');
  }
  if (fastifyCode === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return new CustosError('bad_request', 'unsupported content type');
  }
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new CustosError('bad_request', (error as Error).message);
  }
  return new CustosError('internal', 'internal error', { cause: error });
}
