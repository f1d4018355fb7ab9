// A bare pass-through HTTP proxy: the floor any inline gateway is measured against.
// It forwards method, path, headers (minus hop-by-hop ones, RFC 9110 section 7.6.1) and
// body to one upstream origin over an undici Pool, and streams the response back.
//
//   import { startBareProxy } from './bare-proxy.js'  -> { url, close }
//   node bench/bare-proxy.js PORT TARGET_URL           -> prints {"url": ...} on stdout
import http from 'node:http';
import { pathToFileURL } from 'node:url';
import { Pool } from 'undici';

const hopByHop = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

/** Copies headers, dropping hop-by-hop ones and any the Connection header names. */
function forwardable(headers) {
  const named = headers.connection;
  const extra =
    typeof named === 'string' ? new Set(named.split(',').map((h) => h.trim().toLowerCase())) : undefined;
  const out = {};
  for (const key in headers) {
    if (hopByHop.has(key) || extra?.has(key)) continue;
    out[key] = headers[key];
  }
  return out;
}

/** Starts the proxy on 127.0.0.1; `target` is the upstream URL whose path clients use. */
export async function startBareProxy({ port = 0, target, connections = 64 }) {
  const upstream = new URL(target);
  const pool = new Pool(upstream.origin, { connections, pipelining: 1, keepAliveTimeout: 60_000 });

  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    pool.stream(
      {
        path: req.url,
        method: req.method,
        headers: forwardable(req.headers),
        body: hasBody ? req : null,
        opaque: res,
      },
      ({ statusCode, headers, opaque }) => {
        opaque.writeHead(statusCode, forwardable(headers));
        return opaque;
      },
      (error) => {
        if (error === null || error === undefined) return;
        if (!res.headersSent) {
          res.writeHead(502, { 'content-type': 'text/plain' });
          res.end('bad gateway');
        } else {
          res.destroy(error);
        }
      },
    );
  });
  server.headersTimeout = 65_000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${server.address().port}${upstream.pathname}${upstream.search}`;
  const close = async () => {
    await new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    await pool.close();
  };
  return { url, close };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [portArg, target] = process.argv.slice(2);
  if (target === undefined) {
    console.error('usage: node bench/bare-proxy.js PORT TARGET_URL');
    process.exit(2);
  }
  const { url, close } = await startBareProxy({ port: Number(portArg), target });
  console.log(JSON.stringify({ url }));
  const stop = () => close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('disconnect', stop);
}
