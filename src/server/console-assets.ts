import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { CustosError } from '../core/errors.js';
import { sendError } from './errors.js';

/**
 * The console's Content-Security-Policy: only this origin's own scripts, styles and API;
 * no inline script, no eval, no framing, no plugins.
 */
export const consoleCsp = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const securityHeaders = {
  'content-security-policy': consoleCsp,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
};

const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** Where `npm run build` puts the console: dist/console, beside dist/server. */
export function findConsoleDir(): string | undefined {
  const candidates = [
    fileURLToPath(new URL('../console/', import.meta.url)),
    fileURLToPath(new URL('../../dist/console/', import.meta.url)),
  ];
  return candidates.find((dir) => existsSync(join(dir, 'index.html')));
}

interface Asset {
  body: Buffer;
  type: string;
  /** Vite names files under assets/ by content hash, so they never change. */
  immutable: boolean;
}

function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const walk = (folder: string) => {
    for (const name of readdirSync(folder)) {
      const path = join(folder, name);
      if (statSync(path).isDirectory()) walk(path);
      else {
        const url = `/${relative(dir, path).split('\\').join('/')}`;
        assets.set(url, {
          body: readFileSync(path),
          type: types[extname(name)] ?? 'application/octet-stream',
          immutable: url.startsWith('/assets/'),
        });
      }
    }
  };
  walk(dir);
  return assets;
}

/**
 * Serve the built console at `/`: index.html is revalidated on every load, hashed assets
 * are cached for a year, and every answer carries the strict CSP. The console routes with
 * URL fragments (#/agents), so no path other than its files needs a fallback.
 */
export function registerConsoleAssets(
  app: FastifyInstance,
  dir: string | undefined = findConsoleDir(),
): void {
  const assets = dir === undefined ? new Map<string, Asset>() : loadAssets(dir);
  const send = (reply: FastifyReply, asset: Asset) =>
    reply
      .headers(securityHeaders)
      .header('cache-control', asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
      .type(asset.type)
      .send(asset.body);

  app.get('/', async (_request, reply) => {
    const index = assets.get('/index.html');
    if (index === undefined) {
      return reply
        .code(503)
        .headers(securityHeaders)
        .type('text/plain; charset=utf-8')
        .send('The console is not built. Run `npm run build` in the Custos checkout.\n');
    }
    return send(reply, index);
  });
  for (const [url, asset] of assets) {
    if (url === '/index.html' || url.startsWith('/assets/')) continue;
    app.get(url, async (_request, reply) => send(reply, asset));
  }
  app.get('/assets/*', async (request, reply) => {
    const asset = assets.get(request.url.split('?')[0] ?? '');
    if (asset === undefined) return sendError(reply, new CustosError('not_found', 'no such console asset'));
    return send(reply, asset);
  });
}
