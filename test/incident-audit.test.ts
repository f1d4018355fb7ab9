import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../src/audit/index.js';
import type { IncidentSummary } from '../src/detect/index.js';
import { connectAgent, denialCodeOf } from './support/agents.js';
import { everythingServer, startTestCustos, type TestCustos } from './support/custos.js';

/** The methods that run the whole request path; everything else in the log is not a call. */
const governed = new Set([
  'tools/call',
  'resources/read',
  'prompts/get',
  'completion/complete',
  'resources/subscribe',
]);

describe('an incident’s report agrees exactly with the audit log (runaway against the real everything server)', () => {
  let t: TestCustos;
  let summary: IncidentSummary;
  let markdown: string;
  let audit: AuditEvent[];

  beforeAll(async () => {
    t = await startTestCustos({
      servers: { everything: everythingServer },
      policies: { 'all.cedar': '@id("all")\npermit (principal, action, resource);\n' },
      agents: [{ name: 'looper' }],
      extra: { detect: { firstUse: { action: 'off' } } },
    });
    const agentId = t.agents.get('looper')?.clientId as string;
    const agent = await connectAgent('sdk2-legacy', `${t.url}/mcp/everything`, await t.token('looper'));
    // Normal work: listings (not calls), a few different calls, and a policy-free resource read.
    await agent.listTools();
    for (const n of [1, 2, 3]) await agent.callTool('get-sum', { a: n, b: n });
    // The runaway: the same call until the loop detector (50 in a row) quarantines the agent.
    let outcome: string | undefined;
    for (let i = 0; i < 80 && outcome !== 'contained'; i += 1) {
      outcome = denialCodeOf(await agent.callTool('echo', { message: 'again' }));
    }
    expect(outcome).toBe('contained');
    await agent.close().catch(() => {});
    // With a new token it keeps trying: refused by the contain stage and recorded.
    const retry = await connectAgent('sdk2-legacy', `${t.url}/mcp/everything`, await t.token('looper'));
    await retry.listTools();
    for (let i = 0; i < 4; i += 1)
      expect(denialCodeOf(await retry.callTool('echo', { message: 'again' }))).toBe('contained');
    await retry.close().catch(() => {});
    await t.custos.detect.settle();

    const { incidents } = await t.admin<{ incidents: Array<{ id: string }> }>('/api/v1/incidents');
    expect(incidents).toHaveLength(1);
    const id = incidents[0]?.id as string;
    await t.admin(`/api/v1/incidents/${id}/notes`, { method: 'POST', body: { text: 'looked at it' } });
    await t.admin(`/api/v1/incidents/${id}/close`, { method: 'POST', body: { note: 'loop fixed' } });
    summary = (await t.admin<{ summary: IncidentSummary }>(`/api/v1/incidents/${id}`)).summary;
    const res = await fetch(`${t.url}/api/v1/incidents/${id}/report?format=md`, {
      headers: { authorization: `Bearer ${t.adminToken}` },
    });
    markdown = await res.text();
    audit = (await t.admin<{ events: AuditEvent[] }>(`/api/v1/audit/events?agent=${agentId}&limit=1000`))
      .events;
  }, 120_000);

  afterAll(async () => {
    await t?.close();
  });

  it('the window holds listings and admin events too, and none of them is counted or listed', () => {
    const { from, to } = summary.window;
    const inWindow = audit.filter((e) => e.time >= from && e.time <= to);
    const others = new Set(inWindow.filter((e) => !governed.has(e.method)).map((e) => e.method));
    expect([...others].sort()).toEqual(
      [
        'agents/onboard',
        'detect/quarantine',
        'incident/close',
        'incident/note',
        'incident/open',
        'tools/list',
      ].sort(),
    );
    expect(summary.timeline.map((e) => e.id)).toEqual(
      inWindow.filter((e) => governed.has(e.method)).map((e) => e.id),
    );
  });

  it('executed and blocked, as lists and as counts, are exactly the governed calls of the audit log from onset on', () => {
    const { to } = summary.window;
    const onset = summary.incident.onsetAt;
    const calls = audit.filter((e) => governed.has(e.method) && e.time >= onset && e.time <= to);
    const executed = calls.filter((e) => e.outcome === 'executed').map((e) => e.id);
    const blocked = calls.filter((e) => e.outcome === 'denied').map((e) => e.id);
    const fromOnset = summary.timeline.filter((e) => e.phase !== 'before');
    expect(fromOnset.filter((e) => e.outcome === 'executed').map((e) => e.id)).toEqual(executed);
    expect(fromOnset.filter((e) => e.outcome === 'denied').map((e) => e.id)).toEqual(blocked);
    expect(summary.counts).toEqual({ executed: executed.length, blocked: blocked.length, failed: 0 });
    // The loop's run from its first call: 49 executed, the 50th refused, then 4 with a new token.
    expect(executed.length).toBe(49);
    expect(blocked.length).toBe(5);
    expect(summary.firstEvent?.id).toBe(executed[0]);
    expect(summary.lastEvent?.id).toBe(blocked.at(-1));
  });

  it('the Markdown report lists every governed call once and states the same counts', () => {
    expect(markdown).toContain(
      `Calls since onset: ${summary.counts.executed} executed, ${summary.counts.blocked} blocked, 0 failed`,
    );
    const rows = markdown.split('\n').filter((l) => /^\| \d+ \|/.test(l));
    const seqs = rows.map((l) => Number(l.split('|')[1]));
    expect(seqs).toEqual(
      audit.filter((e) => governed.has(e.method) && e.time >= summary.window.from).map((e) => e.seq),
    );
    expect(rows.filter((l) => l.includes('| denied | contained |'))).toHaveLength(summary.counts.blocked);
    expect(markdown).not.toContain('tools/list');
    expect(markdown).not.toMatch(/\| incident\//);
  });
});
