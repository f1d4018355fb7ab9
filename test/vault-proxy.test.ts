import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCustos, type TestCustos } from './support/custos.js';
import { startTicketsApi, type TicketsApi } from './support/tickets-api.js';

const policy = `
@id("tickets-read")
permit(principal, action == Action::"http_request", resource in Server::"tickets")
when { context.arguments has method && context.arguments.method == "GET" };

@id("tickets-create")
permit(principal == Agent::"AGENT_B", action == Action::"http_request", resource in Server::"tickets")
when { context.arguments has method && context.arguments.method == "POST" };
`;

describe('vault: /proxy with injected credentials', () => {
  let api: TicketsApi;
  let t: TestCustos;
  let alpha = '';
  let beta = '';

  beforeAll(async () => {
    api = await startTicketsApi(['Bearer shared-key-1']);
    t = await startTestCustos({
      servers: {},
      policies: {
        'tickets.cedar':
          'permit(principal, action == Action::"http_request", resource in Server::"nothing");',
      },
      agents: [{ name: 'alpha' }, { name: 'beta' }],
      extra: { apis: { tickets: { url: api.url, credential: 'tickets-key' } } },
    });
    await t.custos.vault.set('tickets-key', 'shared-key-1');
    const betaId = t.agents.get('beta')?.clientId ?? '';
    const { writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    writeFileSync(join(t.policiesDir, 'tickets.cedar'), policy.replace('AGENT_B', betaId));
    await t.custos.policy.reload();
    alpha = await t.token('alpha');
    beta = await t.token('beta');
  }, 60_000);

  afterAll(async () => {
    await t?.close();
    await api?.close();
  });

  const call = (token: string, path: string, init: { method?: string; body?: string } = {}) =>
    fetch(`${t.url}/proxy/tickets${path}`, {
      method: init.method ?? 'GET',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        cookie: 'session=agent',
      },
      ...(init.body === undefined ? {} : { body: init.body }),
    });

  it('attaches the vault credential and never passes the agent token upstream', async () => {
    await waitForPolicy(() => call(alpha, '/tickets/1'));
    const res = await call(alpha, '/tickets/1?x=1');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ method: 'GET', url: '/v1/tickets/1?x=1', ticket: 'T-1' });
    const last = api.seen.at(-1);
    expect(last?.authorization).toBe('Bearer shared-key-1');
    expect(JSON.stringify(api.seen)).not.toContain(alpha);
    expect(last?.cookie).toBeUndefined();
  });

  it('refuses a call without a token, and one the policy does not permit, without reaching the API', async () => {
    const before = api.seen.length;
    const anonymous = await fetch(`${t.url}/proxy/tickets/tickets/1`);
    expect(anonymous.status).toBe(401);
    const denied = await call(alpha, '/tickets', { method: 'POST', body: '{"title":"x"}' });
    expect(denied.status).toBe(403);
    expect(((await denied.json()) as { error: { code: string } }).error.code).toBe('policy_denied');
    expect(api.seen.length).toBe(before);
    const allowed = await call(beta, '/tickets', { method: 'POST', body: '{"title":"x"}' });
    expect(allowed.status).toBe(200);
    expect(((await allowed.json()) as { body: string }).body).toBe('{"title":"x"}');
  });

  it('rotation takes effect on the next call and the old value is never sent again', async () => {
    api.accepted = new Set(['Bearer shared-key-2']);
    expect((await call(alpha, '/tickets/1')).status).toBe(401);
    await t.custos.vault.rotate('tickets-key', 'shared-key-2');
    const from = api.seen.length;
    for (let i = 0; i < 5; i++) expect((await call(alpha, '/tickets/1')).status).toBe(200);
    expect(api.seen.slice(from).map((h) => h.authorization)).toEqual(Array(5).fill('Bearer shared-key-2'));
  });

  it('a per-agent binding gives that agent its own upstream identity; others keep the shared one', async () => {
    await t.custos.vault.set('beta-own-key', 'beta-key');
    api.accepted = new Set(['Bearer shared-key-2', 'Bearer beta-key']);
    const betaId = t.agents.get('beta')?.clientId ?? '';
    const binding = await t.custos.bindings.bind({
      secret: 'beta-own-key',
      targetKind: 'api',
      target: 'tickets',
      agentId: betaId,
      inject: 'header',
      field: 'Authorization',
    });
    expect((await call(beta, '/tickets/2')).status).toBe(200);
    expect(api.seen.at(-1)?.authorization).toBe('Bearer beta-key');
    expect((await call(alpha, '/tickets/2')).status).toBe(200);
    expect(api.seen.at(-1)?.authorization).toBe('Bearer shared-key-2');
    const listed = await t.admin<{ bindings: Array<{ id: string }> }>('/api/v1/vault/bindings');
    expect(listed.bindings.map((b) => b.id)).toContain(binding.id);
    expect(JSON.stringify(listed)).not.toContain('beta-key');
  });

  it('a binding whose secret is gone fails the call closed (credential_missing) instead of sending it bare', async () => {
    await t.custos.vault.delete('tickets-key');
    const before = api.seen.length;
    const res = await call(alpha, '/tickets/3');
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('credential_missing');
    expect(api.seen.length).toBe(before);
  });
});

/** Policies reload from the directory watcher: wait until the new set answers. */
async function waitForPolicy(probe: () => Promise<Response>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const res = await probe();
    if (res.status !== 403) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the new policy never took effect');
}
