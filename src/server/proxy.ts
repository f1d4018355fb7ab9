import type { FastifyInstance } from 'fastify';
import { CustosError, isCustosError } from '../core/errors.js';
import { type ApiUpstream, type Pipeline, runApiCall } from '../gateway/index.js';
import { authChallenges, readPresentedToken } from './agent-auth.js';
import { sendError } from './errors.js';

export interface ProxyDeps {
  pipeline: Pipeline;
  apis: ReadonlyMap<string, ApiUpstream>;
  now(): number;
  /** Custos's public base URL: DPoP proofs name it with the request's path (htu). */
  publicBase: string;
  /** Protected resource metadata URL, for WWW-Authenticate. */
  resourceMetadataUrl: string;
}

/**
 * /proxy/<api>/<path>: plain REST calls through the pipeline (authenticate, contain, meter,
 * authorize as http_request, approve, inject, forward, record). The agent's own
 * Authorization header authenticates it to Custos and is never forwarded.
 */
export function registerProxy(app: FastifyInstance, deps: ProxyDeps): void {
  app.register(async (scope) => {
    // Bodies pass through as bytes, whatever their type.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
    scope.all('/proxy/:api/*', async (request, reply) => {
      const { api } = request.params as { api: string };
      const upstream = deps.apis.get(api);
      // Bearer, or DPoP with a proof of the token's key (RFC 9449 §7.1).
      const presented = readPresentedToken(request, deps.publicBase);
      if (presented === undefined) {
        reply.header('www-authenticate', authChallenges(deps.resourceMetadataUrl));
        return sendError(
          reply,
          new CustosError('invalid_token', 'a Bearer or DPoP access token is required'),
        );
      }
      let principal: Awaited<ReturnType<Pipeline['authenticate']>>;
      try {
        principal = await deps.pipeline.authenticate(presented.token, presented.presentation);
      } catch (error) {
        if (isCustosError(error) && (error.code === 'invalid_token' || error.code === 'invalid_dpop_proof')) {
          reply.header(
            'www-authenticate',
            authChallenges(deps.resourceMetadataUrl, {
              code: error.code,
              scheme: presented.presentation.scheme,
            }),
          );
        }
        throw error;
      }
      if (upstream === undefined)
        return sendError(reply, new CustosError('unknown_server', `no API named "${api}"`));
      const raw = request.url;
      const prefix = `/proxy/${api}`;
      const rest = raw.slice(prefix.length);
      const q = rest.indexOf('?');
      const path = q < 0 ? rest : rest.slice(0, q);
      const query = q < 0 ? '' : rest.slice(q + 1);
      if (path.split('/').some((segment) => segment === '..' || segment === '.')) {
        return sendError(
          reply,
          new CustosError('bad_request', 'the path may not contain "." or ".." segments'),
        );
      }
      const body = Buffer.isBuffer(request.body) ? request.body : undefined;
      const { response, outcome } = await runApiCall(
        deps.pipeline,
        principal,
        upstream,
        { method: request.method, path: path === '' ? '/' : path, query, headers: request.headers, body },
        deps.now(),
      );
      if (response !== undefined) {
        reply.code(response.status).headers(response.headers);
        return reply.send(response.body);
      }
      if (outcome.kind === 'denied') {
        return sendError(reply, new CustosError(outcome.stop.code, outcome.stop.message));
      }
      if (
        outcome.kind === 'failed' &&
        outcome.error instanceof CustosError &&
        (outcome.error.code === 'upstream_insufficient_scope' ||
          outcome.error.code === 'upstream_token_rejected')
      ) {
        return sendError(reply, outcome.error);
      }
      return sendError(reply, new CustosError('upstream_unavailable', `the API ${api} did not answer`));
    });
  });
}
