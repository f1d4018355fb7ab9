import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { listEvents } from '../src/audit/index.js';
import { ManualClock } from '../src/core/clock.js';
import type { AgentReach } from '../src/identity/index.js';
import { connectAgent, textOf } from './support/agents.js';
import { ensureBuilt, runCli } from './support/cli.js';
import { eventually, everythingServer, startTestCustos, type TestCustos } from './support/custos.js';

const day = 86_400_000;

const policy = `
@id("worker:list")
permit (principal, action == Action::"list_tools", resource == Server::"everything")
when { principal.name == "worker" };
@id("worker:echo")
permit (principal, action == Action::"call_tool", resource in Server::"everything")
when { principal.name == "worker" && resource.name == "echo" };
@id("worker:sum")
@approval("ops")
permit (principal, action == Action::"call_tool", resource in Server::"everything")
when { principal.name == "worker" && resource.name == "get-sum" };
`;

function custos(args: string[], env: Record<string, string> = {}) {
  return runCli(args, { env: { CUSTOS_LOG_LEVEL: 'silent', ...env } });
}

describe('agent lifecycle end to end (real everything server, SDK agent, CLI)', () => {
  const clock = new ManualClock(Date.now());
  let t: TestCustos;
  let configFile: string;
  const cli = (...args: string[]) => ['--config', configFile, '--data', t.dataDir, ...args];

  beforeAll(async () => {
    ensureBuilt();
    t = await startTestCustos({
      servers: { everything: everythingServer },
      policies: { 'worker.cedar': policy },
      agents: [{ name: 'worker', owner: 'wendy@example.com' }],
      extra: {
        lifecycle: { defaultExpiryDays: 10, maxExpiryDays: 20, sweepSeconds: 1 },
        approvals: { tiers: { ops: { approvers: ['olga@example.com'] } } },
      },
      clock,
    });
    // The same configuration, for the CLI (which then talks to this server through the admin API).
    configFile = join(t.dataDir, '..', 'custos.yaml');
    writeFileSync(
      configFile,
      stringify({
        storage: { url: `sqlite:${t.dbFile}` },
        servers: { everything: everythingServer },
        policies: t.policiesDir,
        lifecycle: { defaultExpiryDays: 10, maxExpiryDays: 20 },
        approvals: { tiers: { ops: { approvers: ['olga@example.com'] } } },
      }),
    );
  }, 240_000);
  afterAll(async () => {
    await t?.close();
  });

  it('onboards configured agents with the default expiry and an agents/onboard event by custos.yaml', async () => {
    const { agent } = await t.admin<{ agent: { id: string; expiresAt: number } }>('/api/v1/agents/worker');
    expect(agent.expiresAt).toBe(clock.now() + 10 * day);
    const events = await listEvents(t.custos.store, { agentId: agent.id, limit: 10 });
    expect(events.map((e) => [e.method, e.reasons[0]])).toEqual([
      ['agents/onboard', 'onboard by custos.yaml'],
    ]);
    await expect(
      t.admin('/api/v1/agents', {
        method: 'POST',
        body: { name: 'too-long', owner: 'a@example.com', purpose: 'p', expiresInDays: 21 },
      }),
    ).rejects.toThrow(/20 days/);
  });

  it('lists the reach over the live catalog through the CLI, and records an attestation', async () => {
    const listed = await custos(cli('review', '--owner', 'wendy@example.com', '--json'));
    expect(listed.code, listed.stderr).toBe(0);
    const [reach] = (JSON.parse(listed.stdout) as { agents: AgentReach[] }).agents;
    expect(reach?.agent.name).toBe('worker');
    expect(reach?.servers).toEqual([
      {
        server: 'everything',
        catalogKnown: true,
        tools: [
          { tool: 'echo', access: 'allowed' },
          { tool: 'get-sum', access: 'approval', tier: 'ops' },
        ],
      },
    ]);
    expect(reach?.lastAttestation).toBeNull();

    const refused = await custos(cli('review', 'attest', 'worker'));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/reviewer/);
    const attested = await custos(
      cli('review', 'attest', 'worker', '--reviewer', 'rita@example.com', '--note', 'Q3', '--json'),
    );
    expect(attested.code, attested.stderr).toBe(0);
    const again = JSON.parse((await custos(cli('review', '--json'))).stdout) as { agents: AgentReach[] };
    expect(again.agents[0]?.lastAttestation).toMatchObject({
      reviewer: 'rita@example.com',
      note: 'Q3',
      actor: 'admin token',
    });
    expect(again.agents[0]?.changedSinceAttestation).toBe(false);
    const events = await listEvents(t.custos.store, { agentId: reach!.agent.id, limit: 10 });
    expect(events.find((e) => e.method === 'review/attest')?.argsHash).toBe(reach?.digest);
  }, 120_000);

  it('lists orphans through the CLI: the owner is no user of this Custos', async () => {
    const result = await custos(cli('agent', 'orphans', '--idle-days', '5', '--json'));
    expect(result.code, result.stderr).toBe(0);
    const { orphans } = JSON.parse(result.stdout) as { orphans: Array<{ name: string; reasons: string[] }> };
    expect(orphans.find((o) => o.name === 'worker')?.reasons).toEqual(['owner_unknown']);
    const bad = await custos(cli('agent', 'orphans', '--idle-days', 'x'));
    expect(bad.code).toBe(2);
  }, 60_000);

  it('stops an agent at its expiry: the token ends with it, the sweep suspends it, renew brings it back', async () => {
    const token = await t.token('worker');
    const agent = await connectAgent('sdk2-legacy', `${t.url}/mcp`, token);
    expect(textOf(await agent.callTool('echo', { message: 'hi' }))).toContain('hi');
    await agent.close();

    // Near expiry, a new token lives only until the agent's expiry.
    const { agent: before } = await t.admin<{ agent: { id: string; expiresAt: number } }>(
      '/api/v1/agents/worker',
    );
    clock.set(before.expiresAt - 60_000);
    const late = await t.token('worker');
    const exp = JSON.parse(Buffer.from(late.split('.')[1] ?? '', 'base64url').toString()) as { exp: number };
    expect(exp.exp).toBe(Math.floor(before.expiresAt / 1000));

    clock.set(before.expiresAt + 1);
    const suspended = await eventually(async () => {
      const { agent: a } = await t.admin<{ agent: { status: string; statusReason: string } }>(
        '/api/v1/agents/worker',
      );
      return a.status === 'suspended' ? a : undefined;
    }, 'the sweep to suspend the expired agent');
    expect(suspended.statusReason).toBe('expired');
    const expired = (await listEvents(t.custos.store, { agentId: before.id, limit: 50 })).filter(
      (e) => e.method === 'agents/expire',
    );
    expect(expired).toHaveLength(1);
    expect(expired[0]?.reasons[0]).toBe('expire by lifecycle sweep');
    await expect(t.token('worker')).rejects.toThrow(/token request failed/);

    const renewed = await custos(cli('agent', 'renew', 'worker', '--days', '5', '--json'));
    expect(renewed.code, renewed.stderr).toBe(0);
    expect(JSON.parse(renewed.stdout).agent).toMatchObject({
      status: 'active',
      expiresAt: clock.now() + 5 * day,
    });
    const tooLong = await custos(cli('agent', 'renew', 'worker', '--days', '21'));
    expect(tooLong.code).toBe(1);
    const fresh = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('worker'));
    expect(textOf(await fresh.callTool('echo', { message: 'back' }))).toContain('back');
    await fresh.close();
  }, 120_000);

  it('offboards through the CLI and the running server: the connected agent is cut off at once', async () => {
    const agent = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('worker'));
    const result = await custos(cli('agent', 'offboard', 'worker', '--json'));
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      changed: true,
      credentialsErased: 1,
      steps: { approvals: { cancelled: [], grantsRevoked: 0 } },
      agent: { status: 'offboarded' },
    });
    await expect(agent.callTool('echo', { message: 'still here?' })).rejects.toThrow();
    await agent.close().catch(() => {});
    const { events } = await t.admin<{ events: Array<{ method: string; reasons: string[] }> }>(
      '/api/v1/audit/events?agent=worker&limit=100',
    );
    expect(events.filter((e) => e.method === 'agents/offboard').map((e) => e.reasons[0])).toEqual([
      'offboard by admin token',
    ]);
  }, 120_000);
});
