import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { everythingServer, startTestCustos, type TestCustos } from './support/custos.js';

async function connect(url: string, token: string, modern: boolean): Promise<Client> {
  const client = new Client(
    { name: 'passthrough', version: '1.0.0' },
    modern ? { versionNegotiation: { mode: 'auto' } } : {},
  );
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  return client;
}

/** Resources, prompts and completions reach a real upstream through Custos, and are recorded. */
describe('resources and prompts pass through', () => {
  let t: TestCustos;
  beforeAll(async () => {
    t = await startTestCustos({
      servers: { everything: everythingServer },
      policies: {
        'p.cedar': [
          '@id("pt:all")',
          'permit (principal, action, resource);',
          '@id("pt:no-private")',
          'forbid (principal, action == Action::"read_resource", resource)',
          'when { resource.name like "*private*" };',
        ].join('\n'),
      },
      agents: [{ name: 'reader' }],
    });
  });
  afterAll(() => t?.close());

  it.each([
    ['2025-11-25', false],
    ['2026-07-28', true],
  ])('lists and gets prompts, lists and reads resources, completes arguments (%s)', async (_era, modern) => {
    const client = await connect(`${t.url}/mcp`, await t.token('reader'), modern);
    const agent = { client, close: () => client.close() };
    try {
      const { prompts } = await agent.client.listPrompts();
      expect(prompts.length).toBeGreaterThan(0);
      const simple = prompts.find((p) => (p.arguments ?? []).every((a) => !a.required));
      if (simple === undefined) throw new Error('no prompt without required arguments');
      const got = await agent.client.getPrompt({ name: simple.name });
      expect(got.messages.length).toBeGreaterThan(0);

      const { resources } = await agent.client.listResources();
      expect(resources.length).toBeGreaterThan(0);
      const first = resources[0];
      if (first === undefined) throw new Error('no resource');
      const read = await agent.client.readResource({ uri: first.uri });
      expect(read.contents[0]?.uri).toBe(first.uri);

      const { resourceTemplates } = await agent.client.listResourceTemplates();
      expect(Array.isArray(resourceTemplates)).toBe(true);

      const withArgs = prompts.find((p) => (p.arguments ?? []).length > 0);
      if (withArgs?.arguments?.[0]) {
        const completion = await agent.client.complete({
          ref: { type: 'ref/prompt', name: withArgs.name },
          argument: { name: withArgs.arguments[0].name, value: '' },
        });
        expect(Array.isArray(completion.completion.values)).toBe(true);
      }
    } finally {
      await agent.close();
    }
    const { events } = await t.admin<{ events: Array<{ method: string; outcome: string }> }>(
      '/api/v1/audit/events?limit=50',
    );
    const methods = new Set(events.filter((e) => e.outcome === 'executed').map((e) => e.method));
    for (const m of ['prompts/list', 'prompts/get', 'resources/list', 'resources/read'])
      expect(methods).toContain(m);
  });

  it('refuses a resource a policy forbids, with the policy id, and records it', async () => {
    const client = await connect(`${t.url}/mcp`, await t.token('reader'), false);
    const agent = { client, close: () => client.close() };
    try {
      await expect(agent.client.readResource({ uri: 'demo://resource/private/secret' })).rejects.toThrow(
        /pt:no-private/,
      );
    } finally {
      await agent.close();
    }
    const { events } = await t.admin<{
      events: Array<{ method: string; outcome: string; policyIds: string[] }>;
    }>('/api/v1/audit/events?limit=50');
    expect(
      events.some(
        (e) =>
          e.method === 'resources/read' && e.outcome === 'denied' && e.policyIds.includes('pt:no-private'),
      ),
    ).toBe(true);
  });
});
