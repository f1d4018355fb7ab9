import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { CustosError } from '../core/errors.js';
import type { IdentityService } from '../identity/index.js';
import { isTokenError, tokenResponseHeaders } from '../identity/index.js';
import { sendError, toCustosError } from './errors.js';
import type { McpHttp } from './mcp-http.js';

export interface HttpDeps {
  logger: Logger;
  maxBodyBytes: number;
  identity: IdentityService;
  mcp: McpHttp;
  metrics: Registry;
  /** Resolves true when the store and upstreams are usable. */
  ready(): Promise<{ ready: boolean; detail: Record<string, unknown> }>;
  /** Registers the admin API (under /api/v1). */
  admin(app: FastifyInstance): void;
}

/** The one HTTP server: OAuth, MCP, admin API, health and metrics on one port. */
export function buildHttpServer(deps: HttpDeps): FastifyInstance {
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.logger as unknown as FastifyBaseLogger,
    bodyLimit: deps.maxBodyBytes,
    // Per-request log lines would cost more than a governed call; the audit log records calls.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  });

  // OAuth token requests are form encoded (RFC 6749 §4.4.2).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  app.setErrorHandler((error, request, reply) => {
    const known = toCustosError(error);
    if (request.url.startsWith('/mcp')) {
      // MCP clients read JSON-RPC error bodies.
      const code = known.code === 'bad_request' ? -32700 : -32600;
      if (known.code === 'internal') request.log.error({ err: error }, 'internal error');
      return reply.code(known.status).send({
        jsonrpc: '2.0',
        id: null,
        error: { code, message: known.message, data: { code: known.code } },
      });
    }
    return sendError(reply, known);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      new CustosError('not_found', `no route for ${request.method} ${request.url.split('?')[0]}`),
    ),
  );

  app.post('/oauth/token', async (request, reply) => {
    const form = (request.body ?? {}) as Record<string, string>;
    if (typeof form !== 'object' || Array.isArray(form)) {
      return reply.code(400).send({ error: 'invalid_request', error_description: 'form body required' });
    }
    const dpop = request.headers.dpop;
    const outcome = await deps.identity.handleTokenRequest(
      form,
      request.headers.authorization,
      // Repeated DPoP headers are refused by the verifier (RFC 9449 §4.3 item 1).
      Array.isArray(dpop) ? dpop.join(', ') : dpop,
    );
    reply.headers(tokenResponseHeaders);
    if (isTokenError(outcome)) {
      if (outcome.cause) request.log.info({ reason: String(outcome.cause) }, 'token request refused');
      if (outcome.headers) reply.headers(outcome.headers);
      return reply.code(outcome.status).send(outcome.body);
    }
    return reply.code(200).send(outcome);
  });
  app.get('/oauth/jwks', async () => deps.identity.jwks());
  app.get('/.well-known/oauth-authorization-server', async () => deps.identity.authorizationServerMetadata());
  for (const path of [
    '/.well-known/oauth-protected-resource',
    '/.well-known/oauth-protected-resource/mcp',
    '/.well-known/oauth-protected-resource/mcp/:server',
  ]) {
    app.get(path, async () => deps.identity.protectedResourceMetadata());
  }

  deps.mcp.register(app);
  deps.admin(app);

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const { ready, detail } = await deps.ready();
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', ...detail });
  });
  app.get('/metrics', async (_request, reply) => {
    reply.type(deps.metrics.contentType);
    return deps.metrics.metrics();
  });
  return app;
}
