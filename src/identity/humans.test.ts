import { expect, it } from 'vitest';
import { describeEachStore } from '../../test/support/stores.js';
import { ManualClock } from '../core/clock.js';
import { IdGenerator } from '../core/ids.js';
import { UserService } from './humans.js';

// A cheap scrypt cost keeps the suite quick; one test checks the production default separately.
const cheap = { log2n: 10, r: 8, p: 1 };
const password = 'correct horse battery staple';

await describeEachStore('humans', (current) => {
  const clock = new ManualClock();
  const service = () =>
    new UserService({
      store: current().store,
      clock,
      ids: new IdGenerator(clock),
      sessionTtlMs: 8 * 3_600_000,
      sessionIdleMs: 30 * 60_000,
      passwordCost: cheap,
    });

  it('adds a user with roles and groups, stores only a scrypt hash, and verifies the password', async () => {
    const users = service();
    const user = await users.add({
      email: 'Alice@Example.com',
      roles: ['approver', 'auditor'],
      groups: ['payments'],
      password,
    });
    expect(user).toMatchObject({
      email: 'alice@example.com',
      roles: ['approver', 'auditor'],
      groups: ['payments'],
      status: 'active',
      hasPassword: true,
    });
    const row = await current()
      .store.db.selectFrom('users')
      .select('password_hash')
      .where('id', '=', user.id)
      .executeTakeFirstOrThrow();
    expect(row.password_hash).toMatch(/^scrypt\$10\$8\$1\$/);
    expect(row.password_hash).not.toContain(password);
    expect((await users.verifyPassword('alice@example.com', password))?.id).toBe(user.id);
    expect(await users.verifyPassword('alice@example.com', `${password}!`)).toBeUndefined();
    expect(await users.verifyPassword('nobody@example.com', password)).toBeUndefined();
  });

  it('refuses a duplicate email, an unknown role, no role, and a short password', async () => {
    const users = service();
    await expect(users.add({ email: 'alice@example.com', roles: ['admin'] })).rejects.toMatchObject({
      code: 'conflict',
    });
    await expect(users.add({ email: 'x@example.com', roles: ['root' as 'admin'] })).rejects.toMatchObject({
      code: 'bad_request',
    });
    await expect(users.add({ email: 'y@example.com', roles: [] })).rejects.toMatchObject({
      code: 'bad_request',
    });
    await expect(
      users.add({ email: 'z@example.com', roles: ['admin'], password: 'short' }),
    ).rejects.toMatchObject({ code: 'bad_request' });
    await expect(users.add({ email: 'not-an-email', roles: ['admin'] })).rejects.toMatchObject({
      code: 'bad_request',
    });
  });

  it('keeps a session alive while used and ends it when idle, past its life, or on logout', async () => {
    const users = service();
    const user = await users.add({ email: 'sam@example.com', roles: ['auditor'], password });
    const { secret } = await users.createSession(user.id);
    const stored = await current().store.db.selectFrom('user_sessions').select('id_hash').execute();
    expect(stored.map((s) => s.id_hash)).not.toContain(secret);
    expect((await users.resolveSession(secret))?.email).toBe('sam@example.com');
    // Used every 20 minutes: idle expiry never triggers, but the 8-hour life does.
    for (let i = 0; i < 23; i++) {
      clock.advance(20 * 60_000);
      expect(await users.resolveSession(secret)).toBeDefined();
    }
    clock.advance(20 * 60_000);
    expect(await users.resolveSession(secret)).toBeUndefined();

    const idle = await users.createSession(user.id);
    clock.advance(30 * 60_000);
    expect(await users.resolveSession(idle.secret)).toBeUndefined();

    const ended = await users.createSession(user.id);
    await users.endSession(ended.secret);
    expect(await users.resolveSession(ended.secret)).toBeUndefined();
    expect(await users.resolveSession('forged')).toBeUndefined();
  });

  it('issues API tokens shown once and stored hashed; revoking or disabling the user stops them', async () => {
    const users = service();
    const user = await users.add({ email: 'bot@example.com', roles: ['admin'] });
    const { token, info } = await users.createToken(user.id, 'ci');
    expect(token).toMatch(/^custos_ut_/);
    const rows = await current().store.db.selectFrom('user_tokens').select('token_hash').execute();
    expect(rows.map((r) => r.token_hash)).not.toContain(token);
    expect((await users.authenticateToken(token))?.email).toBe('bot@example.com');
    expect(await users.authenticateToken(`${token}x`)).toBeUndefined();

    await users.revokeToken(info.id);
    expect(await users.authenticateToken(token)).toBeUndefined();

    const second = await users.createToken('bot@example.com', 'ops');
    const session = await users.createSession(user.id);
    await users.disable('bot@example.com');
    expect(await users.authenticateToken(second.token)).toBeUndefined();
    expect(await users.resolveSession(session.secret)).toBeUndefined();
    expect(await users.verifyPassword('bot@example.com', password)).toBeUndefined();
    await expect(users.createToken(user.id, 'again')).rejects.toMatchObject({ code: 'conflict' });
    await users.enable(user.id);
    expect((await users.authenticateToken(second.token))?.email).toBe('bot@example.com');
  });

  it('a disabled user cannot log in with the right password', async () => {
    const users = service();
    await users.add({ email: 'dana@example.com', roles: ['approver'], password });
    await users.disable('dana@example.com');
    expect(await users.verifyPassword('dana@example.com', password)).toBeUndefined();
  });
});

it('hashes passwords with scrypt at OWASP minimum cost by default (N=2^17, r=8, p=1)', async () => {
  const { openStore } = await import('../store/index.js');
  const store = await openStore('sqlite::memory:');
  try {
    const clock = new ManualClock();
    const users = new UserService({ store, clock, ids: new IdGenerator(clock) });
    const user = await users.add({ email: 'eve@example.com', roles: ['auditor'], password });
    const row = await store.db
      .selectFrom('users')
      .select('password_hash')
      .where('id', '=', user.id)
      .executeTakeFirstOrThrow();
    expect(row.password_hash).toMatch(/^scrypt\$17\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect((await users.verifyPassword('eve@example.com', password))?.email).toBe('eve@example.com');
  } finally {
    await store.close();
  }
});
