import { resolve } from 'node:path';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Approval } from '../src/approvals/index.js';
import type { AuditEvent } from '../src/audit/index.js';
import { canonicalJson } from '../src/core/canonical.js';
import { ManualClock } from '../src/core/clock.js';
import {
  type AgentClient,
  type ApprovalMeta,
  approvalOf,
  connectAgent,
  denialCodeOf,
  flavours,
  textOf,
} from './support/agents.js';
import { countedCalls } from './support/counting.js';
import { eventually, everythingServer, startTestCustos, type TestCustos } from './support/custos.js';

const countingEntry = resolve('test/support/counting-server.mjs');

/**
 * Agents and the tier their calls need: "held" waits up to 20 s for a decision, "quick" answers
 * "pending" at once, "pair" needs two distinct approvers, "open" needs no approval at all.
 */
const policies = {
  'approvals.cedar': `
@id("all:list")
permit (principal, action == Action::"list_tools", resource);

@id("held:transfer")
@approval("held")
permit (principal, action == Action::"call_tool", resource)
when { principal.name == "held" };

@id("quick:transfer")
@approval("quick")
permit (principal, action == Action::"call_tool", resource)
when { principal.name == "quick" || principal.name == "quick2" };

@id("pair:transfer")
@approval("pair")
permit (principal, action == Action::"call_tool", resource)
when { principal.name == "pair" };

@id("open:all")
permit (principal, action == Action::"call_tool", resource)
when { principal.name == "open" };

@id("reader:resources")
@approval("quick")
permit (principal, action == Action::"read_resource", resource)
when { principal.name == "reader" };

@id("ghost:transfer")
@approval("ghost")
permit (principal, action == Action::"call_tool", resource)
when { principal.name == "ghost" };
`,
};

const approvalsConfig = {
  holdSeconds: 0,
  tiers: {
    held: { holdSeconds: 20, ttlSeconds: 300 },
    quick: { ttlSeconds: 60 },
    pair: { approvers: ['admin-token', 'bob@example.com'], quorum: 2 },
  },
};

describe('human approval in the request path', () => {
  let t: TestCustos;
  let countFile: string;
  const clock = new ManualClock(Date.now());
  const agents = new Map<string, AgentClient>();

  async function agent(name: string): Promise<AgentClient> {
    let client = agents.get(name);
    if (client === undefined) {
      client = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token(name));
      agents.set(name, client);
    }
    return client;
  }

  const executions = () => countedCalls(countFile);

  const approve = (id: string, body: Record<string, unknown> = {}) =>
    t.admin<{ approval: Approval }>(`/api/v1/approvals/${id}/approve`, { method: 'POST', body });

  beforeAll(async () => {
    const dir = `${process.env.TMPDIR ?? '/tmp'}/custos-approvals-${process.pid}-${Date.now()}`;
    countFile = `${dir}.jsonl`;
    t = await startTestCustos({
      servers: {
        bank: { command: process.execPath, args: [countingEntry], env: { COUNT_FILE: countFile } },
        everything: everythingServer,
      },
      policies,
      agents: [
        { name: 'held' },
        { name: 'quick' },
        { name: 'quick2' },
        { name: 'pair' },
        { name: 'open' },
        { name: 'ghost' },
        { name: 'reader' },
      ],
      extra: { approvals: approvalsConfig, tokens: { ttlSeconds: 86_400 } },
      clock,
    });
  }, 60_000);

  afterAll(async () => {
    for (const client of agents.values()) await client.close().catch(() => {});
    await t?.close();
  });

  it('runs a call that no policy asks approval for without one', async () => {
    const before = executions().length;
    const result = await (await agent('open')).callTool('transfer', { amount: 1 });
    expect(result.isError).toBeFalsy();
    expect(executions().length).toBe(before + 1);
  });

  it('holds a call until an approver approves it, then runs it exactly once and records who approved which hash', async () => {
    const client = await agent('held');
    const progress: number[] = [];
    const call = client.callTool(
      'transfer',
      { amount: 250, to: 'acct-7' },
      { 'io.custos/reasoning': 'pay the invoice' },
      { onprogress: (p) => progress.push(p.progress) },
    );
    const pending = await eventually(async () => {
      const { approvals } = await t.admin<{ approvals: Approval[] }>(
        '/api/v1/approvals?status=pending&agent=held',
      );
      return approvals[0];
    }, 'a pending approval for the held call');
    expect(pending.arguments).toEqual({ amount: 250, to: 'acct-7' });
    expect(pending.reasoning).toBe('pay the invoice');
    expect(pending.policyIds).toEqual(['held:transfer']);
    expect(pending.agent.owner).toBe('held-owner@example.com');
    expect(
      executions().filter(
        (e) =>
          e.tool === 'transfer' &&
          canonicalJson(e.arguments) === canonicalJson({ amount: 250, to: 'acct-7' }),
      ),
    ).toHaveLength(0);

    const { approval } = await approve(pending.id, { reason: 'invoice checked' });
    expect(approval.status).toBe('approved');
    const result = await call;
    expect(result.isError).toBeFalsy();
    expect(textOf(result)).toBe('executed transfer');
    expect(progress.length).toBeGreaterThan(0);
    expect(
      executions().filter((e) => canonicalJson(e.arguments) === canonicalJson({ amount: 250, to: 'acct-7' })),
    ).toHaveLength(1);

    const shown = await t.admin<{ approval: Approval }>(`/api/v1/approvals/${pending.id}`);
    expect(shown.approval.status).toBe('consumed');
    expect(shown.approval.quorum.votes).toEqual([
      expect.objectContaining({ by: 'admin-token', decision: 'approve', reason: 'invoice checked' }),
    ]);

    const { events } = await t.admin<{ events: AuditEvent[] }>('/api/v1/audit/events?agent=held&limit=100');
    const decided = events.find((e) => e.method === 'approvals/decide');
    expect(decided?.argsHash).toBe(pending.callHash);
    expect(decided?.reasons).toContain('approve by admin-token (admin-token) via api');
    const executed = events.find((e) => e.method === 'tools/call' && e.outcome === 'executed');
    expect(executed?.reasons).toContain(`approval ${pending.id}`);
  });

  it('answers a held call with the approver’s reason when it is denied', async () => {
    const client = await agent('held');
    const call = client.callTool('transfer', { amount: 9_999, to: 'acct-x' });
    const pending = await eventually(async () => {
      const { approvals } = await t.admin<{ approvals: Approval[] }>(
        '/api/v1/approvals?status=pending&agent=held',
      );
      return approvals[0];
    }, 'a pending approval');
    await t.admin(`/api/v1/approvals/${pending.id}/deny`, {
      method: 'POST',
      body: { reason: 'not our vendor' },
    });
    const result = await call;
    expect(result.isError).toBe(true);
    expect(denialCodeOf(result)).toBe('approval_denied');
    expect(textOf(result)).toContain('not our vendor');
    expect(approvalOf(result)).toMatchObject({ id: pending.id, status: 'denied' });
    expect(
      executions().some((e) => canonicalJson(e.arguments) === canonicalJson({ amount: 9_999, to: 'acct-x' })),
    ).toBe(false);
  });

  it('answers pending with the approval id and when to retry; the approved retry runs once, a replay does not', async () => {
    const client = await agent('quick');
    const args = { amount: 10, to: 'acct-1' };
    const first = await client.callTool('transfer', args);
    expect(first.isError).toBe(true);
    expect(denialCodeOf(first)).toBe('approval_pending');
    const meta = approvalOf(first);
    expect(meta).toMatchObject({ status: 'pending', retryAfterSeconds: 5 });
    const id = meta?.id as string;

    // Retrying before a decision joins the same request and runs nothing.
    const again = await client.callTool('transfer', args);
    expect(approvalOf(again)?.id).toBe(id);

    await approve(id);
    const before = executions().length;
    const mismatched = await client.callTool('transfer', { amount: 11, to: 'acct-1' });
    expect(denialCodeOf(mismatched)).toBe('approval_pending');
    expect(approvalOf(mismatched)?.id).not.toBe(id);
    const otherAgent = await (await agent('quick2')).callTool('transfer', args);
    expect(denialCodeOf(otherAgent)).toBe('approval_pending');
    expect(executions().length).toBe(before);

    const retry = await client.callTool('transfer', { to: 'acct-1', amount: 10 }); // same call, keys reordered
    expect(retry.isError).toBeFalsy();
    expect(executions().length).toBe(before + 1);

    const replay = await client.callTool('transfer', args);
    expect(denialCodeOf(replay)).toBe('approval_pending');
    expect(approvalOf(replay)?.id).not.toBe(id);
    expect(executions().length).toBe(before + 1);
  });

  it('never runs a call whose approval expired, whether it was decided late or used late', async () => {
    const client = await agent('quick');
    const late = await client.callTool('transfer', { amount: 20, to: 'late-decision' });
    const lateId = approvalOf(late)?.id as string;
    const unused = await client.callTool('transfer', { amount: 21, to: 'late-use' });
    const unusedId = approvalOf(unused)?.id as string;
    await approve(unusedId);
    clock.advance(61_000);

    await expect(approve(lateId)).rejects.toThrow(/approval_expired/);
    const before = executions().length;
    const retryLate = await client.callTool('transfer', { amount: 20, to: 'late-decision' });
    expect(denialCodeOf(retryLate)).toBe('approval_pending');
    expect(approvalOf(retryLate)?.id).not.toBe(lateId);
    const retryUnused = await client.callTool('transfer', { amount: 21, to: 'late-use' });
    expect(denialCodeOf(retryUnused)).toBe('approval_pending');
    expect(executions().length).toBe(before);
    const shown = await t.admin<{ approval: Approval }>(`/api/v1/approvals/${unusedId}`);
    expect(shown.approval.status).toBe('expired');
  });

  it('needs the quorum of distinct approvers; one person never counts twice', async () => {
    const client = await agent('pair');
    const args = { amount: 5_000, to: 'acct-board' };
    const first = await client.callTool('transfer', args);
    const id = approvalOf(first)?.id as string;
    const { approval } = await approve(id);
    expect(approval.status).toBe('pending');
    await expect(approve(id)).rejects.toThrow(/approval_ineligible/);
    const before = executions().length;
    const retry = await client.callTool('transfer', args);
    expect(denialCodeOf(retry)).toBe('approval_pending');
    expect(approvalOf(retry)?.id).toBe(id);
    expect(executions().length).toBe(before);
  });

  it.each(flavours)(
    'tells a %s client it is pending, with the approval id, and runs its approved retry',
    async (flavour) => {
      const client = await connectAgent(flavour, `${t.url}/mcp`, await t.token('quick'));
      try {
        const args = { amount: 31, to: `acct-${flavour}` };
        const first = await client.callTool('transfer', args);
        expect(first.isError).toBe(true);
        const meta = approvalOf(first);
        expect(meta).toMatchObject({ status: 'pending', retryAfterSeconds: 5 });
        expect(textOf(first)).toContain(meta?.id as string);
        await approve(meta?.id as string);
        const before = executions().length;
        expect((await client.callTool('transfer', args)).isError).toBeFalsy();
        expect(executions().length).toBe(before + 1);
      } finally {
        await client.close();
      }
    },
  );

  it('holds back a resource read the same way: a JSON-RPC error carrying the approval, then the approved retry', async () => {
    const client = new Client({ name: 'reader', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${t.url}/mcp/everything`), {
        requestInit: { headers: { authorization: `Bearer ${await t.token('reader')}` } },
      }),
    );
    const { resources } = await client.listResources();
    const uri = resources[0]?.uri as string;
    const read = async (): Promise<{
      result?: unknown;
      error?: { code: number; data?: { code: string; approval?: ApprovalMeta } };
    }> => {
      try {
        return { result: await client.readResource({ uri }) };
      } catch (error) {
        return { error: error as { code: number; data?: { code: string; approval?: ApprovalMeta } } };
      }
    };
    const first = await read();
    expect(first.error?.data?.code).toBe('approval_pending');
    const id = first.error?.data?.approval?.id as string;
    expect(id).toMatch(/^apr_/);
    await approve(id);
    const second = await read();
    expect(second.error).toBeUndefined();
    expect(second.result).toBeDefined();
    expect((await read()).error?.data?.code).toBe('approval_pending');
    await client.close();
  });

  it('fails closed when a policy names a tier that is not configured', async () => {
    const before = executions().length;
    const result = await (await agent('ghost')).callTool('transfer', { amount: 1 });
    expect(denialCodeOf(result)).toBe('approval_misconfigured');
    expect(executions().length).toBe(before);
  });

  it('a grant covers this agent, task and tool with matching arguments for its minutes, and nothing else', async () => {
    const client = await agent('quick');
    const first = await client.callTool('note', { text: 'hello', channel: 'ops' });
    const id = approvalOf(first)?.id as string;
    await expect(approve(id, { grant: { minutes: 10, argumentsPattern: { text: '(' } } })).rejects.toThrow(
      /bad_request/,
    );
    await approve(id, { grant: { minutes: 10, argumentsPattern: { text: '[a-z ]{1,40}' } } });
    const before = executions().length;
    expect((await client.callTool('note', { text: 'hello', channel: 'ops' })).isError).toBeFalsy();
    expect((await client.callTool('note', { text: 'another note', channel: 'ops' })).isError).toBeFalsy();
    expect(executions().length).toBe(before + 2);
    // Outside the pattern, another unnamed argument value, an extra argument, another agent.
    expect(denialCodeOf(await client.callTool('note', { text: 'UPPER', channel: 'ops' }))).toBe(
      'approval_pending',
    );
    expect(denialCodeOf(await client.callTool('note', { text: 'hello', channel: 'all' }))).toBe(
      'approval_pending',
    );
    expect(denialCodeOf(await client.callTool('note', { text: 'hello', channel: 'ops', x: 1 }))).toBe(
      'approval_pending',
    );
    expect(
      denialCodeOf(await (await agent('quick2')).callTool('note', { text: 'hello', channel: 'ops' })),
    ).toBe('approval_pending');
    expect(executions().length).toBe(before + 2);
    clock.advance(10 * 60_000 + 1);
    expect(denialCodeOf(await client.callTool('note', { text: 'hello', channel: 'ops' }))).toBe(
      'approval_pending',
    );
    expect(executions().length).toBe(before + 2);
  });

  it('lists with empty filters as no filter, and refuses an unknown status', async () => {
    const all = await t.admin<{ approvals: Approval[] }>('/api/v1/approvals?status=&agent=&limit=');
    expect(all.approvals.length).toBeGreaterThan(0);
    await expect(t.admin('/api/v1/approvals?status=maybe')).rejects.toThrow(/400.*bad_request/);
    await expect(t.admin('/api/v1/approvals/apr_nope')).rejects.toThrow(/404/);
    await expect(
      t.admin('/api/v1/approvals/apr_nope/approve', { method: 'POST', body: { surprise: true } }),
    ).rejects.toThrow(/400/);
  });

  it('lists grants in force, and a revoked grant lets nothing more through', async () => {
    const client = await agent('quick');
    const args = { text: 'revocable', channel: 'ops' };
    const id = approvalOf(await client.callTool('note', args))?.id as string;
    await approve(id, { grant: { minutes: 30 } });
    const before = executions().length;
    expect((await client.callTool('note', args)).isError).toBeFalsy();
    expect((await client.callTool('note', args)).isError).toBeFalsy();
    const { grants } = await t.admin<{ grants: Array<{ id: string; approvalId: string }> }>(
      '/api/v1/approvals/grants?agent=quick&active=true',
    );
    const grant = grants.find((g) => g.approvalId === id);
    expect(grant).toBeDefined();
    await t.admin(`/api/v1/approvals/grants/${grant?.id}/revoke`, { method: 'POST', body: {} });
    expect(denialCodeOf(await client.callTool('note', args))).toBe('approval_pending');
    expect(executions().length).toBe(before + 2);
    await expect(
      t.admin(`/api/v1/approvals/grants/${grant?.id}/revoke`, { method: 'POST', body: {} }),
    ).rejects.toThrow(/409/);
  });

  it('reports per approver how many decisions per hour and how fast', async () => {
    const { approvers } = await t.admin<{
      approvers: Array<{
        approver: string;
        perHour: Array<{ hour: string; count: number }>;
        medianSeconds: number;
      }>;
    }>('/api/v1/approvals/stats');
    const admin = approvers.find((a) => a.approver === 'admin-token');
    expect(admin?.perHour.reduce((n, h) => n + h.count, 0)).toBeGreaterThanOrEqual(5);
    expect(typeof admin?.medianSeconds).toBe('number');
  });

  it('keeps a pending approval across a restart; the approved retry runs once', async () => {
    const client = await agent('quick');
    const args = { amount: 77, to: 'after-restart' };
    const id = approvalOf(await client.callTool('transfer', args))?.id as string;
    for (const c of agents.values()) await c.close().catch(() => {});
    agents.clear();
    await t.restart();
    await approve(id);
    const before = executions().length;
    const fresh = await agent('quick');
    expect((await fresh.callTool('transfer', args)).isError).toBeFalsy();
    expect(denialCodeOf(await fresh.callTool('transfer', args))).toBe('approval_pending');
    expect(executions().length).toBe(before + 1);
  }, 60_000);
});
