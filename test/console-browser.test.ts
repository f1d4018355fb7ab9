import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentClient, connectAgent, type ToolResult, textOf } from './support/agents.js';
import {
  chromiumAvailable,
  launchChromium,
  logIn as logInAs,
  withPage as withBrowserPage,
} from './support/browser.js';
import { ensureBuilt } from './support/cli.js';
import { eventually, everythingServer, startTestCustos, type TestCustos } from './support/custos.js';

/** The console in a real headless Chromium (see support/browser.ts). */
const password = 'console test password';
const owner = 'owner@example.com';

const policies = {
  'console.cedar': `
@id("console:everything")
permit (principal in Owner::"${owner}", action, resource in Server::"everything");
`,
};

const hasChromium = chromiumAvailable('console-browser');

// The whole suite shares two cores with a browser here: generous limits, no timing assertions.
describe.skipIf(!hasChromium)('the console in a real browser', { timeout: 60_000 }, () => {
  let t: TestCustos;
  let browser: Browser;
  let agent: AgentClient;

  /** Run a browser step (see support/browser.ts); the page must raise no error and no CSP violation. */
  function withPage(
    name: string,
    work: (page: Page, context: BrowserContext) => Promise<void>,
    viewport = { width: 1280, height: 900 },
  ) {
    return withBrowserPage(browser, { viewport, baseURL: t.url }, name, async (page, context) => {
      const problems: string[] = [];
      page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
      page.on('console', (message) => {
        // A CSP violation shows up as a console error; the console must run under its own CSP.
        if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) {
          problems.push(message.text());
        }
      });
      await work(page, context);
      expect(problems).toEqual([]);
    });
  }

  const logIn = (page: Page, email: string) => logInAs(page, email, password);

  beforeAll(async () => {
    ensureBuilt();
    t = await startTestCustos({
      servers: { everything: everythingServer },
      policies,
      agents: [
        { name: 'support-bot', owner, purpose: 'answer support tickets' },
        { name: 'idle-bot', owner, purpose: 'does nothing yet' },
      ],
    });
    await t.admin('/api/v1/users', {
      method: 'POST',
      body: { email: 'admin@example.com', roles: ['admin'], password },
    });
    await t.admin('/api/v1/users', {
      method: 'POST',
      body: { email: 'auditor@example.com', roles: ['auditor'], password },
    });
    agent = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('support-bot'));
    await agent.callTool(
      'echo',
      { message: 'first call' },
      { 'io.custos/reasoning': 'checking the echo tool' },
    );
    // Arguments are the agent's, so the console must show them as text and never as markup.
    await agent.callTool('echo', { message: '<img src=x id=injected onerror="document.title=1">' });
    await agent.callTool('no-such-tool', {}).catch(() => {});
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await agent?.close();
    await t?.close();
  });

  it('refuses a wrong password, then logs in and shows the overview with real figures', async () => {
    await withPage('overview', async (page) => {
      await page.goto('/');
      await page.getByLabel('Email').fill('admin@example.com');
      await page.getByLabel('Password').fill('wrong password!!');
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('alert').getByText('wrong email or password').waitFor();
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      await expect.poll(() => page.getByTestId('agents-total').textContent()).toBe('2');
      const calls = Number(await page.getByTestId('calls-hour').textContent());
      expect(calls).toBeGreaterThanOrEqual(3);
      expect(Number(await page.getByTestId('denied-hour').textContent())).toBeGreaterThanOrEqual(1);
      // The per-minute chart (ECharts, SVG) draws under the console's CSP.
      await page
        .getByRole('img', { name: /requests per minute/ })
        .locator('svg')
        .waitFor();
      // The session cookie is out of reach of scripts.
      expect(await page.evaluate('document.cookie')).toBe('');
    });
  });

  it('lists agents, shows an agent’s recent activity, and suspends and resumes it', async () => {
    await withPage('agents', async (page) => {
      await logIn(page, 'admin@example.com');
      await page.locator('header.top nav').getByRole('link', { name: 'Agents' }).click();
      const row = page.locator('tr[data-agent="support-bot"]');
      await row.getByText(owner).waitFor();
      await page.locator('tr[data-agent="idle-bot"]').waitFor();
      await row.getByRole('link', { name: 'support-bot' }).click();
      await page.getByRole('heading', { name: 'support-bot' }).waitFor();
      await page.getByText('answer support tickets').waitFor();
      await page.locator('ol.events li', { hasText: 'tools/call everything.echo' }).first().waitFor();

      await page.getByRole('button', { name: 'Suspend' }).click();
      await page.getByRole('button', { name: 'Resume' }).waitFor();
      const suspended = await t.admin<{ agent: { status: string } }>('/api/v1/agents/support-bot');
      expect(suspended.agent.status).toBe('suspended');
      const refused = await agent.callTool('echo', { message: 'while suspended' }).then(
        (r) => textOf(r),
        (e: Error) => e.message,
      );
      expect(refused).not.toContain('Echo: while suspended');

      await page.getByRole('button', { name: 'Resume' }).click();
      await page.getByRole('button', { name: 'Suspend' }).waitFor();
      const resumed = await t.admin<{ agent: { status: string } }>('/api/v1/agents/support-bot');
      expect(resumed.agent.status).toBe('active');
    });
  });

  it('an auditor sees agents but no suspend button', async () => {
    await withPage('auditor', async (page) => {
      await logIn(page, 'auditor@example.com');
      await page.goto('/#/agents/support-bot');
      await page.getByText('answer support tickets').waitFor();
      expect(await page.getByRole('button', { name: 'Suspend' }).count()).toBe(0);
    });
  });

  it('shows the audit timeline, filters it, and opens an event with its arguments as text and its reasoning', async () => {
    await withPage('audit', async (page) => {
      await logIn(page, 'admin@example.com');
      await page.locator('header.top nav').getByRole('link', { name: 'Audit' }).click();
      await page.locator('ol.events li', { hasText: 'tools/call no-such-tool' }).first().waitFor();
      await page.getByLabel('Decision').selectOption('deny');
      await page.getByRole('button', { name: 'Filter' }).click();
      await expect.poll(() => page.locator('ol.events li', { hasText: 'everything.echo' }).count()).toBe(0);
      await page.getByLabel('Decision').selectOption('');
      await page.getByRole('button', { name: 'Filter' }).click();

      const events = await t.admin<{ events: Array<{ id: string; target: string | null }> }>(
        '/api/v1/audit/events?limit=100',
      );
      const injected = events.events.filter((e) => e.target === 'echo')[1];
      expect(injected).toBeDefined();
      await page.goto(`/#/audit/${injected?.id}`);
      const args = page.getByLabel('arguments').first();
      await args.getByText('<img src=x id=injected', { exact: false }).waitFor();
      expect(await page.locator('#injected').count()).toBe(0);
      expect(await page.title()).toBe('Custos console');

      const first = events.events.find((e) => e.target === 'echo');
      await page.goto(`/#/audit/${first?.id}`);
      await page.getByLabel('reasoning').first().getByText('checking the echo tool').waitFor();
    });
  });

  it('updates the audit timeline live when the agent makes a call', async () => {
    await withPage('live', async (page) => {
      await logIn(page, 'admin@example.com');
      await page.goto('/#/audit');
      await page.locator('.live.on').waitFor();
      await page.locator('ol.events li').first().waitFor();
      // Suspension moved the agent's revocation epoch on: its old token is dead, so take a new one.
      const fresh = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('support-bot'));
      await fresh.callTool('echo', { message: 'live update marker' });
      await fresh.close();
      const newest = await eventually(
        async () =>
          (await t.admin<{ events: Array<{ id: string }> }>('/api/v1/audit/events?limit=1')).events[0]?.id,
        'the call to reach the audit log',
      );
      // No reload: the stream brings the new event in.
      await page.locator(`a[href="#/audit/${newest}"]`).waitFor({ timeout: 10_000 });
    });
  });

  it('shows an event’s decision chain: the other calls of its trace', async () => {
    const traceId = '5c0a1e7e2f0b4c8d9e1f2a3b4c5d6e7f';
    const traced = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('support-bot'), {
      traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
    });
    try {
      await traced.callTool('echo', { message: 'chain step one' }, { 'io.custos/reasoning': 'first, look' });
      await traced.callTool('echo', { message: 'chain step two' }, { 'io.custos/reasoning': 'then, act' });
    } finally {
      await traced.close();
    }
    const events = (
      await t.admin<{ events: Array<{ id: string; method: string }> }>(
        `/api/v1/audit/events?trace=${traceId}`,
      )
    ).events.filter((e) => e.method === 'tools/call');
    expect(events).toHaveLength(2);
    await withPage('chain', async (page) => {
      await logIn(page, 'admin@example.com');
      await page.goto(`/#/audit/${events[0]?.id}`);
      const chain = page.getByRole('region', { name: 'decision chain' });
      // With the trace endpoint the chain shows each step; without it, the trace's events stand in.
      await chain.locator(`a[href="#/audit/${events[0]?.id}"]`).waitFor();
      await chain.locator(`a[href="#/audit/${events[1]?.id}"]`).waitFor();
    });
  });

  it('lists upstream servers and their tools', async () => {
    await withPage('servers', async (page) => {
      await logIn(page, 'admin@example.com');
      await page.locator('header.top nav').getByRole('link', { name: 'Servers' }).click();
      const server = page.locator('details[data-server="everything"]');
      await server.getByText('ready').waitFor();
      await server.locator('summary').click();
      await server.locator('ul.tools code', { hasText: /^echo$/ }).waitFor();
    });
  });

  it('an admin adds a person, gives them an API token shown once, revokes it, and disables them', async () => {
    await withPage('people', async (page) => {
      await logIn(page, 'admin@example.com');
      await page.locator('header.top nav').getByRole('link', { name: 'People' }).click();
      const form = page.getByRole('form', { name: 'add a person' });
      await form.getByLabel('Email').fill('new-approver@example.com');
      await form.getByLabel('approver').check();
      await form.getByLabel('auditor').uncheck();
      await form.getByLabel('Groups').fill('payments');
      await form.getByLabel(/^Password/).fill(password);
      await form.getByRole('button', { name: 'Add' }).click();
      const row = page.locator('tr[data-user="new-approver@example.com"]');
      await row.getByRole('cell', { name: 'approver', exact: true }).waitFor();
      await row.getByText('payments').waitFor();

      page.once('dialog', (dialog) => void dialog.accept('ci'));
      await row.getByRole('button', { name: 'New API token' }).click();
      const token = (await page.getByRole('status').locator('pre').textContent()) ?? '';
      expect(token).toMatch(/^custos_ut_/);
      const me = await fetch(`${t.url}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
      expect(await me.json()).toMatchObject({
        actor: { name: 'new-approver@example.com', roles: ['approver'] },
      });

      await page.getByRole('button', { name: 'Done' }).click();
      await row.getByRole('button', { name: 'revoke ci' }).click();
      await row.getByText('none').waitFor();
      const revoked = await fetch(`${t.url}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
      expect(revoked.status).toBe(401);

      await row.getByRole('button', { name: 'Disable' }).click();
      await row.getByText('disabled').waitFor();
      const login = await fetch(`${t.url}/api/v1/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-custos-csrf': '1' },
        body: JSON.stringify({ email: 'new-approver@example.com', password }),
      });
      expect(login.status).toBe(401);
    });
  });

  it('an auditor has no People screen', async () => {
    await withPage('people-auditor', async (page) => {
      await logIn(page, 'auditor@example.com');
      expect(await page.locator('header.top nav').getByRole('link', { name: 'People' }).count()).toBe(0);
      const users = await page.evaluate(async () => (await fetch('/api/v1/users')).status);
      expect(users).toBe(403);
    });
  });

  it('works on a phone: 390 px wide with no sideways scrolling', async () => {
    await withPage(
      'phone',
      async (page) => {
        await logIn(page, 'admin@example.com');
        for (const route of [
          '#/overview',
          '#/agents',
          '#/audit',
          '#/approvals',
          '#/servers',
          '#/people',
          '#/account',
        ]) {
          await page.goto(`/${route}`);
          await page.locator('main.content h1').waitFor();
          const overflow = await page.evaluate('document.documentElement.scrollWidth');
          expect(overflow, route).toBeLessThanOrEqual(390);
        }
      },
      { width: 390, height: 844 },
    );
  });

  /**
   * The end-to-end approval tests. They need the approval engine (branch "approvals"), coded
   * against the admin API contract (GET/POST /api/v1/approvals...). When this Custos has no
   * engine (GET /api/v1/approvals answers 404) they are skipped with a printed reason.
   * The configuration (`approvals.holdSeconds`, `approvals.tiers`) and the policy annotation
   * (`@approval("tier")`) follow the approvals branch's docs/approvals.md. The held-call test
   * also needs the live stream to watch pending approvals: in src/app.ts, consoleDataRoutes({
   * ..., watch: { approvals: async () => (await approvals.list({ status: 'pending', limit: 200 }))
   * .map((a) => a.id) } }).
   */
  async function approvalsMissing(): Promise<boolean> {
    const probe = await fetch(`${t.url}/api/v1/approvals`, {
      headers: { authorization: `Bearer ${t.adminToken}` },
    });
    await probe.body?.cancel();
    if (probe.status !== 404) return false;
    console.warn(
      '[console-browser] approval e2e skipped: GET /api/v1/approvals answered 404 (no approval engine in this build)',
    );
    return true;
  }

  /** A Custos whose policy sends every echo call of pay-bot to the "payments" tier for approval. */
  async function approvalCustos(holdSeconds: number): Promise<{ a: TestCustos; payBot: AgentClient }> {
    const a = await startTestCustos({
      servers: { everything: everythingServer },
      policies: {
        'approve.cedar': `
@id("payments:needs-approval")
@approval("payments")
permit (principal in Owner::"${owner}", action == Action::"call_tool", resource in Server::"everything")
when { resource.name == "echo" };

@id("payments:list")
permit (principal in Owner::"${owner}", action == Action::"list_tools", resource);
`,
      },
      agents: [{ name: 'pay-bot', owner, purpose: 'pay approved invoices' }],
      extra: {
        approvals: { holdSeconds, tiers: { payments: { approvers: ['approver@example.com'], quorum: 1 } } },
      },
    });
    await a.admin('/api/v1/users', {
      method: 'POST',
      body: { email: 'approver@example.com', roles: ['approver'], password },
    });
    const payBot = await connectAgent('sdk2-legacy', `${a.url}/mcp`, await a.token('pay-bot'));
    return { a, payBot };
  }

  /** On a phone-sized page: log in as the approver, check what the card shows, and approve. */
  async function approveOnPhone(
    a: TestCustos,
    name: string,
    message: string,
    reasoning: string,
    /** Started once the empty inbox shows: the request must then appear live, without a reload. */
    startCall?: () => void,
  ) {
    await withBrowserPage(
      browser,
      { viewport: { width: 390, height: 844 }, baseURL: a.url },
      name,
      async (page) => {
        page.setDefaultTimeout(15_000);
        await logInAs(page, 'approver@example.com', password);
        await page.goto('/#/approvals/inbox');
        const card = page.locator('article.approval').first();
        if (startCall !== undefined) {
          await page.getByText('Nothing waits for a decision.').waitFor();
          await page.locator('.live.on').waitFor();
          startCall();
          // Sooner than the console's 15-second fallback refresh: the stream announced it.
          await card.getByText('pay-bot wants to call').waitFor({ timeout: 10_000 });
        }
        await card.getByText('pay-bot wants to call').waitFor();
        await card.getByText(owner).waitFor();
        await card.getByLabel('arguments').getByText(message).waitFor();
        await card.getByLabel('reasoning').getByText(reasoning).waitFor();
        await card.getByText('payments:needs-approval').waitFor();
        await card.getByRole('textbox', { name: 'Reason' }).fill('invoice checked');
        await card.getByRole('button', { name: 'Approve' }).click();
        await page.getByText('Nothing waits for a decision.').waitFor();
      },
    );
  }

  it('approval end to end: log in, see the pending call, approve it, and the agent’s retry executes', async (ctx) => {
    if (await approvalsMissing()) return ctx.skip();
    const { a, payBot } = await approvalCustos(2);
    try {
      const args = { message: 'pay invoice 4711: 120.00 EUR' };
      const meta = { 'io.custos/reasoning': 'invoice is due today' };
      const first = await payBot.callTool('echo', args, meta);
      expect(textOf(first)).not.toContain('Echo: pay invoice 4711');
      expect(JSON.stringify(first)).toContain('approval_pending');

      await approveOnPhone(a, 'approval-e2e', 'pay invoice 4711: 120.00 EUR', 'invoice is due today');

      const retry = textOf(await payBot.callTool('echo', args, meta));
      expect(retry).toContain('Echo: pay invoice 4711: 120.00 EUR');
      // Single use: the same call again needs a new approval.
      const again = textOf(await payBot.callTool('echo', args));
      expect(again).not.toContain('Echo: pay invoice 4711');
    } finally {
      await payBot.close();
      await a.close();
    }
  }, 120_000);

  it('approval while the call is held: the request appears live in an open inbox, and approving lets the waiting call run', async (ctx) => {
    if (await approvalsMissing()) return ctx.skip();
    const { a, payBot } = await approvalCustos(60);
    try {
      let waiting: Promise<ToolResult> | undefined;
      await approveOnPhone(a, 'approval-held', 'pay invoice 4712: 80.00 EUR', 'second invoice', () => {
        waiting = payBot.callTool(
          'echo',
          { message: 'pay invoice 4712: 80.00 EUR' },
          { 'io.custos/reasoning': 'second invoice' },
        );
        // Awaited below; if the test fails first, closing the agent must not surface as unhandled.
        waiting.catch(() => {});
      });
      expect(waiting).toBeDefined();
      expect(textOf(await (waiting as Promise<ToolResult>))).toBe('Echo: pay invoice 4712: 80.00 EUR');
    } finally {
      await payBot.close();
      await a.close();
    }
  }, 120_000);
});
