import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ApprovalCall, ApprovalService, type Approver } from '../src/approvals/index.js';
import { AuditRecorder, listEvents, TransparencyLog } from '../src/audit/index.js';
import { ManualClock } from '../src/core/clock.js';
import { buildConfig } from '../src/core/config.js';
import { IdGenerator } from '../src/core/ids.js';
import { openStore, type Store } from '../src/store/index.js';
import { describeEachStore } from './support/stores.js';

const owner = 'owner@example.com';
const config = buildConfig(
  {
    approvals: {
      holdSeconds: 0,
      tiers: {
        single: { ttlSeconds: 60 },
        payments: {
          approvers: ['alice@example.com', 'bob@example.com', 'group:finance', owner],
          quorum: 2,
          ttlSeconds: 60,
        },
        lenient: { approvers: [owner], ownerMayApprove: true },
        wait: { holdSeconds: 3, ttlSeconds: 60 },
      },
    },
  },
  '/tmp',
  { env: {} },
).approvals;

const user = (email: string, groups: string[] = []): Approver => ({
  id: `usr_${email}`,
  kind: 'user',
  name: email,
  groups: new Set(groups),
});
const alice = user('alice@example.com');
const bob = user('Bob@Example.com');
const carol = user('carol@example.com', ['finance']);
const mallory = user('mallory@example.com');
const theOwner = user(owner);

let serial = 0;
function call(overrides: Partial<ApprovalCall> = {}): ApprovalCall {
  serial += 1;
  return {
    agent: { id: 'agt_1', name: 'payer', owner },
    task: { id: 'task_1', purpose: 'pay invoices' },
    server: 'bank',
    tool: 'transfer',
    arguments: { amount: serial, to: 'acct' },
    reasoning: 'because',
    policyIds: ['p1'],
    ...overrides,
  };
}

await describeEachStore('approvals', (current) => {
  let service: ApprovalService;
  let other: ApprovalService;
  let secondStore: Store;
  let recorder: AuditRecorder;
  let log: TransparencyLog;
  const clock = new ManualClock();

  beforeAll(async () => {
    const { store, url } = current();
    const ids = new IdGenerator(clock);
    log = await TransparencyLog.open(store, { clock });
    recorder = new AuditRecorder(store, log, ids, { commitDelayMs: 0 });
    const deps = { clock, ids, config, audit: recorder, annotationsOf: () => ({ approval: 'payments' }) };
    service = new ApprovalService({ ...deps, store });
    // A second handle on the same database: another Custos process, as on PostgreSQL scale-out.
    secondStore = await openStore(url);
    other = new ApprovalService({ ...deps, store: secondStore });
  });
  afterAll(async () => {
    await recorder?.close();
    await log?.close();
    await secondStore?.close();
  });

  async function open(tier: string, c = call()): Promise<string> {
    const gate = await service.gate(c, [tier]);
    if (gate.kind !== 'stop' || gate.code !== 'approval_pending')
      throw new Error(`not pending: ${JSON.stringify(gate)}`);
    return gate.approval.id as string;
  }

  it('reads the tier from the determining policies’ annotations', () => {
    expect(service.tiersFor(['p1', 'p2'])).toEqual(['payments', 'payments']);
  });

  it('refuses the agent’s owner (separation of duties) and people outside the tier; the call stays held', async () => {
    const c = call();
    const id = await open('payments', c);
    await expect(service.decide(theOwner, id, { decision: 'approve' })).rejects.toMatchObject({
      code: 'approval_ineligible',
    });
    await expect(service.decide(mallory, id, { decision: 'approve' })).rejects.toMatchObject({
      code: 'approval_ineligible',
    });
    expect((await service.show(id)).quorum.votes).toEqual([]);
    await service.decide(alice, id, { decision: 'approve' });
    await expect(service.decide(theOwner, id, { decision: 'approve' })).rejects.toMatchObject({
      code: 'approval_ineligible',
    });
    expect(await service.gate(c, ['payments'])).toMatchObject({ kind: 'stop', code: 'approval_pending' });
  });

  it('lets the owner approve only where the tier says so', async () => {
    const id = await open('lenient');
    const approval = await service.decide(theOwner, id, { decision: 'approve' });
    expect(approval.status).toBe('approved');
  });

  it('stays pending under quorum, counts one person once (whatever the case of the email), and approves at quorum', async () => {
    const c = call();
    const id = await open('payments', c);
    expect((await service.decide(alice, id, { decision: 'approve' })).status).toBe('pending');
    await expect(
      service.decide(user('ALICE@example.com'), id, { decision: 'approve' }),
    ).rejects.toMatchObject({
      code: 'approval_ineligible',
    });
    const under = await service.gate(c, ['payments']);
    expect(under).toMatchObject({ kind: 'stop', code: 'approval_pending' });
    expect((await service.decide(carol, id, { decision: 'approve' })).status).toBe('approved');
    expect(await service.gate(c, ['payments'])).toEqual({ kind: 'proceed', approvalId: id });
    expect(await service.gate(c, ['payments'])).toMatchObject({ kind: 'stop', code: 'approval_pending' });
  });

  it('reaches the quorum when two approvers vote at the same moment through two processes', async () => {
    const id = await open('payments');
    const [a, b] = await Promise.all([
      service.decide(alice, id, { decision: 'approve' }),
      other.decide(bob, id, { decision: 'approve' }),
    ]);
    expect([a.status, b.status]).toContain('approved');
    expect((await service.show(id)).status).toBe('approved');
  });

  it('lets exactly one of many concurrent identical calls consume an approval, across two processes', async () => {
    const c = call({ task: null });
    const id = await open('single', c);
    await service.decide(alice, id, { decision: 'approve' });
    const gates = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? service : other).gate(c, ['single'])),
    );
    expect(gates.filter((g) => g.kind === 'proceed')).toHaveLength(1);
    expect((await service.show(id)).status).toBe('consumed');
  });

  it('holds identical calls on one request; the approval wakes them and exactly one runs', async () => {
    const c = call();
    const progress: number[] = [];
    const held = [
      service.gate(c, ['wait'], { onProgress: (p) => progress.push(p.progress) }),
      service.gate(c, ['wait']),
    ];
    let pending: string | undefined;
    while (pending === undefined) {
      const open = await service.list({ status: 'pending', agentId: 'agt_1', limit: 500 });
      pending = open.find((a) => a.tier === 'wait')?.id;
      if (pending === undefined) await new Promise((r) => setTimeout(r, 5));
    }
    await service.decide(alice, pending, { decision: 'approve' });
    const gates = await Promise.all(held);
    expect(gates.filter((g) => g.kind === 'proceed')).toEqual([{ kind: 'proceed', approvalId: pending }]);
    const other = gates.find((g) => g.kind === 'stop');
    expect(other).toMatchObject({ kind: 'stop', code: 'approval_pending' });
    expect(other?.kind === 'stop' && other.approval.id).not.toBe(pending);
    expect(progress.length).toBeGreaterThan(0);
  });

  it('a grant never crosses tasks or agents, and needs a tier with a quorum of 1', async () => {
    const c = call();
    const id = await open('single', c);
    await service.decide(alice, id, {
      decision: 'approve',
      grant: { minutes: 5, argumentsPattern: { amount: '[0-9]+' } },
    });
    expect(await service.gate(c, ['single'])).toMatchObject({ kind: 'proceed', approvalId: id });
    const similar = { ...c, arguments: { amount: 123_456, to: 'acct' } };
    expect(await service.gate(similar, ['single'])).toMatchObject({ kind: 'proceed', approvalId: id });
    expect(await service.gate(similar, ['single'])).toMatchObject({ kind: 'proceed', approvalId: id });
    for (const elsewhere of [
      { ...similar, task: { id: 'task_2', purpose: 'pay invoices' } },
      { ...similar, task: null },
      { ...similar, agent: { id: 'agt_2', name: 'other', owner } },
      { ...similar, tool: 'refund' },
      { ...similar, server: 'bank2' },
    ]) {
      expect(await service.gate(elsewhere, ['single'])).toMatchObject({
        kind: 'stop',
        code: 'approval_pending',
      });
    }
    const quorum = await open('payments');
    await expect(
      service.decide(alice, quorum, { decision: 'approve', grant: { minutes: 5 } }),
    ).rejects.toMatchObject({ code: 'bad_request' });
    clock.advance(5 * 60_000 + 1);
    expect(await service.gate(similar, ['single'])).toMatchObject({ kind: 'stop', code: 'approval_pending' });
  });

  it('an approval or grant of a lenient tier never covers a call that now needs a stricter one', async () => {
    const c = call();
    const id = await open('single', c);
    await service.decide(alice, id, { decision: 'approve' });
    // A policy change now asks tier payments for the same call: the approval does not count.
    expect(await service.gate(c, ['payments'])).toMatchObject({ kind: 'stop', code: 'approval_pending' });
    expect(await service.gate(c, ['single'])).toEqual({ kind: 'proceed', approvalId: id });
  });

  it('a decision after expiry changes nothing and runs nothing', async () => {
    const c = call();
    const id = await open('single', c);
    clock.advance(60_001);
    await expect(service.decide(alice, id, { decision: 'approve' })).rejects.toMatchObject({
      code: 'approval_expired',
    });
    expect((await service.show(id)).status).toBe('expired');
    const gate = await service.gate(c, ['single']);
    expect(gate).toMatchObject({ kind: 'stop', code: 'approval_pending' });
    expect(gate.kind === 'stop' && gate.approval.id).not.toBe(id);
  });

  it('an approval expires unused: the retry after expiry does not run', async () => {
    const c = call();
    const id = await open('single', c);
    await service.decide(alice, id, { decision: 'approve' });
    clock.advance(60_001);
    expect(await service.gate(c, ['single'])).toMatchObject({ kind: 'stop', code: 'approval_pending' });
    expect((await service.show(id)).status).toBe('expired');
  });

  it('a denial needs a reason, closes the request, and tells the agent why', async () => {
    const c = call();
    const id = await open('single', c);
    await expect(service.decide(alice, id, { decision: 'deny' })).rejects.toMatchObject({
      code: 'bad_request',
    });
    expect((await service.decide(alice, id, { decision: 'deny', reason: 'wrong account' })).status).toBe(
      'denied',
    );
    await expect(service.decide(bob, id, { decision: 'approve' })).rejects.toMatchObject({
      code: 'approval_closed',
    });
  });

  it('records every decision in the audit log with the approver and the exact call hash', async () => {
    const id = await open('single');
    const approval = await service.decide(bob, id, { decision: 'approve', reason: 'ok' });
    const events = await listEvents(current().store, { agentId: 'agt_1', limit: 1000 });
    const event = events.find((e) => e.method === 'approvals/decide' && e.reasons.includes(`approval ${id}`));
    expect(event?.argsHash).toBe(approval.callHash);
    expect(event?.reasons).toContain('approve by bob@example.com (usr_Bob@Example.com) via api');
  });
});
