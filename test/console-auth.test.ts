import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliRun, ensureBuilt, runCli } from './support/cli.js';
import { everythingServer, startTestCustos, type TestCustos } from './support/custos.js';

const password = 'a long enough password';

/** Run the built CLI, feeding stdin, to completion. */
function custos(args: string[], stdin: string): Promise<CliRun> {
  return runCli(args, { stdin });
}

describe('console login, sessions, API tokens and roles over HTTP', () => {
  let t: TestCustos;

  async function login(
    email: string,
    pw = password,
  ): Promise<{ status: number; cookie?: string; setCookie?: string }> {
    const res = await fetch(`${t.url}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-custos-csrf': '1', origin: t.url },
      body: JSON.stringify({ email, password: pw }),
    });
    await res.body?.cancel();
    const setCookie = res.headers.get('set-cookie') ?? undefined;
    return { status: res.status, setCookie, cookie: setCookie?.split(';')[0] };
  }

  function withCookie(
    cookie: string,
    path: string,
    init: { method?: string; headers?: Record<string, string> } = {},
  ) {
    return fetch(`${t.url}/api/v1${path}`, {
      method: init.method ?? 'GET',
      headers: { cookie, ...init.headers },
    });
  }

  beforeAll(async () => {
    ensureBuilt();
    t = await startTestCustos({
      servers: { everything: everythingServer },
      policies: { 'none.cedar': '' },
      agents: [{ name: 'bot' }],
    });
    for (const [email, roles] of [
      ['admin@example.com', ['admin']],
      ['approver@example.com', ['approver']],
      ['auditor@example.com', ['auditor']],
    ] as const) {
      await t.admin('/api/v1/users', { method: 'POST', body: { email, roles, password } });
    }
  });
  afterAll(async () => {
    await t?.close();
  });

  it('logs in with an HttpOnly, SameSite=Strict session cookie and knows who is logged in', async () => {
    const { status, setCookie, cookie } = await login('auditor@example.com');
    expect(status).toBe(200);
    expect(setCookie).toMatch(/^custos_session=[A-Za-z0-9_-]{43}; /);
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Strict');
    expect(setCookie).toContain('Path=/');
    const me = await withCookie(cookie!, '/me');
    expect(await me.json()).toMatchObject({ actor: { name: 'auditor@example.com', roles: ['auditor'] } });
    const session = await withCookie(cookie!, '/session');
    expect(await session.json()).toMatchObject({ user: { email: 'auditor@example.com' } });
  });

  it('refuses a wrong password and an unknown user alike, without a cookie', async () => {
    for (const attempt of [login('auditor@example.com', 'not the password'), login('ghost@example.com')]) {
      const r = await attempt;
      expect(r.status).toBe(401);
      expect(r.setCookie).toBeUndefined();
    }
  });

  it('after ten failed logins for an account, refuses even the right password for a while (429)', async () => {
    await t.admin('/api/v1/users', {
      method: 'POST',
      body: { email: 'locked@example.com', roles: ['auditor'], password },
    });
    for (let i = 0; i < 10; i++)
      expect((await login('locked@example.com', `guess number ${i}!`)).status).toBe(401);
    const res = await fetch(`${t.url}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-custos-csrf': '1' },
      body: JSON.stringify({ email: 'locked@example.com', password }),
    });
    expect(res.status).toBe(429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('too_many_attempts');
    expect(res.headers.get('set-cookie')).toBeNull();
    // Other accounts still log in from the same address.
    expect((await login('admin@example.com')).status).toBe(200);
    // Each refused login costs a full scrypt verification (N=2^17): slow on a busy machine.
  }, 120_000);

  it('refuses a login posted without the CSRF header or from another origin', async () => {
    const noHeader = await fetch(`${t.url}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'admin@example.com', password }),
    });
    expect(noHeader.status).toBe(403);
    const otherOrigin = await fetch(`${t.url}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-custos-csrf': '1', origin: 'http://evil.example' },
      body: JSON.stringify({ email: 'admin@example.com', password }),
    });
    expect(otherOrigin.status).toBe(403);
  });

  it('a cookie-authenticated change needs the CSRF header and the same origin', async () => {
    const { cookie } = await login('admin@example.com');
    const bare = await withCookie(cookie!, '/agents/bot/suspend', { method: 'POST' });
    expect(bare.status).toBe(403);
    expect(((await bare.json()) as { error: { code: string } }).error.code).toBe('forbidden');
    const cross = await withCookie(cookie!, '/agents/bot/suspend', {
      method: 'POST',
      headers: { 'x-custos-csrf': '1', origin: 'https://evil.example' },
    });
    expect(cross.status).toBe(403);
    // A sandboxed frame or a data: URL sends Origin: null.
    const opaque = await withCookie(cookie!, '/agents/bot/suspend', {
      method: 'POST',
      headers: { 'x-custos-csrf': '1', origin: 'null' },
    });
    expect(opaque.status).toBe(403);
    expect((await t.admin<{ agent: { status: string } }>('/api/v1/agents/bot')).agent.status).toBe('active');
    const ok = await withCookie(cookie!, '/agents/bot/suspend', {
      method: 'POST',
      headers: { 'x-custos-csrf': '1', origin: t.url },
    });
    expect(ok.status).toBe(200);
    expect((await t.admin<{ agent: { status: string } }>('/api/v1/agents/bot')).agent.status).toBe(
      'suspended',
    );
    await t.admin('/api/v1/agents/bot/resume', { method: 'POST' });
  });

  it('enforces roles: auditors and approvers read but may not suspend agents or manage users', async () => {
    for (const email of ['auditor@example.com', 'approver@example.com']) {
      const { cookie } = await login(email);
      const read = await withCookie(cookie!, '/agents');
      expect(read.status).toBe(200);
      const events = await withCookie(cookie!, '/audit/events');
      expect(events.status).toBe(200);
      const suspend = await withCookie(cookie!, '/agents/bot/suspend', {
        method: 'POST',
        headers: { 'x-custos-csrf': '1' },
      });
      expect(suspend.status).toBe(403);
      const users = await withCookie(cookie!, '/users');
      expect(users.status).toBe(403);
    }
    expect((await t.admin<{ agent: { status: string } }>('/api/v1/agents/bot')).agent.status).toBe('active');
  });

  it('a logged-in person changes their own password with the current one; other sessions end', async () => {
    await t.admin('/api/v1/users', {
      method: 'POST',
      body: { email: 'changer@example.com', roles: ['auditor'], password },
    });
    const other = (await login('changer@example.com')).cookie!;
    const mine = (await login('changer@example.com')).cookie!;
    const change = (current: string, next: string) =>
      fetch(`${t.url}/api/v1/session/password`, {
        method: 'POST',
        headers: { cookie: mine, 'content-type': 'application/json', 'x-custos-csrf': '1' },
        body: JSON.stringify({ current, password: next }),
      });
    const wrong = await change('not my password', 'another long password');
    expect(wrong.status).toBe(403);
    const ok = await change(password, 'another long password');
    expect(ok.status).toBe(204);
    const renewed = ok.headers.get('set-cookie')?.split(';')[0] ?? '';
    expect((await withCookie(renewed, '/me')).status).toBe(200);
    expect((await withCookie(other, '/me')).status).toBe(401);
    expect((await login('changer@example.com')).status).toBe(401);
    expect((await login('changer@example.com', 'another long password')).status).toBe(200);
  }, 120_000);

  it('logout ends the session for good', async () => {
    const { cookie } = await login('approver@example.com');
    const out = await fetch(`${t.url}/api/v1/session`, {
      method: 'DELETE',
      headers: { cookie: cookie!, 'x-custos-csrf': '1' },
    });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toContain('Max-Age=0');
    expect((await withCookie(cookie!, '/agents')).status).toBe(401);
  });

  it('a user API token authenticates automation with that user’s roles, and stops when the user is disabled', async () => {
    const created = await t.admin<{ token: string }>('/api/v1/users/auditor@example.com/tokens', {
      method: 'POST',
      body: { name: 'reporting' },
    });
    const call = (path: string, method = 'GET') =>
      fetch(`${t.url}/api/v1${path}`, { method, headers: { authorization: `Bearer ${created.token}` } });
    expect((await call('/agents')).status).toBe(200);
    expect((await call('/agents/bot/suspend', 'POST')).status).toBe(403);
    const listed = await t.admin<{ tokens: Array<{ name: string }> }>('/api/v1/users/auditor@example.com');
    expect(JSON.stringify(listed)).not.toContain(created.token);
    await t.admin('/api/v1/users/auditor@example.com/disable', { method: 'POST' });
    expect((await call('/agents')).status).toBe(401);
    await t.admin('/api/v1/users/auditor@example.com/enable', { method: 'POST' });
  });

  it('serves the console at / with a strict CSP and long-lived caching for hashed assets only', async () => {
    const index = await fetch(`${t.url}/`);
    expect(index.status).toBe(200);
    const csp = index.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toContain("frame-ancestors 'none'");
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const html = await index.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const asset = await fetch(`${t.url}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('cache-control')).toContain('immutable');
    expect(asset.headers.get('content-type')).toContain('javascript');
    await asset.body?.cancel();
    expect((await fetch(`${t.url}/assets/nope.js`)).status).toBe(404);
    // The gateway's own routes keep working beside the console.
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${t.url}/.well-known/oauth-authorization-server`)).status).toBe(200);
    expect((await fetch(`${t.url}/metrics`)).status).toBe(200);
    expect((await fetch(`${t.url}/api/v1/agents`)).status).toBe(401);
  });

  it('custos user add reads the password from stdin, and user list/token/disable work through the running server', async () => {
    const config = ['--data', t.dataDir];
    const added = await custos(
      [...config, 'user', 'add', 'cli@example.com', '--role', 'approver', '--group', 'payments', '--json'],
      '',
    );
    expect(added.code).toBe(0);
    const withPassword = await custos(
      [...config, 'user', 'add', 'cli2@example.com', '--role', 'auditor', '--password-stdin', '--json'],
      `${password}\n`,
    );
    expect(withPassword.code, withPassword.stderr).toBe(0);
    expect((await login('cli2@example.com')).status).toBe(200);
    const list = await custos([...config, 'user', 'list', '--json'], '');
    const users = (JSON.parse(list.stdout) as { users: Array<{ email: string; groups: string[] }> }).users;
    expect(users.find((u) => u.email === 'cli@example.com')?.groups).toEqual(['payments']);
    const token = await custos([...config, 'user', 'token', 'cli@example.com', '--name', 'ci', '--json'], '');
    expect((JSON.parse(token.stdout) as { token: string }).token).toMatch(/^custos_ut_/);
    const disabled = await custos([...config, 'user', 'disable', 'cli2@example.com'], '');
    expect(disabled.code).toBe(0);
    expect((await login('cli2@example.com')).status).toBe(401);
    const reset = await custos([...config, 'user', 'password', 'cli@example.com'], 'a brand new password\n');
    expect(reset.code, reset.stderr).toBe(0);
    expect((await login('cli@example.com', 'a brand new password')).status).toBe(200);
    const bad = await custos([...config, 'user', 'add', 'x@example.com', '--role', 'root'], '');
    expect(bad.code).toBe(2);
  }, 120_000);
});
