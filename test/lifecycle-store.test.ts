import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ApprovalService } from '../src/approvals/index.js';
import {
  type AuditEventInput,
  AuditRecorder,
  listEvents,
  TransparencyLog,
  verifyLive,
} from '../src/audit/index.js';
import { ManualClock } from '../src/core/clock.js';
import { buildConfig } from '../src/core/config.js';
import { IdGenerator } from '../src/core/ids.js';
import {
  AccessReview,
  type AgentService,
  createIdentityService,
  findOrphans,
  type IdentityService,
  UserService,
} from '../src/identity/index.js';
import { offboardSteps } from '../src/offboard-steps.js';
import { PolicyStore } from '../src/policy/index.js';
import { bindingsReach, reachSources } from '../src/server/admin-lifecycle.js';
import { BindingService, Vault } from '../src/vault/index.js';
import { describeEachStore } from './support/stores.js';

const day = 86_400_000;

/** An allowed bank.balance call by `agent` at `time`, as the gateway records it. */
function balanceCall(agent: { id: string; owner: string }, time: number): AuditEventInput {
  return {
    time,
    agentId: agent.id,
    owner: agent.owner,
    taskId: null,
    method: 'tools/call',
    server: 'bank',
    target: 'balance',
    argsHash: null,
    effect: 'allow',
    policyIds: [],
    reasons: [],
    outcome: 'executed',
    errorCode: null,
    latencyUs: 1,
    traceId: null,
  };
}
const approvalsConfig = buildConfig(
  {
    approvals: {
      holdSeconds: 0,
      tiers: { payments: { approvers: ['alice@example.com'], ttlSeconds: 3600 } },
    },
  },
  '/tmp',
  { env: {} },
).approvals;

const policies = PolicyStore.fromSources({
  files: [
    {
      name: 'review.cedar',
      text: `
@id("list")
permit (principal, action == Action::"list_tools", resource == Server::"bank") when { principal.name like "pay*" };
@id("read")
permit (principal, action == Action::"call_tool", resource in Server::"bank")
when { principal.name like "pay*" && resource.name == "balance" };
@id("transfer")
@approval("payments")
permit (principal, action == Action::"call_tool", resource in Server::"bank")
when { principal.name like "pay*" && resource.name == "transfer" };
@id("small-refunds")
permit (principal, action == Action::"call_tool", resource in Server::"bank")
when { principal.name like "pay*" && resource.name == "refund" && context.arguments has path && context.arguments.path like "/refunds/*" };
`,
    },
  ],
});

await describeEachStore('lifecycle', (current) => {
  const clock = new ManualClock(Date.parse('2026-03-01T00:00:00Z'));
  let identity: IdentityService;
  let agents: AgentService;
  let recorder: AuditRecorder;
  let log: TransparencyLog;
  let approvals: ApprovalService;
  let ids: IdGenerator;
  let bindings: BindingService;

  beforeAll(async () => {
    const { store } = current();
    ids = new IdGenerator(clock);
    log = await TransparencyLog.open(store, { clock });
    recorder = new AuditRecorder(store, log, ids, { commitDelayMs: 0 });
    identity = await createIdentityService({
      store,
      clock,
      ids,
      issuer: 'http://127.0.0.1:7400',
      audience: 'http://127.0.0.1:7400/mcp',
      audit: recorder,
      expiry: { defaultExpiryDays: 90, maxExpiryDays: 365 },
      // The steps the server and the CLI register: approvals, then the vault's per-agent bindings.
      offboardSteps: offboardSteps(),
    });
    agents = identity.agents;
    const vault = await Vault.open({
      store,
      clock,
      dataDir: mkdtempSync(join(tmpdir(), 'custos-lc-vault-')),
    });
    await vault.set('bank-token', 'sentinel-value-never-shown');
    await vault.set('shared-token', 'another-value');
    bindings = new BindingService({ store, vault, clock, ids });
    await bindings.bind({
      secret: 'shared-token',
      targetKind: 'server',
      target: 'bank',
      inject: 'header',
      field: 'X-Shared',
    });
    approvals = new ApprovalService({
      store,
      clock,
      ids,
      config: approvalsConfig,
      audit: recorder,
      annotationsOf: () => ({ approval: 'payments' }),
    });
  });
  afterAll(async () => {
    await recorder?.close();
    await log?.close();
  });

  const eventsOf = async (agentId: string) =>
    (await listEvents(current().store, { agentId, limit: 1000 })).map((e) => e.method).sort();

  it('onboards with the default expiry, refuses one past the maximum, and records agents/onboard', async () => {
    const added = await agents.add({ name: 'pay-default', owner: 'alice@example.com', purpose: 'pays' });
    expect(added.agent.expiresAt).toBe(clock.now() + 90 * day);
    const short = await agents.add({
      name: 'pay-short',
      owner: 'alice@example.com',
      purpose: 'pays',
      expiresInDays: 5,
    });
    expect(short.agent.expiresAt).toBe(clock.now() + 5 * day);
    await expect(
      agents.add({ name: 'pay-long', owner: 'alice@example.com', purpose: 'pays', expiresInDays: 366 }),
    ).rejects.toMatchObject({ code: 'bad_request', message: expect.stringContaining('365 days') });
    expect(await agents.get('pay-long')).toBeUndefined();
    expect(await eventsOf(added.agent.id)).toEqual(['agents/onboard']);
    const [event] = await listEvents(current().store, { agentId: added.agent.id, limit: 1 });
    expect(event).toMatchObject({
      method: 'agents/onboard',
      target: 'pay-default',
      owner: 'alice@example.com',
    });
  });

  it('caps an access token at the agent’s expiry', async () => {
    const { agent } = await agents.add({
      name: 'pay-token',
      owner: 'alice@example.com',
      purpose: 'pays',
      expiresAt: clock.now() + 120_000,
    });
    const view = identity.directory.get(agent.id)!;
    const issued = await identity.tokens.issueAccessToken(view, { ttlSeconds: 600 });
    expect(issued.expiresAt).toBe(agent.expiresAt);
    expect(issued.expiresIn).toBe(120);
  });

  it('suspends agents past expiry in the sweep with agents/expire; renew lifts it, a manual suspension stays', async () => {
    const a = (
      await agents.add({ name: 'pay-exp', owner: 'alice@example.com', purpose: 'p', expiresInDays: 1 })
    ).agent;
    const b = (
      await agents.add({ name: 'pay-exp2', owner: 'alice@example.com', purpose: 'p', expiresInDays: 1 })
    ).agent;
    await agents.suspend(b.id, { by: 'carol@example.com' });
    expect(await agents.expireDue()).toEqual([]);
    clock.advance(day + 1);
    const expired = await agents.expireDue();
    expect(expired.map((x) => x.name)).toContain('pay-exp');
    expect(expired.map((x) => x.name)).not.toContain('pay-exp2');
    const after = await agents.require(a.id);
    expect(after).toMatchObject({ status: 'suspended', statusReason: 'expired', epoch: a.epoch + 1 });
    expect(identity.directory.get(a.id)?.status).toBe('suspended');
    // A second sweep finds nothing new for it.
    expect((await agents.expireDue()).map((x) => x.name)).not.toContain('pay-exp');
    await expect(agents.resume(a.id)).rejects.toMatchObject({ code: 'agent_expired' });

    const renewed = await agents.renew(a.id, { days: 30, by: 'alice@example.com' });
    expect(renewed).toMatchObject({ status: 'active', active: true, expiresAt: clock.now() + 30 * day });
    await expect(agents.renew(a.id, { days: 400 })).rejects.toMatchObject({ code: 'bad_request' });
    const stillManual = await agents.renew(b.id, { days: 30 });
    expect(stillManual).toMatchObject({ status: 'suspended', statusReason: 'manual' });
    expect(await eventsOf(a.id)).toEqual(['agents/expire', 'agents/onboard', 'agents/renew']);
    expect(await eventsOf(b.id)).toEqual(['agents/onboard', 'agents/renew', 'agents/suspend']);
    await agents.resume(b.id);
    expect(await eventsOf(b.id)).toContain('agents/resume');
  });

  it('offboards in one transaction: epoch, credentials erased, approvals cancelled, grants revoked, one event', async () => {
    const { store } = current();
    const { agent } = await agents.add({ name: 'pay-off', owner: 'alice@example.com', purpose: 'p' });
    await agents.addCredential(agent.id, { kind: 'client_secret' });
    await bindings.bind({
      secret: 'bank-token',
      targetKind: 'server',
      target: 'bank',
      agentId: agent.id,
      inject: 'header',
      field: 'Authorization',
    });
    const gate = await approvals.gate(
      {
        agent: { id: agent.id, name: agent.name, owner: agent.owner },
        task: null,
        server: 'bank',
        tool: 'transfer',
        arguments: { amount: 5 },
        reasoning: null,
        policyIds: ['transfer'],
      },
      ['payments'],
    );
    expect(gate).toMatchObject({ kind: 'stop', code: 'approval_pending' });
    const before = await store.db
      .selectFrom('agent_credentials')
      .select('id')
      .where('agent_id', '=', agent.id)
      .execute();
    expect(before).toHaveLength(2);

    const report = await agents.offboardWithReport(agent.name, { by: 'alice@example.com' });
    expect(report).toMatchObject({ changed: true, credentialsErased: 2 });
    expect(report.agent).toMatchObject({ status: 'offboarded', epoch: agent.epoch + 1 });
    expect((report.steps.approvals as { cancelled: string[] }).cancelled).toHaveLength(1);
    expect(report.steps.vault).toEqual({ bindingsDeleted: 1 });
    expect(await bindings.list({ agentId: agent.id })).toEqual([]);
    // Shared bindings stay.
    expect((await bindings.list({})).map((b) => b.secret)).toEqual(['shared-token']);
    expect(
      await store.db
        .selectFrom('agent_credentials')
        .select(['secret_hash', 'public_jwk'])
        .where('agent_id', '=', agent.id)
        .where((eb) =>
          eb.or([
            eb('secret_hash', 'is not', null),
            eb('public_jwk', 'is not', null),
            eb('revoked_at', 'is', null),
          ]),
        )
        .execute(),
    ).toEqual([]);
    const open = await store.db
      .selectFrom('approvals')
      .select('status')
      .where('agent_id', '=', agent.id)
      .execute();
    expect(open.map((r) => r.status)).toEqual(['cancelled']);
    const events = await listEvents(store, { agentId: agent.id, limit: 100 });
    const offboard = events.filter((e) => e.method === 'agents/offboard');
    expect(offboard).toHaveLength(1);
    expect(offboard[0]?.reasons[0]).toBe('offboard by alice@example.com');
    // Twice is a no-op: no second event.
    expect((await agents.offboardWithReport(agent.id)).changed).toBe(false);
    expect(
      (await listEvents(store, { agentId: agent.id, limit: 100 })).filter(
        (e) => e.method === 'agents/offboard',
      ),
    ).toHaveLength(1);
    expect(await verifyLive(store, log)).toMatchObject({ ok: true });
  });

  it('rolls all of it back, audit event included, when a step fails; the log stays whole', async () => {
    const { store } = current();
    const { agent } = await agents.add({ name: 'pay-fail', owner: 'alice@example.com', purpose: 'p' });
    await bindings.bind({
      secret: 'bank-token',
      targetKind: 'server',
      target: 'bank',
      agentId: agent.id,
      inject: 'header',
      field: 'Authorization',
    });
    const failing = await createIdentityService({
      store,
      clock,
      ids,
      issuer: 'http://127.0.0.1:7400',
      audience: 'http://127.0.0.1:7400/mcp',
      audit: recorder,
      offboardSteps: [
        ...offboardSteps(),
        {
          name: 'broken',
          run: async () => {
            throw new Error('the vault is unreachable');
          },
        },
      ],
    });
    const seqBefore = log.nextSeq;
    await expect(failing.agents.offboard(agent.id)).rejects.toThrow('the vault is unreachable');
    expect(log.nextSeq).toBe(seqBefore);
    expect(await agents.require(agent.id)).toMatchObject({ status: 'active', epoch: 0 });
    expect(
      await store.db.selectFrom('agent_credentials').select('id').where('agent_id', '=', agent.id).execute(),
    ).toHaveLength(1);
    expect(await eventsOf(agent.id)).toEqual(['agents/onboard']);
    expect(await bindings.list({ agentId: agent.id })).toHaveLength(1);
    // The next event takes the next seq: no gap, no duplicate.
    const next = await recorder.record(balanceCall(agent, clock.now()));
    expect(next.seq).toBe(seqBefore);
    expect(await verifyLive(store, log)).toMatchObject({ ok: true });
  });

  it('keeps group commits and lifecycle transactions in one gapless order under concurrency', async () => {
    const { store } = current();
    const names = Array.from({ length: 8 }, (_, i) => `pay-conc-${i}`);
    const calls = names.flatMap((name, i) => [
      agents.add({ name, owner: 'alice@example.com', purpose: 'p' }),
      recorder.record({
        time: clock.now(),
        agentId: null,
        owner: null,
        taskId: null,
        method: 'test/noise',
        server: null,
        target: String(i),
        argsHash: null,
        effect: 'allow',
        policyIds: [],
        reasons: [],
        outcome: 'executed',
        errorCode: null,
        latencyUs: 0,
        traceId: null,
      }),
    ]);
    await Promise.all(calls);
    const rows = await store.db.selectFrom('audit_events').select('seq').orderBy('seq').execute();
    rows.forEach((r, i) => {
      expect(Number(r.seq)).toBe(i + 1);
    });
    expect(await verifyLive(store, log)).toMatchObject({ ok: true });
  });

  it('lists orphans: owner unknown or disabled, expired, idle', async () => {
    const { store } = current();
    const users = new UserService({ store, clock, ids });
    await users.add({ email: 'alice@example.com', name: 'Alice', roles: ['admin'] });
    const gone = await users.add({ email: 'gone@example.com', name: 'Gone', roles: ['approver'] });
    await users.disable(gone.id);
    await agents.add({ name: 'orph-unknown', owner: 'nobody@example.com', purpose: 'p' });
    await agents.add({ name: 'orph-disabled', owner: 'gone@example.com', purpose: 'p' });
    const busy = (await agents.add({ name: 'orph-busy', owner: 'alice@example.com', purpose: 'p' })).agent;
    const idle = (await agents.add({ name: 'orph-idle', owner: 'alice@example.com', purpose: 'p' })).agent;
    clock.advance(10 * day);
    await recorder.record(balanceCall(busy, clock.now()));
    // A person's lifecycle change is not the agent's activity.
    await agents.renew(idle.id, { days: 90 });
    const orphans = await findOrphans(store, clock, { idleDays: 7 });
    const byName = new Map(orphans.map((o) => [o.name, o.reasons]));
    expect(byName.get('orph-unknown')).toEqual(expect.arrayContaining(['owner_unknown', 'idle']));
    expect(byName.get('orph-disabled')).toEqual(expect.arrayContaining(['owner_disabled']));
    expect(byName.get('orph-idle')).toEqual(['idle']);
    expect(byName.has('orph-busy')).toBe(false);
    expect(byName.has('pay-off')).toBe(false); // offboarded agents are not orphans
    const withLongerIdle = await findOrphans(store, clock, { idleDays: 30 });
    expect(withLongerIdle.find((o) => o.name === 'orph-idle')).toBeUndefined();
    await expect(findOrphans(store, clock, { idleDays: 0 })).rejects.toMatchObject({ code: 'bad_request' });
  });

  it('reviews reach over a catalog with the real policy, and records attestations with review/attest', async () => {
    const { store } = current();
    let catalog = [{ name: 'balance' }, { name: 'transfer' }, { name: 'refund' }, { name: 'delete_account' }];
    const review = new AccessReview({
      store,
      clock,
      ids,
      agents,
      audit: recorder,
      sources: reachSources({
        policy: policies,
        clock,
        servers: () => [
          { name: 'bank', tools: catalog },
          { name: 'down', tools: null },
        ],
        bindings: bindingsReach((filter) => bindings.list(filter)),
      }),
    });
    await agents.add({ name: 'pay-review', owner: 'bob@example.com', purpose: 'p' });
    await agents.add({ name: 'other-review', owner: 'bob@example.com', purpose: 'p' });
    const reach = await review.list({ owner: 'bob@example.com' });
    const pay = reach.find((r) => r.agent.name === 'pay-review')!;
    await bindings.bind({
      secret: 'bank-token',
      targetKind: 'server',
      target: 'bank',
      agentId: pay.agent.id,
      inject: 'header',
      field: 'Authorization',
    });
    expect(pay.servers).toEqual([
      {
        server: 'bank',
        catalogKnown: true,
        tools: [
          { tool: 'balance', access: 'allowed' },
          { tool: 'refund', access: 'conditional' },
          { tool: 'transfer', access: 'approval', tier: 'payments' },
        ],
      },
      { server: 'down', catalogKnown: false, tools: [] },
    ]);
    // Bound after the listing above: the reach now includes it, the shared one of a reached server too.
    const withBinding = await review.reach('pay-review');
    expect(withBinding.bindings).toEqual([
      { secret: 'bank-token', targetKind: 'server', target: 'bank', scope: 'agent' },
      { secret: 'shared-token', targetKind: 'server', target: 'bank', scope: 'shared' },
    ]);
    expect(withBinding.digest).not.toBe(pay.digest);
    expect(JSON.stringify(withBinding)).not.toContain('sentinel-value-never-shown');
    const other = reach.find((r) => r.agent.name === 'other-review')!;
    expect(other.servers.filter((s) => s.catalogKnown)).toEqual([]);
    // No reach to bank: the shared binding of bank is not its business.
    expect(other.bindings).toEqual([]);

    await expect(
      review.attest(['pay-review'], { reviewer: 'not an email', actor: 'admin token' }),
    ).rejects.toMatchObject({
      code: 'bad_request',
    });
    const [attested] = await review.attest(['pay-review'], {
      reviewer: 'Carol@Example.com',
      actor: 'admin token',
      note: 'quarterly',
    });
    expect(attested?.lastAttestation).toMatchObject({ reviewer: 'carol@example.com', note: 'quarterly' });
    expect((await review.reach('pay-review')).changedSinceAttestation).toBe(false);
    const event = (await listEvents(store, { agentId: pay.agent.id, limit: 100 })).find(
      (e) => e.method === 'review/attest',
    );
    expect(event?.argsHash).toBe(withBinding.digest);
    // A new tool in the catalog changes the reach: the attestation no longer covers it.
    catalog = [...catalog, { name: 'balance_history' }];
    expect((await review.reach('pay-review')).changedSinceAttestation).toBe(false);
    catalog = catalog.filter((t) => t.name !== 'transfer');
    expect((await review.reach('pay-review')).changedSinceAttestation).toBe(true);
    expect(await review.history('pay-review')).toHaveLength(1);
    expect(await verifyLive(store, log)).toMatchObject({ ok: true });
  });
});
