import { timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';

/**
 * The demo's tickets HTTP API: a few tickets behind an API key. Custos holds the key in its
 * vault and injects it on /proxy/tickets/...; no agent configuration ever contains it.
 */
export async function startDemoTicketsApi(apiKey: string): Promise<{ url: string; close(): Promise<void> }> {
  const tickets = [
    { id: 1, title: 'Printer on fire', status: 'open' },
    { id: 2, title: 'VPN slow', status: 'closed' },
  ];
  const expected = Buffer.from(`Bearer ${apiKey}`);
  const server: Server = createServer((req, res) => {
    const given = Buffer.from(req.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'a valid API key is required' }));
      return;
    }
    const match = /^\/api\/tickets(?:\/(\d+))?\/?$/.exec((req.url ?? '').split('?')[0] ?? '');
    if (req.method !== 'GET' || match === null) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'not found' }));
      return;
    }
    const body = match[1] === undefined ? tickets : tickets.find((t) => t.id === Number(match[1]));
    res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body ?? { error: 'no such ticket' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/api`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
