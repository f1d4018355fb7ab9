import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Approval, ApprovalService } from '../src/approvals/index.js';
import { AuditRecorder, listEvents, TransparencyLog } from '../src/audit/index.js';
import { systemClock } from '../src/core/clock.js';
import { buildConfig } from '../src/core/config.js';
import { IdGenerator } from '../src/core/ids.js';
import { openStore } from '../src/store/index.js';
import { type AgentClient, approvalOf, connectAgent, type ToolResult } from './support/agents.js';
import { ensureBuilt, runCli } from './support/cli.js';
import { countedCalls } from './support/counting.js';
import { startTestCustos, type TestCustos } from './support/custos.js';

const countingEntry = resolve('test/support/counting-server.mjs');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function custos(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return runCli(args, { cwd: tmpdir(), env });
}

const pendingId = (result: ToolResult) => approvalOf(result)?.id as string;

describe('custos approvals (built CLI against a running server)', () => {
  let t: TestCustos;
  let agent: AgentClient;
  let countFile: string;
  const run = (args: string[], env?: Record<string, string>) =>
    custos(['--data', t.dataDir, 'approvals', ...args], env);
  const executed = () => countedCalls(countFile).length;

  beforeAll(async () => {
    ensureBuilt();
    countFile = join(tmpdir(), `custos-approvals-cli-${process.pid}-${Date.now()}.jsonl`);
    t = await startTestCustos({
      servers: { bank: { command: process.execPath, args: [countingEntry], env: { COUNT_FILE: countFile } } },
      policies: {
        'p.cedar': `permit (principal, action == Action::"list_tools", resource);
@id("cli:transfer")
@approval("cli")
permit (principal, action == Action::"call_tool", resource);`,
      },
      agents: [{ name: 'payer' }],
      extra: { approvals: { holdSeconds: 0, tiers: { cli: {} } } },
    });
    agent = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('payer'));
  }, 120_000);

  afterAll(async () => {
    await agent?.close().catch(() => {});
    await t?.close();
  });

  it('lists, shows and approves a pending call; the retry runs once', async () => {
    const args = { amount: 42, to: 'acct-cli' };
    const id = pendingId(await agent.callTool('transfer', args, { 'io.custos/reasoning': 'rent' }));

    const list = await run(['list', '--status', 'pending', '--json']);
    expect(list.code).toBe(0);
    const listed = (JSON.parse(list.stdout) as { approvals: Approval[] }).approvals;
    expect(listed.map((a) => a.id)).toContain(id);

    const table = await run(['list']);
    expect(table.stdout).toContain(id);

    const show = await run(['show', id, '--json']);
    const shown = (JSON.parse(show.stdout) as { approval: Approval }).approval;
    expect(shown).toMatchObject({ arguments: args, reasoning: 'rent', policyIds: ['cli:transfer'] });
    expect(shown.agent.owner).toBe('payer-owner@example.com');
    expect(shown.recentActivity?.some((e) => e.method === 'tools/call')).toBe(true);
    const text = await run(['show', id]);
    expect(text.stdout).toContain('"to": "acct-cli"');

    const approved = await run(['approve', id, '--reason', 'rent is due', '--json']);
    expect(approved.code).toBe(0);
    expect((JSON.parse(approved.stdout) as { approval: Approval }).approval.quorum.votes[0]).toMatchObject({
      by: 'admin-token',
      channel: 'cli',
    });
    const before = executed();
    expect((await agent.callTool('transfer', args)).isError).toBeFalsy();
    expect(executed()).toBe(before + 1);

    const again = await run(['approve', id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('approval_closed');
  });

  it('denies with a reason the agent then sees; a denial without a reason is bad usage', async () => {
    const id = pendingId(await agent.callTool('transfer', { amount: 1, to: 'nope' }));
    expect((await run(['deny', id])).code).toBe(2);
    const denied = await run(['deny', id, '--reason', 'unknown payee', '--json']);
    expect(denied.code).toBe(0);
    expect((JSON.parse(denied.stdout) as { approval: Approval }).approval).toMatchObject({
      status: 'denied',
      reason: 'unknown payee',
    });
  });

  it('acts as the user of CUSTOS_USER_TOKEN instead of the admin token', async () => {
    const id = pendingId(await agent.callTool('transfer', { amount: 2, to: 'as-user' }));
    const result = await run(['approve', id], { CUSTOS_USER_TOKEN: 'not-a-real-token' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('invalid_token');
  });
});

describe('custos approvals with no server running (on the store, as the admin token)', () => {
  let home: string;
  let dbFile: string;
  let id: string;
  const approvals = { holdSeconds: 0, tiers: { offline: {} } };
  const run = (args: string[], env?: Record<string, string>) =>
    custos(['--config', join(home, 'custos.yaml'), 'approvals', ...args], env);

  beforeAll(async () => {
    ensureBuilt();
    home = mkdtempSync(join(tmpdir(), 'custos-approvals-offline-'));
    mkdirSync(join(home, 'policies'));
    writeFileSync(join(home, 'policies', 'none.cedar'), '');
    dbFile = join(home, 'data', 'custos.db');
    writeFileSync(
      join(home, 'custos.yaml'),
      JSON.stringify({ storage: { url: `sqlite:${dbFile}` }, policies: './policies', approvals }),
    );
    // A request opened the way the gateway opens one, then the "server" goes away.
    const store = await openStore(`sqlite:${dbFile}`);
    const ids = new IdGenerator(systemClock);
    const log = await TransparencyLog.open(store);
    const audit = new AuditRecorder(store, log, ids, { commitDelayMs: 0 });
    const service = new ApprovalService({
      store,
      clock: systemClock,
      ids,
      config: buildConfig({ approvals }, home, { env: {} }).approvals,
      audit,
      annotationsOf: () => undefined,
    });
    const gate = await service.gate(
      {
        agent: { id: 'agt_offline', name: 'offline-bot', owner: 'o@example.com' },
        task: null,
        server: 'bank',
        tool: 'transfer',
        arguments: { amount: 3 },
        reasoning: null,
        policyIds: ['p'],
      },
      ['offline'],
    );
    id = gate.kind === 'stop' ? (gate.approval.id as string) : '';
    await audit.close();
    await log.close();
    await store.close();
  });

  afterAll(() => rmSync(home, { recursive: true, force: true }));

  it('lists and approves on the store, recording the decision in the audit log', async () => {
    const list = await run(['list', '--status', 'pending', '--json']);
    expect(list.code).toBe(0);
    expect((JSON.parse(list.stdout) as { approvals: Approval[] }).approvals.map((a) => a.id)).toEqual([id]);
    const approved = await run(['approve', id, '--json']);
    expect(approved.code).toBe(0);
    expect((JSON.parse(approved.stdout) as { approval: Approval }).approval.status).toBe('approved');
    const store = await openStore(`sqlite:${dbFile}`);
    try {
      const events = await listEvents(store, { agentId: 'agt_offline' });
      expect(events.map((e) => [e.method, e.reasons[1]])).toEqual([
        ['approvals/decide', 'approve by admin-token (admin-token) via cli'],
      ]);
    } finally {
      await store.close();
    }
  });

  it('refuses CUSTOS_USER_TOKEN without a server to check it (bad usage)', async () => {
    const result = await run(['list'], { CUSTOS_USER_TOKEN: 'usr-token' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('CUSTOS_USER_TOKEN needs a running Custos server');
  });
});
