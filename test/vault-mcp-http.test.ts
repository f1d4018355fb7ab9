import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentClient, connectAgent, type Flavour, textOf } from './support/agents.js';
import { eventually, startTestCustos, type TestCustos } from './support/custos.js';
import {
  type RecordingMcpServer,
  type SeenRequest,
  startRecordingMcpServer,
} from './support/recording-mcp-http.js';

/**
 * Vault injection into real Streamable HTTP MCP servers: one serving 2025-11-25 (Custos takes
 * its direct path) and one serving only 2026-07-28 (Custos keeps the SDK client transport),
 * both recording every HTTP request Custos sends them.
 */
const owner = 'mcp-owner@example.com';
const policies = {
  'all.cedar': `permit (principal in Owner::"${owner}", action, resource);`,
};
const eras: Flavour[] = ['sdk2-legacy', 'sdk2-modern'];

async function withAgent<T>(client: Promise<AgentClient>, work: (c: AgentClient) => Promise<T>): Promise<T> {
  const c = await client;
  try {
    return await work(c);
  } finally {
    await c.close().catch(() => {});
  }
}

describe('vault: credentials injected into Streamable HTTP MCP servers', () => {
  let legacy: RecordingMcpServer;
  let modern: RecordingMcpServer;
  let t: TestCustos;
  let alpha = '';
  let beta = '';
  let marker = 0;
  const upstreams = () => [legacy, modern];

  /** The requests that carried this marker in their body (the tool call itself). */
  const carrying = (server: RecordingMcpServer, mark: string): SeenRequest[] =>
    server.seen.filter((r) => r.body.includes(mark));

  /** Call both upstream tools as an agent; return the markers used. */
  async function callBoth(flavour: Flavour, token: string): Promise<{ legacy: string; modern: string }> {
    const marks = { legacy: `mark-${++marker}-legacy`, modern: `mark-${++marker}-modern` };
    await withAgent(connectAgent(flavour, `${t.url}/mcp`, token), async (agent) => {
      if (flavour === 'sdk2-modern') expect(agent.protocolVersion()).toBe('2026-07-28');
      else expect(agent.protocolVersion()).toBe('2025-11-25');
      const names = (await agent.listTools()).map((tool) => tool.name);
      expect(names).toEqual(expect.arrayContaining(['legacy-echo', 'modern-echo']));
      const a = await agent.callTool('legacy-echo', { message: marks.legacy });
      expect(a.isError).toBeFalsy();
      expect(textOf(a)).toBe(`legacy: ${marks.legacy}`);
      const b = await agent.callTool('modern-echo', { message: marks.modern });
      expect(b.isError).toBeFalsy();
      expect(textOf(b)).toBe(`modern: ${marks.modern}`);
    });
    return marks;
  }

  beforeAll(async () => {
    legacy = await startRecordingMcpServer('legacy', 'legacy');
    modern = await startRecordingMcpServer('modern', 'modern');
    t = await startTestCustos({
      servers: {
        legacy: { url: legacy.url, credential: 'mcp-shared', timeout: 20 },
        modern: {
          url: modern.url,
          credential: { secret: 'mcp-shared', header: 'Authorization: Bearer {{secret}}' },
          timeout: 20,
        },
      },
      policies,
      agents: [
        { name: 'alpha', owner },
        { name: 'beta', owner },
      ],
    });
    // Until the secret exists, the connections cannot be made: nothing may have been sent.
    expect(legacy.seen).toEqual([]);
    expect(modern.seen).toEqual([]);
    await t.custos.vault.set('mcp-shared', 'shared-v1');
    await t.restart();
    alpha = await t.token('alpha');
    beta = await t.token('beta');
    await eventually(
      async () => {
        const token = alpha;
        return withAgent(connectAgent('sdk2-legacy', `${t.url}/mcp`, token), async (agent) => {
          const names = (await agent.listTools()).map((tool) => tool.name);
          return names.includes('legacy-echo') && names.includes('modern-echo');
        });
      },
      'both upstreams ready',
      30_000,
    );
  }, 90_000);

  afterAll(async () => {
    await t?.close();
    await legacy?.close();
    await modern?.close();
  });

  it('connects to each upstream on its own protocol era', () => {
    const ready = (server: string) =>
      t.logs.find((line) => line.msg === 'upstream ready' && line.server === server)?.protocolVersion;
    expect(ready('legacy')).toBe('2025-11-25');
    expect(ready('modern')).toBe('2026-07-28');
  });

  it.each(eras)(
    'sends the shared secret on every request, never the agent token (%s agent)',
    async (flavour) => {
      const marks = await callBoth(flavour, alpha);
      expect(carrying(legacy, marks.legacy).map((r) => r.authorization)).toEqual(['Bearer shared-v1']);
      expect(carrying(modern, marks.modern).map((r) => r.authorization)).toEqual(['Bearer shared-v1']);
      for (const server of upstreams()) {
        // Connection-level requests (initialize or discover, listings) and calls alike.
        const rpcs = server.seen.map((r) => r.rpc).join(' ');
        expect(rpcs).toContain('tools/list');
        expect(rpcs).toContain('tools/call');
        expect(new Set(server.seen.map((r) => r.authorization))).toEqual(new Set(['Bearer shared-v1']));
        const everything = JSON.stringify(server.seen);
        expect(everything).not.toContain(alpha);
        expect(everything).not.toContain(beta);
      }
      expect(legacy.seen.some((r) => r.rpc === 'initialize')).toBe(true);
    },
  );

  it('a per-agent binding gives that agent its own value on its calls; others keep the shared one', async () => {
    await t.custos.vault.set('beta-own', 'beta-v1');
    const betaId = t.agents.get('beta')?.clientId ?? '';
    for (const target of ['legacy', 'modern']) {
      await t.custos.bindings.bind({
        secret: 'beta-own',
        targetKind: 'server',
        target,
        agentId: betaId,
        inject: 'header',
        field: 'Authorization',
      });
    }
    for (const flavour of eras) {
      const mine = await callBoth(flavour, beta);
      expect(carrying(legacy, mine.legacy).map((r) => r.authorization)).toEqual(['Bearer beta-v1']);
      expect(carrying(modern, mine.modern).map((r) => r.authorization)).toEqual(['Bearer beta-v1']);
      const theirs = await callBoth(flavour, alpha);
      expect(carrying(legacy, theirs.legacy).map((r) => r.authorization)).toEqual(['Bearer shared-v1']);
      expect(carrying(modern, theirs.modern).map((r) => r.authorization)).toEqual(['Bearer shared-v1']);
    }
    for (const server of upstreams()) {
      // beta's value goes only on beta's calls, never on the shared connection's requests.
      for (const r of server.seen.filter((s) => s.authorization === 'Bearer beta-v1')) {
        expect(r.rpc).toBe('tools/call');
        expect(r.body).toMatch(/mark-\d+-/);
      }
      expect(JSON.stringify(server.seen)).not.toContain(beta);
    }
  });

  it('rotation takes effect on the next call and the old value is never seen again', async () => {
    const from = { legacy: legacy.seen.length, modern: modern.seen.length };
    await t.custos.vault.rotate('mcp-shared', 'shared-v2');
    for (const server of upstreams()) server.accepted = new Set(['Bearer shared-v2', 'Bearer beta-v1']);
    for (const flavour of eras) {
      const marks = await callBoth(flavour, alpha);
      expect(carrying(legacy, marks.legacy).map((r) => r.authorization)).toEqual(['Bearer shared-v2']);
      expect(carrying(modern, marks.modern).map((r) => r.authorization)).toEqual(['Bearer shared-v2']);
    }
    const after = [...legacy.seen.slice(from.legacy), ...modern.seen.slice(from.modern)];
    expect(after.length).toBeGreaterThan(0);
    expect(after.map((r) => r.authorization)).not.toContain('Bearer shared-v1');
  });

  it('requests Custos fans out on its own (logging/setLevel) carry the shared secret too', async () => {
    const from = legacy.seen.length;
    const client = new Client({ name: 'logging-agent', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${t.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${alpha}` } },
      }),
    );
    try {
      await client.setLoggingLevel('warning');
    } finally {
      await client.close();
    }
    const set = legacy.seen.slice(from).filter((r) => r.rpc === 'logging/setLevel');
    expect(set.length).toBe(1);
    expect(set[0]?.authorization).toBe('Bearer shared-v2');
  });

  it('a cancellation the agent sends reaches the upstream with the call credential', async () => {
    const from = { legacy: legacy.seen.length, modern: modern.seen.length };
    await withAgent(connectAgent('sdk2-legacy', `${t.url}/mcp`, alpha), async (agent) => {
      for (const tool of ['legacy-slow', 'modern-slow']) {
        const controller = new AbortController();
        const call = agent.callTool(tool, {}, undefined, { signal: controller.signal });
        const server = tool.startsWith('legacy') ? legacy : modern;
        await eventually(() => server.seen.some((r) => r.body.includes(tool)), `${tool} reached`);
        controller.abort('the agent changed its mind');
        await expect(call).rejects.toThrow();
      }
    });
    const cancel = await eventually(
      () => legacy.seen.slice(from.legacy).find((r) => r.rpc === 'notifications/cancelled'),
      'the cancellation reaching the 2025-era upstream',
    );
    expect(cancel.authorization).toBe('Bearer shared-v2');
    const after = [...legacy.seen.slice(from.legacy), ...modern.seen.slice(from.modern)];
    expect(new Set(after.map((r) => r.authorization))).toEqual(new Set(['Bearer shared-v2']));
  });

  it.each(eras)(
    'an upstream refusing the injected credential on a call is reported distinctly (%s agent)',
    async (flavour) => {
      await withAgent(connectAgent(flavour, `${t.url}/mcp`, alpha), async (agent) => {
        for (const server of upstreams()) server.requireScope = 'tickets:write';
        try {
          for (const tool of ['legacy-echo', 'modern-echo']) {
            const error = await agent.callTool(tool, { message: `mark-${++marker}-scope` }).then(
              () => undefined,
              (e: unknown) => e as { message: string; data?: { code?: string } },
            );
            expect(error?.data?.code).toBe('upstream_insufficient_scope');
            expect(error?.message).toContain('tickets:write');
          }
        } finally {
          for (const server of upstreams()) server.requireScope = undefined;
        }
        // The shared secret is now one the upstreams no longer accept (401 invalid_token).
        for (const server of upstreams()) server.accepted = new Set(['Bearer beta-v1']);
        try {
          for (const tool of ['legacy-echo', 'modern-echo']) {
            const error = await agent.callTool(tool, { message: `mark-${++marker}-rejected` }).then(
              () => undefined,
              (e: unknown) => e as { message: string; data?: { code?: string } },
            );
            expect(error?.data?.code).toBe('upstream_token_rejected');
          }
        } finally {
          for (const server of upstreams()) server.accepted = new Set(['Bearer shared-v2', 'Bearer beta-v1']);
        }
        // Both were refusals of one call, not of the connection: the next call goes through.
        const ok = await agent.callTool('modern-echo', { message: 'after' });
        expect(textOf(ok)).toBe('modern: after');
        const ok2 = await agent.callTool('legacy-echo', { message: 'after' });
        expect(textOf(ok2)).toBe('legacy: after');
      });
    },
  );

  it('a missing secret fails the call with credential_missing and sends nothing', async () => {
    await t.custos.vault.delete('mcp-shared');
    for (const flavour of eras) {
      await withAgent(connectAgent(flavour, `${t.url}/mcp`, alpha), async (agent) => {
        for (const tool of ['legacy-echo', 'modern-echo']) {
          const before = { legacy: legacy.seen.length, modern: modern.seen.length };
          const mark = `mark-${++marker}-missing`;
          const refused = await agent.callTool(tool, { message: mark });
          expect(refused.isError).toBe(true);
          expect(textOf(refused)).toContain('credential_missing');
          expect(legacy.seen.length).toBe(before.legacy);
          expect(modern.seen.length).toBe(before.modern);
        }
      });
    }
    // beta's own binding still works: its calls do not depend on the shared secret.
    await withAgent(connectAgent('sdk2-legacy', `${t.url}/mcp`, beta), async (agent) => {
      const mark = `mark-${++marker}-beta`;
      const ok = await agent.callTool('modern-echo', { message: mark });
      expect(textOf(ok)).toBe(`modern: ${mark}`);
      expect(carrying(modern, mark).map((r) => r.authorization)).toEqual(['Bearer beta-v1']);
    });
  });
});
