import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Approval } from '../src/approvals/index.js';
import { ManualClock } from '../src/core/clock.js';
import {
  type AgentClient,
  approvalOf,
  connectAgent,
  denialCodeOf,
  type ToolResult,
} from './support/agents.js';
import { countedCalls } from './support/counting.js';
import { startTestCustos, type TestCustos } from './support/custos.js';

const countingEntry = resolve('test/support/counting-server.mjs');
const password = 'a long enough password';

/** Calls of "pair" need two distinct approvers; "solo" one, within 60 s. Both answer pending at once. */
const policies = {
  'people.cedar': `
@id("all:list")
permit (principal, action == Action::"list_tools", resource);

@id("pair:transfer")
@approval("pair")
permit (principal, action == Action::"call_tool", resource)
when { principal.name == "pair-bot" };

@id("solo:transfer")
@approval("solo")
permit (principal, action == Action::"call_tool", resource)
when { principal.name == "solo-bot" };
`,
};

const approvalId = (r: ToolResult) => approvalOf(r)?.id;

describe('approvals decided by real people over HTTP (users, roles, API tokens, sessions)', () => {
  let t: TestCustos;
  let countFile: string;
  const clock = new ManualClock(Date.now());
  const tokens = new Map<string, string>();
  const agents = new Map<string, AgentClient>();

  const executions = (to: string) =>
    countedCalls(countFile).filter((call) => call.arguments.to === to).length;

  async function agent(name: string): Promise<AgentClient> {
    let client = agents.get(name);
    if (client === undefined) {
      client = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token(name));
      agents.set(name, client);
    }
    return client;
  }

  /** Decide as a person, with one of their API tokens (or a session cookie). */
  async function decide(
    credential: { token: string } | { cookie: string },
    id: string,
    decision: 'approve' | 'deny' = 'approve',
  ): Promise<{ status: number; body: { approval?: Approval; code?: string | undefined } }> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if ('token' in credential) headers.authorization = `Bearer ${credential.token}`;
    else Object.assign(headers, { cookie: credential.cookie, 'x-custos-csrf': '1', origin: t.url });
    const res = await fetch(`${t.url}/api/v1/approvals/${id}/${decision}`, {
      method: 'POST',
      headers,
      body: JSON.stringify(decision === 'deny' ? { reason: 'no' } : {}),
    });
    const body = (await res.json()) as { approval?: Approval; error?: { code: string } };
    return {
      status: res.status,
      body: { ...(body.approval ? { approval: body.approval } : {}), code: body.error?.code },
    };
  }

  async function tokenOf(email: string, label = 'automation'): Promise<{ token: string }> {
    const created = await t.admin<{ token: string }>(`/api/v1/users/${email}/tokens`, {
      method: 'POST',
      body: { name: label },
    });
    return { token: created.token };
  }

  const status = async (id: string) =>
    (await t.admin<{ approval: Approval }>(`/api/v1/approvals/${id}`)).approval;

  beforeAll(async () => {
    countFile = `${process.env.TMPDIR ?? '/tmp'}/custos-approvals-people-${process.pid}-${Date.now()}.jsonl`;
    t = await startTestCustos({
      servers: { bank: { command: process.execPath, args: [countingEntry], env: { COUNT_FILE: countFile } } },
      policies,
      agents: [
        { name: 'pair-bot', owner: 'olivia@example.com' },
        { name: 'solo-bot', owner: 'olivia@example.com' },
      ],
      extra: {
        approvals: {
          holdSeconds: 0,
          tiers: { pair: { quorum: 2, ttlSeconds: 300 }, solo: { ttlSeconds: 60 } },
        },
        detect: { firstUse: { action: 'off' } },
        tokens: { ttlSeconds: 86_400 },
      },
      clock,
    });
    for (const email of ['olivia@example.com', 'bob@example.com', 'carol@example.com']) {
      await t.admin('/api/v1/users', { method: 'POST', body: { email, roles: ['approver'], password } });
      tokens.set(email, (await tokenOf(email)).token);
    }
  }, 60_000);

  afterAll(async () => {
    for (const client of agents.values()) await client.close().catch(() => {});
    await t?.close();
  });

  it('the agent’s owner cannot approve their own agent’s call, which does not run', async () => {
    const client = await agent('solo-bot');
    const first = await client.callTool('transfer', { amount: 1, to: 'owner-test' });
    const id = approvalId(first) as string;
    const refused = await decide({ token: tokens.get('olivia@example.com') as string }, id);
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('approval_ineligible');
    expect((await status(id)).status).toBe('pending');
    expect(denialCodeOf(await client.callTool('transfer', { amount: 1, to: 'owner-test' }))).toBe(
      'approval_pending',
    );
    expect(executions('owner-test')).toBe(0);
  });

  it('one person never counts twice toward a quorum, whatever credential they use; under quorum nothing runs', async () => {
    const client = await agent('pair-bot');
    const args = { amount: 5_000, to: 'quorum-test' };
    const id = approvalId(await client.callTool('transfer', args)) as string;
    const bob = tokens.get('bob@example.com') as string;
    expect((await decide({ token: bob }, id)).body.approval?.status).toBe('pending');
    // Bob again: with a second API token, then through a console session.
    const second = await decide(await tokenOf('bob@example.com', 'second'), id);
    expect(second.status).toBe(403);
    expect(second.body.code).toBe('approval_ineligible');
    const login = await fetch(`${t.url}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-custos-csrf': '1', origin: t.url },
      body: JSON.stringify({ email: 'BOB@example.com', password }),
    });
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] as string;
    expect(cookie).toMatch(/=/);
    expect((await decide({ cookie }, id)).body.code).toBe('approval_ineligible');
    // The owner cannot make up the quorum either.
    expect((await decide({ token: tokens.get('olivia@example.com') as string }, id)).status).toBe(403);

    // 1 of 2: the retry joins the same request and runs nothing.
    const retry = await client.callTool('transfer', args);
    expect(denialCodeOf(retry)).toBe('approval_pending');
    expect(approvalId(retry)).toBe(id);
    const shown = await status(id);
    expect(shown.status).toBe('pending');
    expect(shown.quorum.votes.map((v) => v.by)).toEqual(['bob@example.com']);
    expect(executions('quorum-test')).toBe(0);

    // A second, different person completes it; the retry runs exactly once.
    expect(
      (await decide({ token: tokens.get('carol@example.com') as string }, id)).body.approval?.status,
    ).toBe('approved');
    expect((await client.callTool('transfer', args)).isError).toBeFalsy();
    expect(denialCodeOf(await client.callTool('transfer', args))).toBe('approval_pending');
    expect(executions('quorum-test')).toBe(1);
  });

  it('a decision after expiry never executes anything', async () => {
    const client = await agent('solo-bot');
    const args = { amount: 7, to: 'expiry-test' };
    const id = approvalId(await client.callTool('transfer', args)) as string;
    clock.advance(61_000);
    const late = await decide({ token: tokens.get('bob@example.com') as string }, id);
    expect(late.status).toBe(409);
    expect(late.body.code).toBe('approval_expired');
    expect((await status(id)).status).toBe('expired');
    const retry = await client.callTool('transfer', args);
    expect(denialCodeOf(retry)).toBe('approval_pending');
    expect(approvalId(retry)).not.toBe(id);
    expect(executions('expiry-test')).toBe(0);
  });

  it('a retry with other arguments does not use up the approval; the exact call then runs once', async () => {
    const client = await agent('solo-bot');
    const args = { amount: 40, to: 'mismatch-test' };
    const id = approvalId(await client.callTool('transfer', args)) as string;
    await decide({ token: tokens.get('carol@example.com') as string }, id);
    for (const other of [
      { amount: 41, to: 'mismatch-test' },
      { amount: 40, to: 'mismatch-test', memo: 'x' },
    ]) {
      const mismatched = await client.callTool('transfer', other);
      expect(denialCodeOf(mismatched)).toBe('approval_pending');
      expect(approvalId(mismatched)).not.toBe(id);
    }
    expect((await status(id)).status).toBe('approved');
    expect(executions('mismatch-test')).toBe(0);
    expect((await client.callTool('transfer', args)).isError).toBeFalsy();
    expect((await status(id)).status).toBe('consumed');
    expect(executions('mismatch-test')).toBe(1);
  });
});
