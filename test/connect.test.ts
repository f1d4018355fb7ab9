import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectThroughBridge } from './support/cli.js';
import { everythingServer, startTestCustos, type TestCustos } from './support/custos.js';

/** `custos connect`: a stdio-only MCP client reaches Custos through the bridge. */
describe('custos connect', () => {
  let t: TestCustos;
  beforeAll(async () => {
    t = await startTestCustos({
      servers: { everything: everythingServer },
      policies: { 'all.cedar': '@id("bridge:all")\npermit (principal, action, resource);\n' },
      agents: [{ name: 'bridged' }],
    });
  });
  afterAll(() => t?.close());

  it('carries a stdio client to Custos with a token it fetched itself', async () => {
    const agent = t.agents.get('bridged');
    if (agent === undefined) throw new Error('no agent');
    const secretFile = join(mkdtempSync(join(tmpdir(), 'custos-connect-')), 'secret');
    writeFileSync(secretFile, agent.clientSecret, { mode: 0o600 });
    const client = await connectThroughBridge('stdio-only-agent', [
      '--url',
      `${t.url}/mcp`,
      '--client-id',
      agent.clientId,
      '--client-secret-file',
      secretFile,
    ]);
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name)).toContain('echo');
    const result = await client.callTool({ name: 'echo', arguments: { message: 'over the bridge' } });
    expect(result.content).toEqual([{ type: 'text', text: 'Echo: over the bridge' }]);
    await client.close();
    const events = await t.admin<{
      events: Array<{ method: string; target: string | null; agentId: string }>;
    }>('/api/v1/audit/events?limit=10');
    expect(
      events.events.some(
        (e) => e.method === 'tools/call' && e.target === 'echo' && e.agentId === agent.clientId,
      ),
    ).toBe(true);
  });

  it('fails with a clear message when the credentials are wrong', async () => {
    // Asynchronous on purpose: Custos runs in this process and must answer the bridge.
    const bridge = spawn(
      process.execPath,
      [resolve('bin/custos.js'), 'connect', '--url', `${t.url}/mcp`, '--client-id', 'agt_nobody'],
      { env: { ...process.env, CUSTOS_CLIENT_SECRET: 'wrong' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    bridge.stderr.on('data', (d) => (stderr += d));
    const status = await new Promise((r) => bridge.on('close', r));
    expect(status).toBe(1);
    expect(stderr).toContain('token request failed');
  });
});
