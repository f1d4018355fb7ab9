import type { FastifyInstance, FastifyReply } from 'fastify';
import { CustosError } from '../core/errors.js';
import type { OAuthBroker } from '../vault/index.js';
import { requireRole } from './actor.js';

function escapeHtml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

function page(reply: FastifyReply, status: number, title: string, body: string): FastifyReply {
  return (
    reply
      .code(status)
      .header('cache-control', 'no-store')
      // The callback URL carries the authorization code: never send it on as a Referer.
      .header('referrer-policy', 'no-referrer')
      .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'")
      .type('text/html; charset=utf-8')
      .send(
        `<!doctype html><html><head><meta charset="utf-8"><meta name="robots" content="noindex"><title>${escapeHtml(title)}</title><style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:1rem auto;padding:0 1rem}</style></head><body><h1>${escapeHtml(title)}</h1>${body}</body></html>`,
      )
  );
}

/**
 * Where the upstream provider sends the browser back after consent (outside /api/v1: the
 * provider's redirect carries no Custos login; the single-use state is what authenticates it).
 */
export function oauthCallbackRoutes(broker: OAuthBroker, baseUrl: string) {
  return (app: FastifyInstance): void => {
    app.get('/oauth/callback/:name', async (request, reply) => {
      const { name } = request.params as { name: string };
      const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : '';
      try {
        const status = await broker.finishConnect(name, new URL(`${baseUrl}/oauth/callback/${name}${query}`));
        return page(
          reply,
          200,
          `Connected ${name}`,
          `<p>Custos now holds the tokens of <strong>${escapeHtml(name)}</strong> (scope: ${escapeHtml(status.scope ?? '-')}) and keeps them fresh. You can close this window.</p>`,
        );
      } catch (error) {
        const known =
          error instanceof CustosError
            ? error
            : new CustosError('internal', 'the connection failed', { cause: error });
        if (known.code === 'internal') request.log.error({ err: error }, 'oauth callback failed');
        else request.log.info({ code: known.code, credential: name }, 'oauth callback refused');
        return page(
          reply,
          known.code === 'not_found' ? 404 : 400,
          `Could not connect ${name}`,
          `<p>${escapeHtml(known.message)}</p><p>Start again with <code>custos oauth connect ${escapeHtml(name)}</code>.</p>`,
        );
      }
    });
  };
}

/** The admin API of the OAuth broker: list, connect (start), disconnect. Never returns a token. */
export function oauthRoutes(broker: OAuthBroker) {
  return (api: FastifyInstance): void => {
    api.get('/oauth/credentials', async (request) => {
      requireRole(request, 'admin', 'auditor');
      return { credentials: await broker.list() };
    });
    api.get('/oauth/credentials/:name', async (request) => {
      requireRole(request, 'admin', 'auditor');
      const { name } = request.params as { name: string };
      return broker.get(name);
    });
    api.post('/oauth/credentials/:name/connect', async (request) => {
      const actor = requireRole(request, 'admin');
      const { name } = request.params as { name: string };
      return broker.connect(name, actor.name);
    });
    api.post('/oauth/credentials/:name/disconnect', async (request) => {
      const actor = requireRole(request, 'admin');
      const { name } = request.params as { name: string };
      return broker.disconnect(name, actor.name);
    });
  };
}
