import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Approval, Grant } from '../src/approvals/index.js';
import type { AuditEvent } from '../src/audit/index.js';
import type { IncidentSummary } from '../src/detect/index.js';
import { type AgentClient, approvalOf, connectAgent, denialCodeOf, textOf } from './support/agents.js';
import { countedCalls } from './support/counting.js';
import { eventually, startTestCustos, type TestCustos } from './support/custos.js';

const countingEntry = resolve('test/support/counting-server.mjs');

const policies = {
  'approvals.cedar': `
@id("all:list")
permit (principal, action == Action::"list_tools", resource);

@id("held:calls")
@approval("held")
permit (principal, action == Action::"call_tool", resource);
`,
};

describe('containment cancels held approvals (real counting upstream, SDK agents over HTTP)', () => {
  let t: TestCustos;
  let countFile: string;
  const clients: AgentClient[] = [];

  const executions = (tool: string) => countedCalls(countFile).filter((call) => call.tool === tool).length;
  const pendingOf = async (agent: string) =>
    (await t.admin<{ approvals: Approval[] }>(`/api/v1/approvals?status=pending&agent=${agent}`)).approvals;
  const eventsOf = async (agentId: string) =>
    (await t.admin<{ events: AuditEvent[] }>(`/api/v1/audit/events?agent=${agentId}&limit=200`)).events;

  beforeAll(async () => {
    countFile = `${process.env.TMPDIR ?? '/tmp'}/custos-contain-approvals-${process.pid}-${Date.now()}.jsonl`;
    t = await startTestCustos({
      servers: { bank: { command: process.execPath, args: [countingEntry], env: { COUNT_FILE: countFile } } },
      policies,
      agents: [{ name: 'payer' }, { name: 'bystander' }],
      extra: {
        approvals: { tiers: { held: { holdSeconds: 30, ttlSeconds: 300 } } },
        detect: { firstUse: { action: 'off' } },
        tokens: { ttlSeconds: 3600 },
      },
    });
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await t?.close();
  });

  it('a kill answers the held call at once with `contained`, cancels its approvals, revokes its grants, and records it all', async () => {
    const payerId = t.agents.get('payer')?.clientId as string;
    const payer = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('payer'));
    const bystander = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('bystander'));
    clients.push(payer, bystander);

    // A grant the payer holds for notes, made the usual way (held call, approved with a grant).
    const noted = payer.callTool('note', { text: 'daily summary' });
    const noteApproval = await eventually(async () => (await pendingOf('payer'))[0], 'the note approval');
    await t.admin(`/api/v1/approvals/${noteApproval.id}/approve`, {
      method: 'POST',
      body: { grant: { minutes: 30 } },
    });
    expect((await noted).isError).toBeFalsy();
    const { grants } = await t.admin<{ grants: Grant[] }>('/api/v1/approvals/grants?agent=payer&active=true');
    expect(grants).toHaveLength(1);

    // Both agents are held on an approval; only the payer is killed.
    const heldCall = payer.callTool('transfer', { amount: 900, to: 'acct-x' });
    const otherCall = bystander.callTool('transfer', { amount: 5, to: 'acct-y' });
    const held = await eventually(async () => (await pendingOf('payer'))[0], 'the payer’s held call');
    const other = await eventually(
      async () => (await pendingOf('bystander'))[0],
      'the bystander’s held call',
    );

    const killed = Date.now();
    const { containment } = await t.admin<{ containment: { id: string; incidentId: string } }>(
      '/api/v1/containments',
      { method: 'POST', body: { scope: 'agent', target: 'payer', reason: 'drill' } },
    );
    const answer = await heldCall;
    // Held for up to 30 s otherwise: the kill answers it at once.
    expect(Date.now() - killed).toBeLessThan(5_000);
    expect(answer.isError).toBe(true);
    expect(denialCodeOf(answer)).toBe('contained');
    expect(approvalOf(answer)).toMatchObject({ id: held.id, status: 'cancelled' });
    expect(textOf(answer)).toContain('[contained]');

    // When the kill returned, the approval was cancelled and the grant revoked.
    const shown = await t.admin<{ approval: Approval }>(`/api/v1/approvals/${held.id}`);
    expect(shown.approval.status).toBe('cancelled');
    expect(shown.approval.reason).toContain(`containment ${containment.id}`);
    const after = await t.admin<{ grants: Grant[] }>('/api/v1/approvals/grants?agent=payer');
    expect(after.grants[0]?.revokedAt).not.toBeNull();
    // A cancelled approval cannot be approved any more; the transfer never ran.
    await expect(
      t.admin(`/api/v1/approvals/${held.id}/approve`, { method: 'POST', body: {} }),
    ).rejects.toThrow(/409.*approval_closed/);
    expect(executions('transfer')).toBe(0);

    // The bystander's request is untouched and still decides its call.
    expect((await pendingOf('bystander')).map((a) => a.id)).toEqual([other.id]);
    await t.admin(`/api/v1/approvals/${other.id}/approve`, { method: 'POST', body: {} });
    expect((await otherCall).isError).toBeFalsy();
    expect(executions('transfer')).toBe(1);

    // The incident lists what the approvals engine did; the audit log has every step.
    const { summary } = await t.admin<{ summary: IncidentSummary }>(
      `/api/v1/incidents/${containment.incidentId}`,
    );
    const cancel = summary.actions.find((a) => a.kind === 'cancel_approvals');
    expect(cancel?.detail).toEqual({ cancelled: [held.id], revokedGrants: [grants[0]?.id] });
    const events = await eventsOf(payerId);
    const methods = events.map((e) => e.method);
    expect(methods).toEqual(
      expect.arrayContaining(['detect/kill', 'incident/open', 'approvals/cancel', 'approvals/revoke-grant']),
    );
    expect(events.find((e) => e.method === 'approvals/cancel')?.argsHash).toBe(held.callHash);
    // Both are linked to their approval, as the admin cancel and revoke are (audit trace).
    expect(events.find((e) => e.method === 'approvals/cancel')?.approvalId).toBe(held.id);
    expect(events.find((e) => e.method === 'approvals/revoke-grant')?.approvalId).toBeTruthy();
    expect(events.find((e) => e.method === 'detect/kill')?.reasons).toEqual(
      expect.arrayContaining(['by admin token', 'reason: drill', `incident ${containment.incidentId}`]),
    );
    // The held call itself is in the log as refused by the containment, and on the incident's
    // timeline (timed, like every event, by its arrival: before the kill's onset).
    const refused = events.filter((e) => e.method === 'tools/call' && e.target === 'transfer');
    expect(refused.map((e) => [e.outcome, e.errorCode])).toEqual([['denied', 'contained']]);
    expect(summary.timeline.find((e) => e.id === refused[0]?.id)).toMatchObject({
      phase: 'before',
      outcome: 'denied',
      errorCode: 'contained',
    });
    expect(summary.timeline.every((e) => e.method === 'tools/call')).toBe(true);
  });

  it('records resume, incident notes and closing in the audit log, with who did it', async () => {
    const payerId = t.agents.get('payer')?.clientId as string;
    const { incidents } = await t.admin<{ incidents: Array<{ id: string; agentId: string }> }>(
      '/api/v1/incidents',
    );
    const incident = incidents.find((i) => i.agentId === payerId) as { id: string };
    await t.admin(`/api/v1/incidents/${incident.id}/notes`, {
      method: 'POST',
      body: { text: 'paged the owner', by: 'admin token' },
    });
    await t.admin('/api/v1/containments/resume', {
      method: 'POST',
      body: { scope: 'agent', target: 'payer', by: 'alice@example.com' },
    });
    await t.admin(`/api/v1/incidents/${incident.id}/close`, {
      method: 'POST',
      body: { note: 'drill over', by: 'admin token' },
    });
    const events = await eventsOf(payerId);
    const resume = events.find((e) => e.method === 'detect/resume');
    expect(resume?.reasons).toEqual(
      expect.arrayContaining(['resume asked by alice@example.com', 'lifted (1 of 1)']),
    );
    expect(events.find((e) => e.method === 'incident/note')?.reasons).toEqual([
      `incident ${incident.id}`,
      'note by admin token',
    ]);
    expect(events.find((e) => e.method === 'incident/close')?.reasons).toEqual([
      `incident ${incident.id}`,
      'closed by admin token',
    ]);
  });

  it('a detector quarantine is recorded as detect/quarantine by the detector', async () => {
    // The loop detector (same call 50 times in a row) quarantines; each call is held, so use a grant.
    const payerId = t.agents.get('payer')?.clientId as string;
    const payer = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('payer'));
    clients.push(payer);
    const first = payer.callTool('note', { text: 'loop' });
    const approval = await eventually(async () => (await pendingOf('payer'))[0], 'the loop approval');
    await t.admin(`/api/v1/approvals/${approval.id}/approve`, {
      method: 'POST',
      body: { grant: { minutes: 10 } },
    });
    await first;
    let contained = false;
    for (let i = 0; i < 60 && !contained; i += 1) {
      contained = denialCodeOf(await payer.callTool('note', { text: 'loop' })) === 'contained';
    }
    expect(contained).toBe(true);
    await t.custos.detect.settle();
    const quarantine = (await eventsOf(payerId)).find((e) => e.method === 'detect/quarantine');
    expect(quarantine?.reasons).toEqual(expect.arrayContaining(['by detector:loop']));
    // The grant used by the loop was revoked by the quarantine.
    const { grants } = await t.admin<{ grants: Grant[] }>('/api/v1/approvals/grants?agent=payer&active=true');
    expect(grants).toEqual([]);
  });
});
