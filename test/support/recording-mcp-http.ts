import { once } from 'node:events';
import { createServer, type Server as HttpServer, type IncomingMessage } from 'node:http';
import { createMcpHandler, Server } from '@modelcontextprotocol/server';

/** One HTTP request the server received: what Custos sent, headers included. */
export interface SeenRequest {
  httpMethod: string;
  /** The JSON-RPC method(s) of the body, or '' for GET and DELETE. */
  rpc: string;
  authorization: string | undefined;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface RecordingMcpServer {
  readonly url: string;
  readonly seen: SeenRequest[];
  /**
   * When set, a request whose Authorization is not in it is refused with 401 and a bearer
   * challenge (RFC 6750 invalid_token), as a real protected MCP server does.
   */
  accepted: Set<string> | undefined;
  /** When set, tools/call is refused with 403 insufficient_scope naming this scope. */
  requireScope: string | undefined;
  close(): Promise<void>;
}

/**
 * A small Streamable HTTP MCP server on loopback, built on the official server SDK
 * (createMcpHandler): `era` 'legacy' serves 2025-11-25 (stateless), 'modern' serves only
 * 2026-07-28. Its one tool `<name>-echo` answers with its `message` argument. Every HTTP
 * request is recorded before it is served.
 */
export async function startRecordingMcpServer(
  name: string,
  era: 'legacy' | 'modern',
): Promise<RecordingMcpServer> {
  const factory = () => {
    const server = new Server({ name, version: '1.0.0' }, { capabilities: { tools: {}, logging: {} } });
    server.setRequestHandler('tools/list', () => ({
      tools: [
        {
          name: `${name}-echo`,
          description: 'answers with its message',
          inputSchema: { type: 'object', properties: { message: { type: 'string' } } },
          annotations: { readOnlyHint: true },
        },
        {
          name: `${name}-slow`,
          description: 'answers after two seconds',
          inputSchema: { type: 'object', properties: { message: { type: 'string' } } },
          annotations: { readOnlyHint: true },
        },
      ],
    }));
    server.setRequestHandler('tools/call', async (request) => {
      if (request.params.name === `${name}-slow`) await new Promise((r) => setTimeout(r, 2000));
      return {
        content: [{ type: 'text', text: `${name}: ${String(request.params.arguments?.message ?? '')}` }],
      };
    });
    return server;
  };
  const handler = createMcpHandler(factory, era === 'modern' ? { legacy: 'reject' } : {});
  const state: RecordingMcpServer = {
    url: '',
    seen: [],
    accepted: undefined,
    requireScope: undefined,
    close: async () => {},
  };
  const http: HttpServer = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const authorization = req.headers.authorization;
      state.seen.push({
        httpMethod: req.method ?? '',
        rpc: rpcMethods(body),
        authorization,
        headers: { ...req.headers },
        body,
      });
      if (state.accepted !== undefined && !state.accepted.has(authorization ?? '')) {
        res.writeHead(401, {
          'www-authenticate': 'Bearer error="invalid_token", error_description="the token is not valid"',
          'content-type': 'application/json',
        });
        res.end('{"error":"invalid_token"}');
        return;
      }
      if (state.requireScope !== undefined && rpcMethods(body) === 'tools/call') {
        res.writeHead(403, {
          'www-authenticate': `Bearer error="insufficient_scope", scope="${state.requireScope}"`,
          'content-type': 'application/json',
        });
        res.end('{"error":"insufficient_scope"}');
        return;
      }
      const headers = new Headers();
      for (const [key, value] of Object.entries(req.headers)) {
        if (typeof value === 'string') headers.set(key, value);
      }
      const request = new Request(`http://127.0.0.1${req.url ?? '/'}`, {
        method: req.method ?? 'GET',
        headers,
        ...(body === '' || req.method === 'GET' ? {} : { body }),
      });
      const answer = await handler.fetch(request);
      res.writeHead(answer.status, Object.fromEntries(answer.headers));
      if (answer.body === null) {
        res.end();
        return;
      }
      const reader = answer.body.getReader();
      res.on('close', () => void reader.cancel().catch(() => {}));
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        res.write(value);
      }
      res.end();
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const address = http.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  Object.assign(state, {
    url: `http://127.0.0.1:${port}/mcp`,
    close: async () => {
      await handler.close().catch(() => {});
      http.closeAllConnections();
      http.close();
      await once(http, 'close');
    },
  });
  return state;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function rpcMethods(body: string): string {
  if (body === '') return '';
  try {
    const message = JSON.parse(body) as unknown;
    const list = Array.isArray(message) ? message : [message];
    return list.map((m) => String((m as { method?: unknown; id?: unknown }).method ?? 'response')).join(',');
  } catch {
    return 'unparsable';
  }
}
