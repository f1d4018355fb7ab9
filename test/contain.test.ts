import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../src/audit/index.js';
import { connectAgent, flavours, type ToolResult } from './support/agents.js';
import { eventually, everythingServer, startTestCustos, type TestCustos } from './support/custos.js';

const owner = 'ops@example.com';
const slowLog = join(mkdtempSync(join(tmpdir(), 'custos-slow-')), 'cancelled.log');
const policies = {
  'ops.cedar': `@id("ops:all")\npermit (principal in Owner::"${owner}", action, resource);\n`,
};

function textOf(result: ToolResult): string {
  return (result.content ?? []).map((c) => c.text ?? '').join('');
}

describe('containment in the request path (real everything server, SDK agents)', () => {
  let t: TestCustos;
  beforeAll(async () => {
    t = await startTestCustos({
      servers: {
        everything: everythingServer,
        slow: {
          command: process.execPath,
          args: [resolve('test/support/slow-server.mjs')],
          env: { SLOW_SERVER_LOG: slowLog },
        },
      },
      policies,
      agents: flavours.map((f) => ({ name: `worker-${f}`, owner })),
      extra: { detect: { firstUse: { action: 'off' } } },
    });
  });
  afterAll(async () => {
    await t?.close();
  });

  const kill = (body: Record<string, unknown>) =>
    t.admin<{ containment: { id: string; incidentId: string } }>('/api/v1/containments', {
      method: 'POST',
      body,
    });
  const resume = (body: Record<string, unknown>) =>
    t.admin<{ lifted: boolean }>('/api/v1/containments/resume', { method: 'POST', body });
  const events = async (agentId: string) =>
    (await t.admin<{ events: AuditEvent[] }>(`/api/v1/audit/events?agent=${agentId}&limit=100`)).events;

  describe.each(flavours)('an agent on %s', (flavour) => {
    const name = `worker-${flavour}`;

    it('quarantine cancels its call in flight, refuses its very next call, and a human resumes it', async () => {
      const agentId = t.agents.get(name)?.clientId as string;
      const agent = await connectAgent(flavour, `${t.url}/mcp/everything`, await t.token(name));
      try {
        const started = Date.now();
        const slow = agent.callTool('trigger-long-running-operation', { duration: 30, steps: 30 }).then(
          (r) => ({ ok: true, r }),
          (e: Error) => ({ ok: false, e }),
        );
        // The call is in flight: past the contain stage, not finished.
        await eventually(
          async () => (await t.custos.detect.snapshot(agentId)).inFlight === 1,
          'the call to be in flight',
        );
        await kill({ scope: 'agent', target: name, reason: 'drill' });
        const ended = await slow;
        expect(Date.now() - started).toBeLessThan(15_000);
        const refusedInFlight = ended.ok
          ? textOf((ended as { r: ToolResult }).r)
          : (ended as { e: Error }).e.message;
        expect(refusedInFlight).toMatch(/quarantined|cancel|contained/i);
        const cancelled = await eventually(
          async () => (await events(agentId)).find((e) => e.target === 'trigger-long-running-operation'),
          'the cancelled call’s audit event',
        );
        expect(cancelled).toMatchObject({ outcome: 'failed', errorCode: 'contained' });
      } finally {
        await agent.close().catch(() => {});
      }
      // Its old token is dead (epoch bumped); with a new one, the very next call is refused and recorded.
      const again = await connectAgent(flavour, `${t.url}/mcp/everything`, await t.token(name));
      try {
        const refused = await again.callTool('echo', { message: 'let me out' });
        expect(refused.isError).toBe(true);
        expect(textOf(refused)).toContain('[contained]');
        const last = (await events(agentId)).at(-1);
        expect(last).toMatchObject({ outcome: 'denied', errorCode: 'contained', target: 'echo' });
        expect(await resume({ scope: 'agent', target: name, by: 'alice@example.com' })).toMatchObject({
          lifted: true,
        });
        expect(textOf(await again.callTool('echo', { message: 'back' }))).toBe('Echo: back');
      } finally {
        await again.close().catch(() => {});
      }
    });
  });

  it('disables one tool, then a whole server, for every agent; the global switch stops everything', async () => {
    const name = `worker-${flavours[0]}`;
    const agent = await connectAgent(flavours[0] as 'sdk1', `${t.url}/mcp/everything`, await t.token(name));
    try {
      await kill({ scope: 'tool', target: 'everything.echo' });
      expect(textOf(await agent.callTool('echo', { message: 'x' }))).toContain(
        'tool everything.echo is disabled',
      );
      expect(textOf(await agent.callTool('get-sum', { a: 1, b: 2 }))).toContain('3');
      await kill({ scope: 'server', target: 'everything' });
      expect(textOf(await agent.callTool('get-sum', { a: 1, b: 2 }))).toContain(
        'server everything is disabled',
      );
      await resume({ scope: 'server', target: 'everything', by: 'alice@example.com' });
      await resume({ scope: 'tool', target: 'everything.echo', by: 'alice@example.com' });
      await kill({ scope: 'all' });
      expect(textOf(await agent.callTool('get-sum', { a: 1, b: 2 }))).toContain('global kill switch');
      await resume({ scope: 'all', by: 'alice@example.com' });
      expect(textOf(await agent.callTool('echo', { message: 'ok' }))).toBe('Echo: ok');
    } finally {
      await agent.close().catch(() => {});
    }
  });

  it('quarantines one task token while the agent’s other work goes on, without ending its tokens', async () => {
    const name = `worker-${flavours[0]}`;
    const agentToken = await t.token(name);
    const taskToken = await t.taskToken(agentToken, {
      scope: 'tool:everything.echo',
      task_purpose: 'echo drill',
    });
    const taskId = JSON.parse(Buffer.from(taskToken.split('.')[1] as string, 'base64url').toString()).task
      .id as string;
    const { containment } = await kill({ scope: 'task', target: taskId, reason: 'task drill' });
    expect(containment.incidentId).toMatch(/^inc_/);
    const onTask = await connectAgent(flavours[0] as 'sdk1', `${t.url}/mcp/everything`, taskToken);
    const asAgent = await connectAgent(flavours[0] as 'sdk1', `${t.url}/mcp/everything`, agentToken);
    try {
      expect(textOf(await onTask.callTool('echo', { message: 'x' }))).toContain('this task is quarantined');
      expect(textOf(await asAgent.callTool('echo', { message: 'still here' }))).toBe('Echo: still here');
    } finally {
      await onTask.close().catch(() => {});
      await asAgent.close().catch(() => {});
    }
    await resume({ scope: 'task', target: taskId, by: 'alice@example.com' });
  });

  it('the upstream hears the cancellation of a call in flight (MCP notifications/cancelled)', async () => {
    const name = `worker-${flavours[0]}`;
    const agentId = t.agents.get(name)?.clientId as string;
    const agent = await connectAgent(flavours[0] as 'sdk1', `${t.url}/mcp/slow`, await t.token(name));
    try {
      const slow = agent.callTool('wait', { ms: 30_000 }).catch((e: Error) => e);
      await eventually(
        async () => (await t.custos.detect.snapshot(agentId)).inFlight === 1,
        'the call to be in flight',
      );
      await kill({ scope: 'server', target: 'slow', reason: 'drill' });
      await slow;
      const log = await eventually(
        () => existsSync(slowLog) && readFileSync(slowLog, 'utf8'),
        'the upstream to log the cancellation',
      );
      expect(log).toContain('cancelled');
    } finally {
      await agent.close().catch(() => {});
      await resume({ scope: 'server', target: 'slow', by: 'alice@example.com' });
    }
  });

  it('refuses bad kill and resume requests with clear errors', async () => {
    await expect(kill({ scope: 'planet' })).rejects.toThrow(/400/);
    await expect(kill({ scope: 'agent' })).rejects.toThrow(/needs a target/);
    await expect(kill({ scope: 'tool', target: 'echo' })).rejects.toThrow(/server\.tool/);
    await expect(kill({ scope: 'agent', target: 'nobody-here' })).rejects.toThrow(/404/);
    await expect(resume({ scope: 'server', target: 'everything', by: 'alice@example.com' })).rejects.toThrow(
      /not contained/,
    );
    await kill({ scope: 'server', target: 'everything' });
    await expect(resume({ scope: 'server', target: 'everything' })).rejects.toThrow(/named human/);
    await resume({ scope: 'server', target: 'everything', by: 'alice@example.com' });
    const doc = await t.admin<{ paths: Record<string, unknown> }>('/api/v1/openapi.json');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/api/v1/containments', '/api/v1/incidents', '/api/v1/incidents/{id}/report']),
    );
  });
});
