import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { Approval } from '../src/approvals/index.js';
import type { DecisionChain } from '../src/audit/index.js';
import { connectAgent, textOf } from './support/agents.js';
import { type CliRun, ensureBuilt, runCli } from './support/cli.js';
import { everythingServer, startTestCustos, type TestCustos } from './support/custos.js';

const policies = {
  'analyst.cedar': `
@id("analyst:everything")
permit (principal, action, resource)
when { principal.name == "analyst" };

@id("analyst:no-env")
forbid (principal, action == Action::"call_tool", resource in Server::"everything")
when { principal.name == "analyst" && resource.name == "get-env" };
`,
  'payer.cedar': `
@id("payer:list")
permit (principal, action == Action::"list_tools", resource)
when { principal.name == "payer" };

@id("payer:echo-approved")
@approval("quick")
permit (principal, action == Action::"call_tool", resource in Server::"everything")
when { principal.name == "payer" && resource.name == "echo" };
`,
};

function run(args: string[], cwd: string): Promise<CliRun> {
  return runCli(args, { cwd });
}

function claims(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
}

// Several tests spawn the CLI more than once: under load each run takes seconds.
describe('decision chains of real traffic (custos audit trace, GET /api/v1/audit/trace/:id)', {
  timeout: 180_000,
}, () => {
  let t: TestCustos;
  let taskId: string;
  let payerTask: string;
  let approval: { id: string; callHash: string };
  let configFile: string;
  const traceId = '5b8efff798038103d269b633813fc60c';

  beforeAll(async () => {
    ensureBuilt();
    t = await startTestCustos({
      servers: { everything: everythingServer },
      policies,
      agents: [
        { name: 'analyst', owner: 'dana@example.com' },
        { name: 'payer', owner: 'erin@example.com' },
      ],
      extra: { approvals: { holdSeconds: 0, tiers: { quick: { ttlSeconds: 300 } } } },
    });
    const task = await t.taskToken(await t.token('analyst'), {
      scope: 'server:everything',
      task_purpose: 'answer a question about the environment',
    });
    taskId = String((claims(task).task as { id: string }).id);
    const agent = await connectAgent('sdk2-legacy', `${t.url}/mcp`, task, {
      traceparent: `00-${traceId}-b7ad6b7169203331-01`,
    });
    try {
      const echoed = await agent.callTool(
        'echo',
        { message: 'hello chain' },
        {
          'io.custos/reasoning': 'First I greet the user.',
        },
      );
      expect(textOf(echoed)).toContain('hello chain');
      const refused = await agent.callTool('get-env', {}, { 'io.custos/reasoning': 'Then I read the env.' });
      expect(refused.isError).toBe(true);
    } finally {
      await agent.close();
    }
    // A call that needs a person's approval: pending, approved through the admin API, then retried.
    const payerToken = await t.taskToken(await t.token('payer'), {
      scope: 'server:everything',
      task_purpose: 'pay an invoice',
    });
    payerTask = String((claims(payerToken).task as { id: string }).id);
    const payer = await connectAgent('sdk2-legacy', `${t.url}/mcp`, payerToken);
    try {
      const meta = { 'io.custos/reasoning': 'The invoice is due today.' };
      const pending = await payer.callTool('echo', { message: 'pay 250 to acct-7' }, meta);
      expect(pending.isError).toBe(true);
      const id = String((pending._meta?.['io.custos/approval'] as { id?: string } | undefined)?.id);
      const approved = await t.admin<{ approval: Approval }>(`/api/v1/approvals/${id}/approve`, {
        method: 'POST',
        body: { reason: 'invoice checked' },
      });
      approval = { id, callHash: approved.approval.callHash };
      const paid = await payer.callTool('echo', { message: 'pay 250 to acct-7' }, meta);
      expect(textOf(paid)).toContain('pay 250 to acct-7');
    } finally {
      await payer.close();
    }
    // A configuration file for the CLI naming the same database and data directory.
    configFile = join(t.dataDir, '..', 'custos.yaml');
    writeFileSync(
      configFile,
      stringify({ storage: { url: `sqlite:${t.dbFile}` }, policies: t.policiesDir, servers: {} }),
    );
  }, 120_000);
  afterAll(async () => {
    await t?.close();
  });

  function checkChain(chain: DecisionChain): void {
    const calls = chain.steps.filter((s) => s.call.method === 'tools/call');
    expect(calls.map((s) => s.call.name)).toEqual(['everything.echo', 'everything.get-env']);
    const [echo, env] = calls;
    expect(echo?.reasoning).toBe('First I greet the user.');
    expect(echo?.call.arguments).toBe('{"message":"hello chain"}');
    expect(echo?.decision).toEqual({
      effect: 'allow',
      policyIds: ['analyst:everything'],
      reasons: ['permitted by "analyst:everything"'],
    });
    expect(echo?.outcome.outcome).toBe('executed');
    expect(echo?.outcome.result).toContain('hello chain');
    expect(echo?.owner).toBe('dana@example.com');
    expect(echo?.agentName).toBe('analyst');
    expect(env?.reasoning).toBe('Then I read the env.');
    expect(env?.decision.effect).toBe('deny');
    expect(env?.decision.policyIds).toContain('analyst:no-env');
    expect(env?.outcome).toMatchObject({ outcome: 'denied', errorCode: 'policy_denied', result: null });
    // Log order.
    const seqs = chain.steps.map((s) => s.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  }

  it('the admin API gives the chain of a task, in order, with reasoning, call, decision and result', async () => {
    const chain = await t.admin<DecisionChain>(`/api/v1/audit/trace/${taskId}`);
    expect(chain.id).toBe(taskId);
    expect(chain.truncated).toBe(false);
    expect(chain.steps.every((s) => s.taskId === taskId)).toBe(true);
    checkChain(chain);
  });

  it('the same chain is found by the trace id of the agent traceparent', async () => {
    const chain = await t.admin<DecisionChain>(`/api/v1/audit/trace/${traceId}`);
    checkChain(chain);
    expect(chain.steps.every((s) => s.traceId === traceId)).toBe(true);
  });

  it('answers 404 for an unknown id and 400 for a bad limit', async () => {
    const unknown = await fetch(`${t.url}/api/v1/audit/trace/task_nope`, {
      headers: { authorization: `Bearer ${t.adminToken}` },
    });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe('not_found');
    const bad = await fetch(`${t.url}/api/v1/audit/trace/${taskId}?limit=0`, {
      headers: { authorization: `Bearer ${t.adminToken}` },
    });
    expect(bad.status).toBe(400);
  });

  it('is described in the OpenAPI document', async () => {
    const doc = await t.admin<{ paths: Record<string, unknown> }>('/api/v1/openapi.json');
    expect(doc.paths).toHaveProperty(['/api/v1/audit/trace/{id}']);
  });

  it('custos audit trace renders it for a human through the running server, and --json matches the API', async () => {
    const cwd = join(t.dataDir, '..');
    const text = await run(['--config', configFile, '--data', t.dataDir, 'audit', 'trace', taskId], cwd);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`Decision chain for task ${taskId}`);
    expect(text.stdout).toMatch(
      /reasoning: First I greet the user\.\n\s+call:\s+everything\.echo {2}\(tools\/call\)/,
    );
    expect(text.stdout).toContain('decision:  DENY');
    expect(text.stdout).toMatch(/^1\. \[seq \d+\] \S+ {2}analyst \(agt_\w+\) \(owner dana@example.com\)$/m);
    expect(text.stdout).toContain('analyst:no-env');
    const json = await run(
      ['--config', configFile, '--data', t.dataDir, 'audit', 'trace', taskId, '--json'],
      cwd,
    );
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(await t.admin(`/api/v1/audit/trace/${taskId}`));
    const missing = await run(['--config', configFile, '--data', t.dataDir, 'audit', 'trace', 'nope'], cwd);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no audit events for task or trace nope');
  });

  it('links an approved call to its approval: who approved, when, and the exact call hash approved', async () => {
    const chain = await t.admin<DecisionChain>(`/api/v1/audit/trace/${payerTask}`);
    expect(chain.steps.map((s) => [s.call.method, s.outcome.outcome, s.outcome.errorCode])).toEqual([
      ['tools/call', 'denied', 'approval_pending'],
      ['tools/call', 'executed', null],
    ]);
    const paid = chain.steps[1]!;
    expect(paid.approval).toEqual({
      approvalId: approval.id,
      callHash: approval.callHash,
      callHashMatches: true,
      decisions: [
        expect.objectContaining({
          method: 'approvals/decide',
          decision: 'approved',
          by: 'admin-token',
          callHash: approval.callHash,
        }),
      ],
    });
    const decidedAt = paid.approval!.decisions[0]!.time;
    expect(decidedAt).toBeLessThanOrEqual(paid.time);
    // The leaf of the call commits to the approval id and to the policy set in force.
    const { event } = await t.admin<{ event: { approvalId: string; policySetHash: string } }>(
      `/api/v1/audit/events/${paid.eventId}`,
    );
    expect(event.approvalId).toBe(approval.id);
    expect(event.policySetHash).toMatch(/^[0-9a-f]{64}$/);

    const cwd = join(t.dataDir, '..');
    const text = await run(['--config', configFile, '--data', t.dataDir, 'audit', 'trace', payerTask], cwd);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`approval:  ${approval.id}`);
    expect(text.stdout).toContain(`approved by admin-token at ${new Date(decidedAt).toISOString()}`);
    expect(text.stdout).toContain(`call hash ${approval.callHash} (the hash of this call)`);
  });

  it('says "(erased)" for content erased with custos audit erase-content, and still names the approver', async () => {
    const cwd = join(t.dataDir, '..');
    const erased = await run(
      [
        '--config',
        configFile,
        '--data',
        t.dataDir,
        'audit',
        'erase-content',
        '--subject',
        'erin@example.com',
      ],
      cwd,
    );
    expect(erased.code, erased.stderr).toBe(0);
    const chain = await t.admin<DecisionChain>(`/api/v1/audit/trace/${payerTask}`);
    expect(chain.steps.every((s) => s.erased && s.reasoning === null && s.call.arguments === null)).toBe(
      true,
    );
    expect(chain.steps[1]?.approval?.decisions[0]?.by).toBe('admin-token');
    const { event } = await t.admin<{ event: { erased?: boolean } }>(
      `/api/v1/audit/events/${chain.steps[1]!.eventId}`,
    );
    expect(event.erased).toBe(true);
    const text = await run(['--config', configFile, '--data', t.dataDir, 'audit', 'trace', payerTask], cwd);
    expect(text.stdout).toContain('reasoning: (erased)');
    expect(text.stdout).toMatch(/arguments: \(erased; sha256 [0-9a-f]{16}\.\.\.\)/);
    expect(text.stdout).toContain('result:    (erased)');
    // The other agent's content is untouched.
    const other = await t.admin<DecisionChain>(`/api/v1/audit/trace/${taskId}`);
    expect(other.steps.some((s) => s.erased)).toBe(false);
  });

  it('makes an export bundle through the admin API that verifies offline from its downloaded files', async () => {
    const created = await fetch(`${t.url}/api/v1/audit/exports`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ from: '2020-01-01T00:00:00Z' }),
    });
    expect(created.status).toBe(201);
    const { export: made } = (await created.json()) as {
      export: {
        id: string;
        createdBy: string;
        verification: { ok: boolean };
        files: Array<{ name: string }>;
      };
    };
    expect(made).toMatchObject({ createdBy: 'admin-token', verification: { ok: true } });
    const { exports } = await t.admin<{ exports: Array<{ id: string }> }>('/api/v1/audit/exports');
    expect(exports.map((e) => e.id)).toContain(made.id);
    expect(await t.admin(`/api/v1/audit/exports/${made.id}`)).toEqual({ export: made });
    // Download every file into a new directory, as the console would, and check it with the published key.
    const dir = mkdtempSync(join(tmpdir(), 'custos-downloaded-'));
    for (const { name } of made.files) {
      const file = await fetch(`${t.url}/api/v1/audit/exports/${made.id}/files/${name}`, {
        headers: { authorization: `Bearer ${t.adminToken}` },
      });
      expect(file.status, name).toBe(200);
      writeFileSync(join(dir, name), Buffer.from(await file.arrayBuffer()));
    }
    const cwd = join(t.dataDir, '..');
    const key = (await run(['--config', configFile, '--data', t.dataDir, 'audit', 'key'], cwd)).stdout.trim();
    const verified = await run(['audit', 'verify', dir, '--key', key], tmpdir());
    expect(verified.code, verified.stderr).toBe(0);
    const unknown = await fetch(`${t.url}/api/v1/audit/exports/${made.id}/files/..%2Fcustos.db`, {
      headers: { authorization: `Bearer ${t.adminToken}` },
    });
    expect(unknown.status).toBe(404);
    const bad = await fetch(`${t.url}/api/v1/audit/exports`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ from: 'yesterday' }),
    });
    expect(bad.status).toBe(400);
    const doc = await t.admin<{ paths: Record<string, unknown> }>('/api/v1/openapi.json');
    expect(doc.paths).toHaveProperty(['/api/v1/audit/exports/{id}/files/{name}']);
  });

  it('custos audit trace reads the store directly when no server runs', async () => {
    const before = await t.admin(`/api/v1/audit/trace/${taskId}`);
    await t.custos.close();
    const cwd = join(t.dataDir, '..');
    const json = await run(
      ['--config', configFile, '--data', t.dataDir, 'audit', 'trace', taskId, '--json'],
      cwd,
    );
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(before);
    await t.restart();
  });
});
