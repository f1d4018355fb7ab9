import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IncidentSummary } from '../src/detect/index.js';
import { connectAgent } from './support/agents.js';
import { eventually, everythingServer, startTestCustos, type TestCustos } from './support/custos.js';

/**
 * A loopback webhook receiver that answers 503 to the first `failures` posts of each path,
 * then 200; it keeps every body it was sent and when.
 */
async function flakyReceiver(failures: Record<string, number>) {
  const posts: Array<{ path: string; at: number; body: Record<string, unknown>; status: number }> = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      const path = req.url ?? '/';
      const seen = posts.filter((p) => p.path === path).length;
      const status = seen < (failures[path] ?? 0) ? 503 : 200;
      posts.push({ path, at: Date.now(), body: JSON.parse(body), status });
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(status === 200 ? 'ok' : 'try later');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, posts, close: () => new Promise((r) => server.close(r)) };
}

describe('webhook deliveries retry with backoff (real loopback receiver that fails first)', () => {
  let t: TestCustos;
  let receiver: Awaited<ReturnType<typeof flakyReceiver>>;

  beforeAll(async () => {
    // Incidents: two failures then success (3 tries allowed); approvals: one failure (2 allowed);
    // the "down" path always fails, to see the tries run out.
    receiver = await flakyReceiver({ '/incidents': 2, '/approvals': 1, '/down': 1000 });
    const playbooks = mkdtempSync(join(tmpdir(), 'custos-playbooks-'));
    writeFileSync(
      join(playbooks, 'page.yaml'),
      `name: page\ntrigger: { detectors: [manual], actions: [alert] }\nsteps:\n  - notify: { webhook: "${receiver.base}/down", text: "page" }\n`,
    );
    t = await startTestCustos({
      servers: { everything: everythingServer },
      policies: {
        'p.cedar': `
@id("list") permit (principal, action == Action::"list_tools", resource);
@id("held") @approval("chat") permit (principal, action == Action::"call_tool", resource);
`,
      },
      agents: [{ name: 'worker' }, { name: 'other' }],
      extra: {
        detect: {
          firstUse: { action: 'off' },
          notify: { webhook: `${receiver.base}/incidents`, attempts: 3, backoffMs: 200 },
          playbooks,
        },
        approvals: {
          holdSeconds: 0,
          webhook: { url: `${receiver.base}/approvals`, attempts: 2, backoffMs: 300 },
          tiers: { chat: { channels: ['console', 'webhook'], approvers: ['bob@example.com'] } },
        },
      },
    });
  }, 60_000);

  afterAll(async () => {
    await t?.close();
    await receiver?.close();
  });

  it('an incident notification that fails twice is delivered on the third try, after growing waits', async () => {
    const { containment } = await t.admin<{ containment: { incidentId: string } }>('/api/v1/containments', {
      method: 'POST',
      body: { scope: 'agent', target: 'worker', reason: 'retry drill' },
    });
    await t.custos.detect.settle();
    const posts = receiver.posts.filter((p) => p.path === '/incidents');
    expect(posts.map((p) => p.status)).toEqual([503, 503, 200]);
    // The same message each time.
    expect(new Set(posts.map((p) => JSON.stringify(p.body))).size).toBe(1);
    expect(String(posts[0]?.body.text)).toContain(containment.incidentId);
    // Exponential backoff: about 200 ms, then about 400 ms (20% jitter at most).
    const [a, b, c] = posts.map((p) => p.at) as [number, number, number];
    expect(b - a).toBeGreaterThanOrEqual(190);
    expect(c - b).toBeGreaterThanOrEqual(390);
    const { summary } = await t.admin<{ summary: IncidentSummary }>(
      `/api/v1/incidents/${containment.incidentId}`,
    );
    expect(summary.actions.find((x) => x.kind === 'notify')).toMatchObject({
      status: 'done',
      detail: { status: 200, attempts: 3 },
    });
  });

  it('an approval announcement that fails once is delivered on the second try', async () => {
    const agent = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('other'));
    try {
      await agent.callTool('echo', { message: 'needs a human' });
      const posts = await eventually(() => {
        const p = receiver.posts.filter((x) => x.path === '/approvals');
        return p.length >= 2 ? p : undefined;
      }, 'two posts of the approval message');
      expect(posts.map((p) => p.status)).toEqual([503, 200]);
      expect(String(posts[1]?.body.text)).toContain('other');
      expect((posts[1]?.at as number) - (posts[0]?.at as number)).toBeGreaterThanOrEqual(290);
    } finally {
      await agent.close();
    }
  });

  it('gives up after the configured tries and records the failure with how many there were', async () => {
    const { actions } = await t.admin<{
      actions: Array<{ kind: string; status: string; detail: Record<string, unknown> }>;
    }>('/api/v1/playbooks/page/run', { method: 'POST', body: { agent: 'other' } });
    expect(actions).toEqual([
      expect.objectContaining({
        kind: 'notify',
        status: 'failed',
        detail: expect.objectContaining({ attempts: 3, error: 'webhook answered HTTP 503' }),
      }),
    ]);
    expect(receiver.posts.filter((p) => p.path === '/down').map((p) => p.status)).toEqual([503, 503, 503]);
  });
});
