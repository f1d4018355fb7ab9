import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CustosError } from '../../core/errors.js';
import { HttpUpstream } from './http.js';
import { eventually, freePort, memoryLogger, startEverythingHttp } from './test-support.js';
import { type Progress, UpstreamRpcError } from './types.js';

function text(result: Record<string, unknown>): string {
  const content = result.content as Array<{ type: string; text?: string }>;
  return content.map((block) => block.text ?? '').join('');
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

/** A pass-through HTTP proxy that records the method and headers of every request it relays. */
async function recordingProxy(targetPort: () => number): Promise<{
  url: string;
  seen: Array<{ method: string; headers: IncomingHttpHeaders; body: string }>;
  close: () => Promise<void>;
}> {
  const seen: Array<{ method: string; headers: IncomingHttpHeaders; body: string }> = [];
  const server: Server = createServer((req, res) => {
    const record = { method: req.method ?? '', headers: req.headers, body: '' };
    seen.push(record);
    req.on('data', (chunk: Buffer) => {
      record.body += chunk.toString();
    });
    const forward = httpRequest(
      { host: '127.0.0.1', port: targetPort(), path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => {
      res.destroy();
    });
    req.pipe(forward);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    seen,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

describe('Streamable HTTP upstream (server-everything)', () => {
  let port = 0;
  let everything: Awaited<ReturnType<typeof startEverythingHttp>>;
  let proxy: Awaited<ReturnType<typeof recordingProxy>>;
  let upstream: HttpUpstream;
  const logger = memoryLogger();

  beforeAll(async () => {
    port = await freePort();
    everything = await startEverythingHttp(port);
    proxy = await recordingProxy(() => port);
    upstream = new HttpUpstream(
      'remote',
      {
        url: proxy.url,
        headers: { 'x-custos-test': 'upstream-header', authorization: 'Bearer test-token' },
        timeout: 30,
      },
      { logger, backoff: { initialMs: 100, maxMs: 500 } },
    );
    await upstream.start();
  });
  afterAll(async () => {
    await upstream?.close();
    await proxy?.close();
    await everything?.stop();
  });

  it('connects and lists the catalog', () => {
    expect(upstream.status()).toBe('ready');
    // 'legacy-first' negotiation: the 2025-11-25 handshake, and requests on the direct path.
    expect(proxy.seen[0]?.body).toContain('"initialize"');
    const ready = logger.lines.find((line) => line.msg === 'upstream ready');
    expect(ready?.obj.protocolVersion).toBe('2025-11-25');
    expect(ready?.obj.directRequests).toBe(true);
    expect(upstream.catalog()?.tools.map((tool) => tool.name)).toContain('echo');
    expect(upstream.catalog()?.serverInfo.name).toBe('mcp-servers/everything');
  });

  it('forwards a tool call', async () => {
    const result = await upstream.request('tools/call', {
      name: 'echo',
      arguments: { message: 'over http' },
    });
    expect(text(result)).toBe('Echo: over http');
  });

  it('delivers every progress notification in order under the caller token', async () => {
    const seen: Progress[] = [];
    await upstream.request(
      'tools/call',
      {
        name: 'trigger-long-running-operation',
        arguments: { duration: 0.5, steps: 5 },
        _meta: { progressToken: 42 },
      },
      { onProgress: (p) => seen.push(p) },
    );
    expect(seen).toEqual([1, 2, 3, 4, 5].map((progress) => ({ progress, total: 5, progressToken: 42 })));
  });

  it('cancels a running request when the signal aborts', async () => {
    const controller = new AbortController();
    const error = await rejection(
      upstream.request(
        'tools/call',
        {
          name: 'trigger-long-running-operation',
          arguments: { duration: 20, steps: 100 },
          _meta: { progressToken: 'p' },
        },
        { signal: controller.signal, onProgress: () => controller.abort() },
      ),
    );
    expect((error as CustosError).code).toBe('upstream_unavailable');
    expect((error as CustosError).detail?.reason).toBe('cancelled');
    expect(upstream.status()).toBe('ready');
    // The cancellation went upstream as a notification naming the request.
    await eventually(
      () => proxy.seen.some((r) => r.method === 'POST' && r.body.includes('notifications/cancelled')),
      'notifications/cancelled to reach the upstream',
    );
    const cancel = proxy.seen.find((r) => r.body.includes('notifications/cancelled'));
    const call = proxy.seen.find((r) => r.body.includes('"duration":20'));
    expect(JSON.parse(cancel?.body ?? '{}').params.requestId).toBe(JSON.parse(call?.body ?? '{}').id);
  });

  it('forwards the upstream JSON-RPC error', async () => {
    const error = await rejection(upstream.request('prompts/get', { name: 'no-such-prompt' }));
    expect(error).toBeInstanceOf(UpstreamRpcError);
    expect((error as UpstreamRpcError).rpcCode).toBe(-32602);
  });

  it('sends the configured headers on every HTTP request', () => {
    expect(proxy.seen.length).toBeGreaterThan(3);
    for (const request of proxy.seen) {
      expect(request.headers['x-custos-test']).toBe('upstream-header');
      expect(request.headers.authorization).toBe('Bearer test-token');
    }
  });

  it('reconnects after the server restarts and serves again', async () => {
    await everything.stop();
    const down = await rejection(
      upstream.request('tools/call', { name: 'echo', arguments: { message: 'x' } }),
    );
    expect((down as CustosError).code).toBe('upstream_unavailable');
    await eventually(() => upstream.status() === 'restarting', 'status restarting');
    everything = await startEverythingHttp(port);
    expect(await upstream.waitReady(15_000)).toBe(true);
    const result = await upstream.request('tools/call', { name: 'echo', arguments: { message: 'back' } });
    expect(text(result)).toBe('Echo: back');
  });

  it('ends the MCP session with DELETE on close, with the configured headers', async () => {
    await upstream.close();
    const deletes = proxy.seen.filter((request) => request.method === 'DELETE');
    expect(deletes.length).toBe(1);
    expect(deletes[0]?.headers['x-custos-test']).toBe('upstream-header');
    expect(deletes[0]?.headers['mcp-session-id']).toBeDefined();
  });
});
