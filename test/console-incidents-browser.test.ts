import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IncidentSummary } from '../src/detect/index.js';
import { connectAgent } from './support/agents.js';
import {
  chromiumAvailable,
  launchChromium,
  logIn as logInAs,
  withPage as withBrowserPage,
} from './support/browser.js';
import { ensureBuilt } from './support/cli.js';
import { everythingServer, startTestCustos, type TestCustos } from './support/custos.js';

/** The console's Incidents screen in Debian's headless Chromium, driven by playwright-core. */
const password = 'console test password';
const hasChromium = chromiumAvailable('console-incidents');

describe.skipIf(!hasChromium)('the console’s Incidents screen in a real browser', { timeout: 90_000 }, () => {
  let t: TestCustos;
  let browser: Browser;
  let incidentId: string;

  const withPage = (name: string, work: (page: Page) => Promise<void>) =>
    withBrowserPage(browser, { viewport: { width: 1280, height: 900 }, baseURL: t.url }, name, work);
  const logIn = (page: Page, email: string) => logInAs(page, email, password);

  beforeAll(async () => {
    ensureBuilt();
    t = await startTestCustos({
      servers: { everything: everythingServer },
      policies: { 'all.cedar': '@id("all")\npermit (principal, action, resource);\n' },
      agents: [{ name: 'runner' }],
      extra: { detect: { firstUse: { action: 'off' } } },
    });
    for (const [email, roles] of [
      ['admin@example.com', ['admin']],
      ['auditor@example.com', ['auditor']],
    ] as const) {
      await t.admin('/api/v1/users', { method: 'POST', body: { email, roles, password } });
    }
    const agent = await connectAgent('sdk2-legacy', `${t.url}/mcp/everything`, await t.token('runner'));
    for (const n of [1, 2, 3]) await agent.callTool('echo', { message: `call ${n}` });
    await agent.close();
    const { containment } = await t.admin<{ containment: { incidentId: string } }>('/api/v1/containments', {
      method: 'POST',
      body: { scope: 'agent', target: 'runner', reason: 'console drill' },
    });
    incidentId = containment.incidentId;
    const again = await connectAgent('sdk2-legacy', `${t.url}/mcp/everything`, await t.token('runner'));
    for (const n of [4, 5]) await again.callTool('echo', { message: `call ${n}` });
    await again.close();
    await t.custos.detect.settle();
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('lists incidents and shows one with its counts and the timeline of exactly its calls', async () => {
    const { summary } = await t.admin<{ summary: IncidentSummary }>(`/api/v1/incidents/${incidentId}`);
    expect(summary.timeline).toHaveLength(5);
    await withPage('incidents-detail', async (page) => {
      await logIn(page, 'auditor@example.com');
      await page.locator('header.top nav').getByRole('link', { name: 'Incidents' }).click();
      await page.locator(`tr[data-incident="${incidentId}"]`).getByRole('link').click();
      await page.getByRole('heading', { name: `Incident ${incidentId}` }).waitFor();
      await expect
        .poll(() => page.locator('[data-counts]').textContent())
        .toBe(`${summary.counts.executed} executed, ${summary.counts.blocked} blocked, 0 failed`);
      const rows = page.locator('table.timeline tbody tr');
      await expect.poll(() => rows.count()).toBe(5);
      expect(await page.locator('tr[data-outcome="denied"]').count()).toBe(2);
      expect(await page.locator('tr[data-outcome="executed"]').count()).toBe(3);
      // An auditor reads, but has neither button.
      expect(await page.getByRole('button', { name: /Resume|Kill/ }).count()).toBe(0);
    });
  });

  it('an admin resumes the contained agent and kills it again from the incident', async () => {
    await withPage('incidents-actions', async (page) => {
      await logIn(page, 'admin@example.com');
      await page.goto(`/#/incidents/${incidentId}`);
      await page.locator('[data-containment="in-force"]').waitFor();
      await page.getByRole('button', { name: 'Resume agent' }).click();
      await page.getByRole('status').getByText('resumed').waitFor();
      await page.locator('[data-containment="lifted"]').waitFor();
      const { containments } = await t.admin<{ containments: unknown[] }>('/api/v1/containments');
      expect(containments).toEqual([]);
      await page.getByRole('button', { name: 'Kill agent' }).click();
      await page.getByRole('status').getByText('contained').waitFor();
      await page.locator('[data-containment="in-force"]').waitFor();
      const after = await t.admin<{ containments: Array<{ scope: string; actor: string }> }>(
        '/api/v1/containments',
      );
      expect(after.containments).toEqual([
        expect.objectContaining({ scope: 'agent', actor: 'admin@example.com' }),
      ]);
    });
  });
});
