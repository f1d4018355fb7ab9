import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../src/audit/index.js';
import { everythingServer, startTestCustos, type TestCustos } from './support/custos.js';

describe('user administration is recorded in the audit log (admin API over HTTP)', () => {
  let t: TestCustos;
  beforeAll(async () => {
    t = await startTestCustos({ servers: { everything: everythingServer }, policies: { 'none.cedar': '' } });
  }, 60_000);
  afterAll(async () => {
    await t?.close();
  });

  it('records create, role change, token issue and revoke, disable and enable with who did it, never the token', async () => {
    // An admin person does the work with their own API token, so the events name them.
    await t.admin('/api/v1/users', { method: 'POST', body: { email: 'root@example.com', roles: ['admin'] } });
    const { token: adminToken } = await t.admin<{ token: string }>('/api/v1/users/root@example.com/tokens', {
      method: 'POST',
      body: { name: 'ops' },
    });
    const as = async (path: string, body: unknown) => {
      const res = await fetch(`${t.url}/api/v1${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status).toBeLessThan(300);
      return res.status === 204 ? undefined : ((await res.json()) as Record<string, unknown>);
    };
    await as('/users', { email: 'Pat@example.com', roles: ['auditor'] });
    const changed = (await as('/users/pat@example.com/roles', { roles: ['approver', 'auditor'] })) as {
      user: { roles: string[] };
    };
    expect(changed.user.roles).toEqual(['approver', 'auditor']);
    const issued = (await as('/users/pat@example.com/tokens', { name: 'phone' })) as {
      token: string;
      info: { id: string };
    };
    await as(`/users/tokens/${issued.info.id}/revoke`, {});
    await as('/users/pat@example.com/disable', {});
    await as('/users/pat@example.com/enable', {});
    const bad = await fetch(`${t.url}/api/v1/users/pat@example.com/roles`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ roles: ['root'] }),
    });
    expect(bad.status).toBe(400);

    const { events } = await t.admin<{ events: AuditEvent[] }>('/api/v1/audit/events?limit=100');
    const users = events.filter((e) => e.method.startsWith('users/'));
    expect(users.map((e) => [e.method, e.target, e.owner])).toEqual([
      ['users/create', 'root@example.com', 'admin token'],
      ['users/token-issue', 'root@example.com', 'admin token'],
      ['users/create', 'pat@example.com', 'root@example.com'],
      ['users/roles', 'pat@example.com', 'root@example.com'],
      ['users/token-issue', 'pat@example.com', 'root@example.com'],
      ['users/token-revoke', 'pat@example.com', 'root@example.com'],
      ['users/disable', 'pat@example.com', 'root@example.com'],
      ['users/enable', 'pat@example.com', 'root@example.com'],
    ]);
    expect(users[3]?.reasons).toContain('roles auditor -> approver,auditor');
    expect(users[4]?.reasons).toContain(`token ${issued.info.id} (phone)`);
    expect(JSON.stringify(events)).not.toContain(issued.token);
    expect(JSON.stringify(events)).not.toContain(adminToken);
  });
});
