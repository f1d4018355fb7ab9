import { createServer, type Server } from 'node:http';
import Provider from 'oidc-provider';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, launchChromium, withPage } from './support/browser.js';
import { ensureBuilt } from './support/cli.js';
import { everythingServer, startTestCustos, type TestCustos } from './support/custos.js';

/**
 * Console single sign-on against a real OpenID Connect provider (oidc-provider, started here
 * on loopback, with its development login and consent pages), driven in Debian's Chromium.
 */
const secretEnv = 'CUSTOS_TEST_OIDC_SECRET';
const clientSecret = 'an oidc client secret for the test provider only';

const hasChromium = chromiumAvailable('console-oidc');

describe.skipIf(!hasChromium)('console single sign-on with OpenID Connect', { timeout: 60_000 }, () => {
  let idp: Server;
  let issuer: string;
  let t: TestCustos;
  let browser: Browser;

  beforeAll(async () => {
    ensureBuilt();
    // The provider's port must be known before Custos starts (its configuration names the issuer).
    idp = createServer();
    await new Promise<void>((done) => idp.listen(0, '127.0.0.1', done));
    const address = idp.address();
    issuer = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    process.env[secretEnv] = clientSecret;
    t = await startTestCustos({
      servers: { everything: everythingServer },
      policies: { 'none.cedar': '' },
      extra: { console: { oidc: { issuer, clientId: 'custos-console', clientSecretEnv: secretEnv } } },
    });
    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: 'custos-console',
          client_secret: clientSecret,
          redirect_uris: [`${t.url}/api/v1/session/oidc/callback`],
          grant_types: ['authorization_code'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_post',
        },
      ],
      claims: { openid: ['sub'], email: ['email', 'email_verified'] },
      async findAccount(_ctx: unknown, id: string) {
        return {
          accountId: id,
          async claims() {
            return { sub: id, email: id, email_verified: true };
          },
        };
      },
      cookies: { keys: ['test cookie key for the provider'] },
    });
    idp.on('request', provider.callback());
    await t.admin('/api/v1/users', {
      method: 'POST',
      body: { email: 'sso-approver@example.com', roles: ['approver'] },
    });
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await new Promise((done) => idp?.close(done));
    delete process.env[secretEnv];
  });

  async function ssoLogin(page: Page, login: string): Promise<void> {
    await page.goto('/');
    await page.getByRole('link', { name: 'Log in with single sign-on' }).click();
    await page.waitForURL((url) => url.href.startsWith(issuer));
    await page.locator('input[name="login"]').fill(login);
    await page.locator('input[name="password"]').fill('any password: the dev provider accepts it');
    await page.locator('button[type="submit"]').click();
    // The provider asks for consent once per client and account.
    const consent = page.getByRole('button', { name: /continue/i });
    if (await consent.isVisible({ timeout: 5000 }).catch(() => false)) await consent.click();
  }

  const run = (name: string, work: (page: Page) => Promise<void>) =>
    withPage(browser, { baseURL: t.url }, name, work);

  it('logs a provisioned user in through the provider, with Custos roles, and the session works', async () => {
    await run('oidc-login', async (page) => {
      await ssoLogin(page, 'sso-approver@example.com');
      await page.waitForURL((url) => url.href.startsWith(t.url));
      await page.getByText('sso-approver@example.com').waitFor();
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      const me = await page.evaluate(async () => (await fetch('/api/v1/me')).json());
      expect(me).toMatchObject({ actor: { name: 'sso-approver@example.com', roles: ['approver'] } });
    });
  });

  it('refuses someone the provider knows but Custos does not, and gives no session', async () => {
    await run('oidc-unknown', async (page) => {
      await ssoLogin(page, 'stranger@example.com');
      await page.getByText('stranger@example.com is not a Custos user').waitFor();
      // The console, loaded again, still asks for a login.
      await page.goto('/');
      await page.getByRole('button', { name: 'Log in' }).waitFor();
      const session = await page.evaluate(async () => (await fetch('/api/v1/session')).status);
      expect(session).toBe(401);
    });
  });

  it('refuses a callback this browser did not start, or one replayed', async () => {
    const res = await fetch(`${t.url}/api/v1/session/oidc/callback?code=forged&state=forged`, {
      headers: { cookie: 'custos_oidc=made-up' },
      redirect: 'manual',
    });
    expect(res.status).toBe(403);
    expect(res.headers.get('set-cookie') ?? '').not.toContain('custos_session=');
    const noCookie = await fetch(`${t.url}/api/v1/session/oidc/callback?code=x&state=y`, {
      redirect: 'manual',
    });
    expect(noCookie.status).toBe(403);
  });
});
