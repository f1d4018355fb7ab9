import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CustosError } from '../../core/errors.js';
import { StdioUpstream } from './stdio.js';
import {
  eventually,
  everythingEntry,
  filesystemEntry,
  isAlive,
  memoryLogger,
  statusIs,
} from './test-support.js';
import { type CatalogChange, type Progress, type UpstreamNotification, UpstreamRpcError } from './types.js';

function everything(logger = memoryLogger()) {
  const upstream = new StdioUpstream(
    'everything',
    { command: process.execPath, args: [everythingEntry, 'stdio'], env: {}, timeout: 30 },
    { logger, backoff: { initialMs: 100, maxMs: 1000 } },
  );
  return { upstream, logger };
}

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

describe('stdio upstream (server-everything)', () => {
  const { upstream, logger } = everything();
  const notifications: UpstreamNotification[] = [];
  const catalogChanges: CatalogChange[] = [];
  upstream.onNotification((n) => notifications.push(n));
  upstream.onCatalogChanged((c) => catalogChanges.push(c));

  beforeAll(async () => {
    await upstream.start();
    expect(await upstream.waitReady(15_000)).toBe(true);
  });
  afterAll(async () => {
    await upstream.close();
  });

  it('lists tools, prompts, resources and templates into the catalog', () => {
    const catalog = upstream.catalog();
    expect(catalog?.serverInfo.name).toBe('mcp-servers/everything');
    const tools = catalog?.tools.map((tool) => tool.name) ?? [];
    expect(tools).toContain('echo');
    expect(tools).toContain('trigger-long-running-operation');
    expect(catalog?.prompts.length).toBeGreaterThan(0);
    expect(catalog?.resources.length).toBeGreaterThan(0);
    expect(catalog?.resourceTemplates.length).toBeGreaterThan(0);
    expect(Object.isFrozen(catalog)).toBe(true);
    expect(catalogChanges.at(0)?.parts).toEqual(['tools', 'prompts', 'resources']);
  });

  it('forwards a tool call and returns the raw result', async () => {
    const result = await upstream.request('tools/call', { name: 'echo', arguments: { message: 'hello' } });
    expect(text(result)).toBe('Echo: hello');
  });

  it('passes the child stderr lines to the logger', () => {
    expect(logger.lines.some((line) => line.obj.stderr === 'Starting default (STDIO) server...')).toBe(true);
  });

  it('delivers every progress notification, in order, under the caller token, before the result', async () => {
    const seen: Progress[] = [];
    const result = await upstream.request(
      'tools/call',
      {
        name: 'trigger-long-running-operation',
        arguments: { duration: 0.5, steps: 5 },
        _meta: { progressToken: 'agent-7' },
      },
      { onProgress: (p) => seen.push(p) },
    );
    expect(text(result)).toContain('Long running operation completed');
    expect(seen).toEqual(
      [1, 2, 3, 4, 5].map((progress) => ({ progress, total: 5, progressToken: 'agent-7' })),
    );
  });

  it('cancels a running request when the signal aborts, and keeps serving', async () => {
    const controller = new AbortController();
    const pending = upstream.request(
      'tools/call',
      {
        name: 'trigger-long-running-operation',
        arguments: { duration: 20, steps: 100 },
        _meta: { progressToken: 1 },
      },
      { signal: controller.signal, onProgress: () => controller.abort() },
    );
    const error = await rejection(pending);
    expect(error).toBeInstanceOf(CustosError);
    expect((error as CustosError).code).toBe('upstream_unavailable');
    expect((error as CustosError).detail?.reason).toBe('cancelled');
    expect((error as CustosError).message).toMatch(/cancelled/);
    const after = await upstream.request('tools/call', {
      name: 'echo',
      arguments: { message: 'still here' },
    });
    expect(text(after)).toBe('Echo: still here');
  });

  it('fails a request that outlives its timeout with a timeout reason', async () => {
    const error = await rejection(
      upstream.request(
        'tools/call',
        { name: 'trigger-long-running-operation', arguments: { duration: 5, steps: 5 } },
        { timeoutMs: 200 },
      ),
    );
    expect((error as CustosError).code).toBe('upstream_unavailable');
    expect((error as CustosError).detail?.reason).toBe('timeout');
  });

  it('forwards the upstream JSON-RPC error as UpstreamRpcError', async () => {
    const unknownPrompt = await rejection(upstream.request('prompts/get', { name: 'no-such-prompt' }));
    expect(unknownPrompt).toBeInstanceOf(UpstreamRpcError);
    expect((unknownPrompt as UpstreamRpcError).rpcCode).toBe(-32602);
    const unknownMethod = await rejection(upstream.request('no/such-method', {}));
    expect((unknownMethod as UpstreamRpcError).rpcCode).toBe(-32601);
  });

  it('answers an unknown tool with the tool error result the upstream sends', async () => {
    const result = await upstream.request('tools/call', { name: 'no-such-tool', arguments: {} });
    expect(result.isError).toBe(true);
  });

  it('emits notifications/message from the upstream as an event', async () => {
    await upstream.request('tools/call', { name: 'toggle-simulated-logging', arguments: {} });
    await eventually(
      () => notifications.some((n) => n.method === 'notifications/message' && n.server === 'everything'),
      'a notifications/message event',
    );
    await upstream.request('tools/call', { name: 'toggle-simulated-logging', arguments: {} });
  });

  it('restarts the child after it is killed, lists again and serves again', async () => {
    const pid = upstream.pid();
    expect(pid).toBeTypeOf('number');
    const before = catalogChanges.length;
    process.kill(pid as number, 'SIGKILL');
    await eventually(() => upstream.status() !== 'ready', 'the upstream to notice the exit');
    const refused = await rejection(
      upstream.request('tools/call', { name: 'echo', arguments: { message: 'x' } }),
    );
    expect((refused as CustosError).code).toBe('upstream_unavailable');
    expect(await upstream.waitReady(15_000)).toBe(true);
    expect(upstream.pid()).not.toBe(pid);
    expect(isAlive(pid as number)).toBe(false);
    expect(catalogChanges.length).toBeGreaterThan(before);
    const result = await upstream.request('tools/call', { name: 'echo', arguments: { message: 'again' } });
    expect(text(result)).toBe('Echo: again');
  });
});

describe('stdio upstream lifecycle', () => {
  it('close() ends the child process and refuses further requests', async () => {
    const { upstream } = everything();
    await upstream.start();
    expect(upstream.status()).toBe('ready');
    const pid = upstream.pid() as number;
    expect(isAlive(pid)).toBe(true);
    await upstream.close();
    expect(upstream.status()).toBe('closed');
    expect(isAlive(pid)).toBe(false);
    const error = await rejection(upstream.request('tools/list', {}));
    expect((error as CustosError).code).toBe('upstream_unavailable');
  });

  it('fails fast while a server cannot start, and keeps retrying with backoff', async () => {
    const logger = memoryLogger();
    const upstream = new StdioUpstream(
      'broken',
      { command: process.execPath, args: ['-e', 'process.exit(3)'], env: {}, timeout: 5 },
      { logger, backoff: { initialMs: 50, maxMs: 100 } },
    );
    try {
      await upstream.start();
      expect(upstream.status()).toBe('starting');
      expect(upstream.lastError()).toBeDefined();
      const error = await rejection(upstream.request('tools/list', {}));
      expect((error as CustosError).code).toBe('upstream_unavailable');
      await eventually(
        () => logger.lines.filter((line) => line.msg === 'upstream connection attempt failed').length >= 3,
        'three failed attempts',
      );
    } finally {
      await upstream.close();
    }
  });

  it('reports failed after maxConsecutiveFailures', async () => {
    const upstream = new StdioUpstream(
      'missing',
      { command: '/nonexistent/custos-test-binary', args: [], env: {}, timeout: 5 },
      { logger: memoryLogger(), backoff: { initialMs: 10, maxMs: 10, maxConsecutiveFailures: 2 } },
    );
    try {
      await upstream.start();
      await eventually(statusIs(upstream, 'failed'), 'status failed');
      expect(await upstream.waitReady(10)).toBe(false);
    } finally {
      await upstream.close();
    }
  });
});

describe('stdio upstream (server-filesystem)', () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'custos-fs-')));
  const logger = memoryLogger();
  const upstream = new StdioUpstream(
    'files',
    { command: process.execPath, args: [filesystemEntry, dir], env: {}, timeout: 30 },
    { logger },
  );

  beforeAll(async () => {
    writeFileSync(join(dir, 'hello.txt'), 'hello from custos\n');
    await upstream.start();
  });
  afterAll(async () => {
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads a file in the allowed directory', async () => {
    expect(upstream.status()).toBe('ready');
    expect(upstream.catalog()?.tools.map((tool) => tool.name)).toContain('read_text_file');
    const result = await upstream.request('tools/call', {
      name: 'read_text_file',
      arguments: { path: join(dir, 'hello.txt') },
    });
    expect(text(result)).toBe('hello from custos\n');
  });
});

describe('stdio upstream catalog updates (fixture server)', () => {
  const fixture = fileURLToPath(new URL('./fixtures/changing-server.mjs', import.meta.url));
  const upstream = new StdioUpstream(
    'changing',
    { command: process.execPath, args: [fixture], env: {}, timeout: 30 },
    { logger: memoryLogger() },
  );
  const changes: CatalogChange[] = [];
  upstream.onCatalogChanged((change) => changes.push(change));

  beforeAll(async () => {
    await upstream.start();
  });
  afterAll(async () => {
    await upstream.close();
  });

  it('follows nextCursor across pages and skips lists the server does not offer', () => {
    expect(upstream.status()).toBe('ready');
    expect(upstream.catalog()?.tools.map((tool) => tool.name)).toEqual([
      'alpha',
      'beta',
      'gamma',
      'add-tool',
    ]);
    expect(upstream.catalog()?.prompts).toEqual([]);
    expect(upstream.catalog()?.resources).toEqual([{ uri: 'memo://one', name: 'one' }]);
    // Declared resources but no resources/templates/list: "method not found" means none.
    expect(upstream.catalog()?.resourceTemplates).toEqual([]);
  });

  it('emits notifications/resources/updated as an event', async () => {
    const seen: UpstreamNotification[] = [];
    const unsubscribe = upstream.onNotification((n) => seen.push(n));
    await upstream.request('tools/call', { name: 'touch', arguments: {} });
    await eventually(() => seen.length > 0, 'a notification');
    unsubscribe();
    expect(seen[0]).toEqual({
      server: 'changing',
      method: 'notifications/resources/updated',
      params: { uri: 'memo://one' },
    });
  });

  it('re-lists tools on notifications/tools/list_changed and emits a catalog change', async () => {
    const before = changes.length;
    await upstream.request('tools/call', { name: 'add-tool', arguments: { name: 'delta' } });
    await eventually(() => changes.length > before, 'a catalog change');
    expect(changes.at(-1)?.parts).toEqual(['tools']);
    expect(changes.at(-1)?.catalog.tools.map((tool) => tool.name)).toContain('delta');
    expect(upstream.catalog()?.tools.map((tool) => tool.name)).toContain('delta');
  });
});
