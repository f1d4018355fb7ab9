import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Approval } from '../src/approvals/index.js';
import { type AgentClient, approvalOf, connectAgent, type ToolResult } from './support/agents.js';
import { countedCalls } from './support/counting.js';
import { eventually, startTestCustos, type TestCustos } from './support/custos.js';

const countingEntry = resolve('test/support/counting-server.mjs');

interface SlackMessage {
  text: string;
  blocks: Array<{
    type: string;
    text?: { text: string };
    elements?: Array<{ url: string; text: { text: string } }>;
  }>;
}

function approvalIdOf(result: ToolResult): string {
  const meta = approvalOf(result);
  if (meta?.id === undefined) throw new Error(`no approval in ${JSON.stringify(result)}`);
  return meta.id;
}

describe('webhook channel: Slack-compatible message with signed one-time links', () => {
  let t: TestCustos;
  let agent: AgentClient;
  let receiver: Server;
  let countFile: string;
  const received: Array<{ headers: Record<string, unknown>; body: SlackMessage }> = [];
  const executed = () => countedCalls(countFile).length;

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => {
        body += d;
      });
      req.on('end', () => {
        received.push({ headers: req.headers, body: JSON.parse(body) as SlackMessage });
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const port = (receiver.address() as { port: number }).port;
    countFile = join(tmpdir(), `custos-approvals-webhook-${process.pid}-${Date.now()}.jsonl`);
    t = await startTestCustos({
      servers: { bank: { command: process.execPath, args: [countingEntry], env: { COUNT_FILE: countFile } } },
      policies: {
        'p.cedar': `permit (principal, action == Action::"list_tools", resource);
@id("chat:transfer")
@approval("chat")
permit (principal, action == Action::"call_tool", resource);`,
      },
      agents: [{ name: 'payer', owner: 'owner@example.com' }],
      extra: {
        approvals: {
          holdSeconds: 0,
          webhook: { url: `http://127.0.0.1:${port}/hooks/approvals`, headers: { 'x-test': 'yes' } },
          tiers: {
            chat: {
              approvers: ['alice@example.com', 'bob@example.com', 'owner@example.com'],
              channels: ['webhook', 'console'],
            },
          },
        },
      },
    });
    agent = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('payer'));
  }, 60_000);

  afterAll(async () => {
    await agent?.close().catch(() => {});
    await t?.close();
    await new Promise((r) => receiver.close(r));
  });

  const linksOf = (message: SlackMessage) =>
    message.blocks
      .filter((b) => b.type === 'actions')
      .flatMap((b) => b.elements ?? [])
      .map((e) => ({ label: e.text.text, url: e.url }));

  it('posts what the approver needs, with approve and deny links for each listed approver but the owner', async () => {
    const args = { amount: 300, to: 'acct-<b>' };
    const result = await agent.callTool('transfer', args, { 'io.custos/reasoning': 'monthly rent' });
    const id = approvalIdOf(result);
    const message = await eventually(
      () => received.find((m) => m.body.text.includes(id)),
      'the webhook message',
    );
    expect(message.headers['x-test']).toBe('yes');
    const details = message.body.blocks.map((b) => b.text?.text ?? '').join('\n');
    expect(details).toContain('payer (owner owner@example.com)');
    expect(details).toContain('&lt;b&gt;'); // arguments rendered by Custos, escaped for Slack
    expect(details).toContain('monthly rent');
    expect(details).toContain('chat:transfer');
    const labels = linksOf(message.body).map((l) => l.label);
    expect(labels).toEqual([
      'Approve as alice@example.com',
      'Deny as alice@example.com',
      'Approve as bob@example.com',
      'Deny as bob@example.com',
    ]);
  });

  it('GET only shows a confirmation page; POST decides once; the link cannot be reused or forged', async () => {
    const args = { amount: 5, to: 'acct-link' };
    const id = approvalIdOf(await agent.callTool('transfer', args));
    const message = await eventually(
      () => received.find((m) => m.body.text.includes(id)),
      'the webhook message',
    );
    const approveLink = linksOf(message.body).find((l) => l.label === 'Approve as alice@example.com')
      ?.url as string;
    expect(approveLink.startsWith(`${t.url}/approvals/links/`)).toBe(true);

    // A link preview bot fetches the page (twice): nothing is decided.
    for (let i = 0; i < 2; i++) {
      const page = await fetch(approveLink);
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain('acct-link');
      expect(html).toContain('<form method="post">');
    }
    expect((await t.admin<{ approval: Approval }>(`/api/v1/approvals/${id}`)).approval.status).toBe(
      'pending',
    );

    const forged = `${approveLink.slice(0, -3)}${approveLink.endsWith('AAA') ? 'BBB' : 'AAA'}`;
    expect((await fetch(forged, { method: 'POST' })).status).toBe(403);

    const decided = await fetch(approveLink, { method: 'POST' });
    expect(decided.status).toBe(200);
    expect(await decided.text()).toContain('approved');
    const again = await fetch(approveLink, { method: 'POST' });
    expect(again.status).toBe(403);
    expect(await again.text()).toContain('already been used');

    const { approval } = await t.admin<{ approval: Approval }>(`/api/v1/approvals/${id}`);
    expect(approval.quorum.votes).toEqual([
      expect.objectContaining({ by: 'alice@example.com', channel: 'webhook', decision: 'approve' }),
    ]);
    const before = executed();
    expect((await agent.callTool('transfer', args)).isError).toBeFalsy();
    expect(executed()).toBe(before + 1);
  });

  it('a deny link denies, and the other links of a decided request no longer decide anything', async () => {
    const args = { amount: 6, to: 'acct-deny' };
    const id = approvalIdOf(await agent.callTool('transfer', args));
    const message = await eventually(
      () => received.find((m) => m.body.text.includes(id)),
      'the webhook message',
    );
    const links = linksOf(message.body);
    const deny = links.find((l) => l.label === 'Deny as bob@example.com')?.url as string;
    expect((await fetch(deny, { method: 'POST' })).status).toBe(200);
    const approve = links.find((l) => l.label === 'Approve as alice@example.com')?.url as string;
    expect((await fetch(approve, { method: 'POST' })).status).toBe(409);
    const { approval } = await t.admin<{ approval: Approval }>(`/api/v1/approvals/${id}`);
    expect(approval.status).toBe('denied');
    const retry = await agent.callTool('transfer', args);
    expect(retry.isError).toBe(true);
  });
});
