import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IncidentSummary } from '../src/detect/index.js';
import { connectAgent } from './support/agents.js';
import { ensureBuilt } from './support/cli.js';
import { everythingServer, startTestCustos, type TestCustos } from './support/custos.js';

/** The console's Incidents screen in Debian's headless Chromium, driven by playwright-core. */
const chromiumPath = process.env.CUSTOS_CHROMIUM ?? '/usr/bin/chromium';
const screenshots = resolve('test-output/screenshots');
const password = 'console test password';

if (!existsSync(chromiumPath)) {
  console.warn(`[console-incidents] skipping: no Chromium at ${chromiumPath} (apt-get install -y chromium)`);
}

describe.skipIf(!existsSync(chromiumPath))(
  'the console’s Incidents screen in a real browser',
  { timeout: 90_000 },
  () => {
    let t: TestCustos;
    let browser: Browser;
    let incidentId: string;

    async function withPage(name: string, work: (page: Page) => Promise<void>) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, baseURL: t.url });
      const page = await context.newPage();
      page.setDefaultTimeout(20_000);
      try {
        await work(page);
      } catch (error) {
        mkdirSync(screenshots, { recursive: true });
        await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true }).catch(() => {});
        throw error;
      } finally {
        await context.close();
      }
    }

    async function logIn(page: Page, email: string) {
      await page.goto('/');
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByText(email).waitFor();
    }

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
      browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
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
  },
);
