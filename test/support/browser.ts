/**
 * The console's browser tests: Debian's headless Chromium (installed by .ci/run), driven by
 * playwright-core; no test-tool browser download is involved. A failing step leaves a
 * screenshot in test-output/screenshots/ (gitignored).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

export const chromiumPath = process.env.CUSTOS_CHROMIUM ?? '/usr/bin/chromium';

/** Whether Chromium is installed; says why a suite is skipped when it is not. */
export function chromiumAvailable(suite: string): boolean {
  if (existsSync(chromiumPath)) return true;
  console.warn(`[${suite}] skipping: no Chromium at ${chromiumPath} (apt-get install -y chromium)`);
  return false;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
}

/**
 * Run `work` on a new page of a new context; on failure keep a screenshot named after the step.
 * Pages fail within 20 s, inside the test's own time limit, so the screenshot shows where it stuck.
 */
export async function withPage(
  browser: Browser,
  options: { baseURL: string; viewport?: { width: number; height: number } },
  name: string,
  work: (page: Page, context: BrowserContext) => Promise<void>,
): Promise<void> {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  try {
    await work(page, context);
  } catch (error) {
    const screenshots = resolve('test-output/screenshots');
    mkdirSync(screenshots, { recursive: true });
    const file = join(screenshots, `${name.replace(/[^a-z0-9]+/gi, '-')}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    console.error(`screenshot of the failure: ${file}`);
    throw error;
  } finally {
    await context.close();
  }
}

/** Log in on the console's password form and wait until it shows who is logged in. */
export async function logIn(page: Page, email: string, password: string): Promise<void> {
  await page.goto('/');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText(email).waitFor();
}
