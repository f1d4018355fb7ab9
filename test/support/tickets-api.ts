import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';

/** A small tickets HTTP API that accepts exactly one API key (changeable), and records what it saw. */
export interface TicketsApi {
  readonly url: string;
  /** The header values it accepts (the current key per agent identity). */
  accepted: Set<string>;
  readonly seen: IncomingHttpHeaders[];
  close(): Promise<void>;
}

export async function startTicketsApi(accepted: string[]): Promise<TicketsApi> {
  const seen: IncomingHttpHeaders[] = [];
  const api = { accepted: new Set(accepted) } as { accepted: Set<string> };
  const server: Server = createServer((req, res) => {
    seen.push(req.headers);
    const auth = req.headers.authorization ?? '';
    if (!api.accepted.has(auth)) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'bad api key' }));
      return;
    }
    if (req.url?.startsWith('/v1/tickets/500')) {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'upstream broke' }));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          method: req.method,
          url: req.url,
          body: Buffer.concat(chunks).toString('utf8'),
          ticket: 'T-1',
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    get accepted() {
      return api.accepted;
    },
    set accepted(value) {
      api.accepted = value;
    },
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
