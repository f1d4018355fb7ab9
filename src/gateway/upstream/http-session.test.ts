import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CustosError } from '../../core/errors.js';
import { HttpUpstream } from './http.js';
import { eventually, freePort, memoryLogger } from './test-support.js';
import { type Json, type UpstreamNotification, UpstreamRpcError } from './types.js';

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

interface EchoServer {
  url: string;
  close: () => Promise<void>;
}
/** bench/echo-server.js: plain JS without declarations, so imported by URL and typed here. */
const { startEchoServer } = (await import(pathToFileURL(resolve('bench/echo-server.js')).href)) as {
  startEchoServer: (options: { port: number }) => Promise<EchoServer>;
};

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A 2025-11-25 server that answers tools/call with an SSE stream written in awkward pieces:
 * a priming event without data, notifications before the result, CRLF framing, lines and a
 * multi-byte character split across writes, a stranger's response, and a result spread over
 * two data lines. tools/call "garbage" answers with an event that is not JSON.
 */
async function scriptedServer(): Promise<{
  url: string;
  calls: IncomingHttpHeaders[];
  close: () => Promise<void>;
}> {
  const calls: IncomingHttpHeaders[] = [];
  const server: Server = createServer((req, res) => {
    if (req.method === 'DELETE') return void res.writeHead(200).end();
    if (req.method !== 'POST') return void res.writeHead(405).end();
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString();
    });
    req.on('end', () => {
      const message = JSON.parse(body) as Json;
      if (message.id === undefined) return void res.writeHead(202).end();
      if (message.method === 'initialize') {
        res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'session-1' });
        res.end(
          JSON.stringify({
            jsonrpc: '2.0',
            id: message.id,
            result: {
              protocolVersion: '2025-11-25',
              capabilities: {},
              serverInfo: { name: 'scripted', version: '1.0.0' },
            },
          }),
        );
        return;
      }
      calls.push(req.headers);
      void streamAnswer(res, message);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    calls,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

async function streamAnswer(res: ServerResponse, request: Json): Promise<void> {
  const params = request.params as Json;
  const token = (params._meta as Json | undefined)?.progressToken;
  const note = (data: string) =>
    JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data } });
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  if (params.name === 'garbage') {
    res.end('data: {not json\n\n');
    return;
  }
  const progress = JSON.stringify({
    jsonrpc: '2.0',
    method: 'notifications/progress',
    params: { progressToken: token, progress: 1, total: 2 },
  });
  const accented = Buffer.from(`data: ${note('café')}\n\n`);
  const split = accented.indexOf(0xc3) + 1; // inside the two bytes of "é"
  const result = JSON.stringify({
    jsonrpc: '2.0',
    id: request.id,
    result: { content: [{ type: 'text', text: 'done ✓' }] },
  });
  const resultAt = result.indexOf('"result"');
  const pieces: Array<string | Buffer> = [
    'id: 0\ndata: \n\n',
    `event: message\ndata: ${note('one')}\n\n`,
    `data: ${progress.slice(0, 20)}`,
    `${progress.slice(20)}\r\n\r\n`,
    accented.subarray(0, split),
    accented.subarray(split),
    `data: ${JSON.stringify({ jsonrpc: '2.0', id: 'someone-else', result: {} })}\n\n`,
    `data: ${result.slice(0, resultAt)}\ndata: ${result.slice(resultAt)}\n\n`,
  ];
  for (const piece of pieces) {
    res.write(piece);
    await pause(5);
  }
  res.end();
}

describe('direct requests on a 2025-11-25 session answered with SSE', () => {
  let scripted: Awaited<ReturnType<typeof scriptedServer>>;
  let upstream: HttpUpstream;

  beforeAll(async () => {
    scripted = await scriptedServer();
    upstream = new HttpUpstream(
      'scripted',
      { url: scripted.url, headers: { 'X-Custos-Test': 'yes' }, timeout: 10 },
      { logger: memoryLogger() },
    );
    await upstream.start();
  });
  afterAll(async () => {
    await upstream?.close();
    await scripted?.close();
  });

  it('routes interleaved notifications to the caller in order, then resolves with the result', async () => {
    const seen: unknown[] = [];
    const result = await upstream.request(
      'tools/call',
      { name: 'work', arguments: {}, _meta: { progressToken: 7 } },
      {
        onProgress: (progress) => seen.push(['progress', progress]),
        onNotification: (method, params) => seen.push([method, params?.data]),
      },
    );
    seen.push(['result', result]);
    expect(seen).toEqual([
      ['notifications/message', 'one'],
      ['progress', { progress: 1, total: 2, progressToken: 7 }],
      ['notifications/message', 'café'],
      ['result', { content: [{ type: 'text', text: 'done ✓' }] }],
    ]);
  });

  it('sends the session, the protocol version and the configured headers', () => {
    const headers = scripted.calls[0];
    expect(headers?.['mcp-session-id']).toBe('session-1');
    expect(headers?.['mcp-protocol-version']).toBe('2025-11-25');
    expect(headers?.accept).toBe('application/json, text/event-stream');
    expect(headers?.['content-type']).toBe('application/json');
    expect(headers?.['x-custos-test']).toBe('yes');
  });

  it('hands notifications to the upstream listeners when the caller takes none', async () => {
    const heard: UpstreamNotification[] = [];
    const unsubscribe = upstream.onNotification((notification) => heard.push(notification));
    try {
      await upstream.request('tools/call', { name: 'work', arguments: {} });
    } finally {
      unsubscribe();
    }
    expect(heard.map((n) => n.params?.data)).toEqual(['one', 'café']);
  });

  it('refuses an event that is not JSON as an invalid answer', async () => {
    const error = await rejection(upstream.request('tools/call', { name: 'garbage', arguments: {} }));
    expect((error as CustosError).code).toBe('upstream_error');
    expect((error as CustosError).detail?.reason).toBe('invalid_result');
    expect(upstream.status()).toBe('ready');
  });
});

describe('direct requests on a 2025-11-25 session answered with JSON (bench echo server)', () => {
  let port = 0;
  let echo: EchoServer;
  let upstream: HttpUpstream;
  const logger = memoryLogger();

  beforeAll(async () => {
    port = await freePort();
    echo = await startEchoServer({ port });
    upstream = new HttpUpstream(
      'echo',
      { url: echo.url, headers: {}, timeout: 10 },
      { logger, backoff: { initialMs: 50, maxMs: 200 } },
    );
    await upstream.start();
  });
  afterAll(async () => {
    await upstream?.close();
    await echo?.close();
  });

  it('prefers the 2025-11-25 session over 2026-07-28 and takes the direct path', () => {
    const ready = logger.lines.find((line) => line.msg === 'upstream ready');
    expect(ready?.obj.protocolVersion).toBe('2025-11-25');
    expect(ready?.obj.directRequests).toBe(true);
  });

  it('gives each of 32 concurrent calls its own answer', async () => {
    const texts = Array.from({ length: 32 }, (_, i) => `call ${i}`);
    const results = await Promise.all(
      texts.map((text) => upstream.request('tools/call', { name: 'echo', arguments: { text } })),
    );
    expect(results.map((r) => (r.content as Array<{ text: string }>)[0]?.text)).toEqual(texts);
  });

  it('forwards a JSON-RPC error answer', async () => {
    const error = await rejection(upstream.request('tools/call', { name: 'nope', arguments: {} }));
    expect(error).toBeInstanceOf(UpstreamRpcError);
    expect((error as UpstreamRpcError).rpcCode).toBe(-32602);
  });

  it('fails fast when the caller already gave up', async () => {
    const error = await rejection(
      upstream.request('tools/call', { name: 'echo', arguments: {} }, { signal: AbortSignal.abort() }),
    );
    expect((error as CustosError).detail?.reason).toBe('cancelled');
  });

  it('drops a session the server forgot (HTTP 404) and serves again on a new one', async () => {
    await echo.close();
    echo = await startEchoServer({ port });
    await pause(100); // let the pool see its old connections close, so the next POST meets the new server
    const error = await rejection(upstream.request('tools/call', { name: 'echo', arguments: { text: 'x' } }));
    expect((error as CustosError).code).toBe('upstream_unavailable');
    expect((error as CustosError).detail?.httpStatus).toBe(404);
    await eventually(() => upstream.status() !== 'ready', 'the session to be dropped');
    expect(await upstream.waitReady(5000)).toBe(true);
    const result = await upstream.request('tools/call', { name: 'echo', arguments: { text: 'again' } });
    expect(result.content).toEqual([{ type: 'text', text: 'again' }]);
  });
});
