import { writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../src/audit/index.js';
import { ManualClock } from '../src/core/clock.js';
import { TokenService } from '../src/identity/index.js';
import { type AgentClient, connectAgent, flavours, textOf } from './support/agents.js';
import {
  eventually,
  everythingServer,
  filesystemServer,
  metaEchoEntry,
  startTestCustos,
  type TestCustos,
} from './support/custos.js';

const metaEchoServer = { command: process.execPath, args: [metaEchoEntry] };

const trusted = 'trusted@example.com';

/** Policies of the shared instance: a read-only reader kept from get-env, trusted agents, and no one else. */
const policies = {
  'reader.cedar': `
@id("reader:list")
permit (principal, action == Action::"list_tools", resource)
when { principal.name == "reader" };

@id("reader:read-only")
permit (principal, action == Action::"call_tool", resource)
when { principal.name == "reader" && context.annotations.readOnlyHint };

@id("reader:no-env")
forbid (principal, action == Action::"call_tool", resource in Server::"everything")
when { principal.name == "reader" && resource.name == "get-env" };
`,
  'trusted.cedar': `
@id("trusted:all")
permit (principal in Owner::"${trusted}", action, resource);
`,
};

const trustedAgents = ['writer', 'tasker', 'sus-admin', 'sus-inproc', 'tracer', 'durable', 'bad'];

type Events = { events: AuditEvent[] };

async function auditEvents(t: TestCustos, query = ''): Promise<AuditEvent[]> {
  return (await t.admin<Events>(`/api/v1/audit/events?limit=1000${query}`)).events;
}

async function auditEvent(t: TestCustos, id: string): Promise<AuditEvent> {
  return (await t.admin<{ event: AuditEvent }>(`/api/v1/audit/events/${id}`)).event;
}

/** Every event of the log, read straight from the SQLite file with a second connection. */
function allSeqs(t: TestCustos): number[] {
  const db = new Database(t.dbFile, { readonly: true });
  try {
    return (db.prepare('select seq from audit_events order by seq').all() as Array<{ seq: number }>).map(
      (r) => r.seq,
    );
  } finally {
    db.close();
  }
}

function expectConsecutive(seqs: number[]): void {
  expect(seqs.length).toBeGreaterThan(0);
  expect(seqs).toEqual(seqs.map((_, i) => (seqs[0] as number) + i));
}

async function withAgent<T>(
  client: Promise<AgentClient>,
  work: (client: AgentClient) => Promise<T>,
): Promise<T> {
  const c = await client;
  try {
    return await work(c);
  } finally {
    await c.close().catch(() => {});
  }
}

/** A raw HTTP request, for what fetch will not send (a foreign Host header). */
function rawPost(
  url: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const initialize = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};

async function post(
  url: string,
  token: string | undefined,
  body: string,
  headers: Record<string, string> = {},
) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      ...headers,
    },
    body,
  });
  const text = await res.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {}
  return { status: res.status, headers: res.headers, text, json };
}

describe('the gateway with real MCP servers (filesystem, everything, a _meta echo)', () => {
  let t: TestCustos;

  beforeAll(async () => {
    t = await startTestCustos({
      servers: {
        files: filesystemServer('SANDBOX'),
        everything: everythingServer,
        meta: metaEchoServer,
      },
      policies,
      agents: [
        { name: 'reader' },
        { name: 'nobody' },
        ...trustedAgents.map((name) => ({ name, owner: trusted })),
      ],
    });
  });
  afterAll(async () => {
    await t?.close();
  });

  describe.each(flavours)('an agent on the official SDK (%s)', (flavour) => {
    it('lists and calls tools of every server through /mcp, names unprefixed where nothing collides', async () => {
      const token = await t.token('writer');
      await withAgent(connectAgent(flavour, `${t.url}/mcp`, token), async (agent) => {
        if (flavour === 'sdk2-modern') expect(agent.protocolVersion()).toBe('2026-07-28');
        else expect(agent.protocolVersion()).toBe('2025-11-25');
        const names = (await agent.listTools()).map((tool) => tool.name);
        expect(names).toEqual(expect.arrayContaining(['read_text_file', 'write_file', 'echo', 'get-sum']));
        expect(names).toContain('echo-meta');
        expect(names.filter((n) => n.includes('.'))).toEqual([]);

        const file = await agent.callTool('read_text_file', { path: join(t.sandbox, 'hello.txt') });
        expect(file.isError).toBeFalsy();
        expect(textOf(file)).toContain('hello from the sandbox');
        const echo = await agent.callTool('echo', { message: `hi from ${flavour}` });
        expect(textOf(echo)).toBe(`Echo: hi from ${flavour}`);
        // The qualified form is accepted even where the plain name is unique.
        const sum = await agent.callTool('everything.get-sum', { a: 2, b: 3 });
        expect(textOf(sum)).toContain('5');
      });
    });

    it("lists and calls only that server's tools through /mcp/<server>", async () => {
      const token = await t.token('writer');
      await withAgent(connectAgent(flavour, `${t.url}/mcp/files`, token), async (agent) => {
        const names = (await agent.listTools()).map((tool) => tool.name);
        expect(names).toContain('read_text_file');
        expect(names).not.toContain('echo');
        const listing = await agent.callTool('list_directory', { path: t.sandbox });
        expect(textOf(listing)).toContain('hello.txt');
        const elsewhere = await agent.callTool('echo', { message: 'x' });
        expect(elsewhere.isError).toBe(true);
        expect(textOf(elsewhere)).toContain('unknown_tool');
      });
      await withAgent(connectAgent(flavour, `${t.url}/mcp/everything`, token), async (agent) => {
        const names = (await agent.listTools()).map((tool) => tool.name);
        expect(names).toContain('echo');
        expect(names).not.toContain('read_text_file');
        expect(textOf(await agent.callTool('echo', { message: 'scoped' }))).toBe('Echo: scoped');
      });
    });

    it('hides a forbidden tool, refuses to call it, and records the forbidding policy', async () => {
      const token = await t.token('reader');
      await withAgent(connectAgent(flavour, `${t.url}/mcp`, token), async (agent) => {
        const names = (await agent.listTools()).map((tool) => tool.name);
        expect(names).toContain('echo');
        expect(names).toContain('read_text_file');
        expect(names).not.toContain('get-env');
        expect(names).not.toContain('write_file'); // not read-only: no permit
        const refused = await agent.callTool('get-env', {});
        expect(refused.isError).toBe(true);
        expect(textOf(refused)).toContain('policy_denied');
        expect(textOf(refused)).toContain('reader:no-env');
        expect(JSON.stringify(refused)).not.toContain('PATH'); // nothing of the upstream's answer leaks
      });
      const reader = t.agents.get('reader')?.clientId as string;
      const events = await auditEvents(t, `&agent=${reader}`);
      const denial = events.filter((e) => e.target === 'get-env').at(-1);
      expect(denial).toMatchObject({
        method: 'tools/call',
        server: 'everything',
        effect: 'deny',
        outcome: 'denied',
        errorCode: 'policy_denied',
        policyIds: ['reader:no-env'],
        // The event commits to the policy set that decided, and no approval was consumed.
        policySetHash: t.custos.policy.snapshot.hash,
        approvalId: null,
      });
    });
  });

  it('denies by default: an agent no policy permits sees no tools and cannot call one', async () => {
    const token = await t.token('nobody');
    await withAgent(connectAgent('sdk2-legacy', `${t.url}/mcp`, token), async (agent) => {
      expect(await agent.listTools()).toEqual([]);
      const refused = await agent.callTool('echo', { message: 'let me in' });
      expect(refused.isError).toBe(true);
      expect(textOf(refused)).toContain('policy_denied');
    });
    const nobody = t.agents.get('nobody')?.clientId as string;
    const denial = (await auditEvents(t, `&agent=${nobody}`)).filter((e) => e.method === 'tools/call').at(-1);
    expect(denial).toMatchObject({
      effect: 'deny',
      errorCode: 'policy_denied',
      policyIds: [],
      target: 'echo',
    });
    expect(denial?.reasons.join(' ')).toContain('no policy permits it');
  });

  describe('suspension', () => {
    for (const via of ['the admin API', 'the identity service in process'] as const) {
      it(`suspending through ${via} fails the same client's next call although its token is fresh; resuming needs a new token`, async () => {
        const name = via === 'the admin API' ? 'sus-admin' : 'sus-inproc';
        const token = await t.token(name);
        const agent = await connectAgent('sdk2-legacy', `${t.url}/mcp`, token);
        try {
          expect(textOf(await agent.callTool('echo', { message: 'before' }))).toBe('Echo: before');
          if (via === 'the admin API') {
            const { agent: suspended } = await t.admin<{ agent: { status: string } }>(
              `/api/v1/agents/${name}/suspend`,
              { method: 'POST' },
            );
            expect(suspended.status).toBe('suspended');
          } else {
            await t.custos.identity.agents.suspend(name);
          }
          await expect(agent.callTool('echo', { message: 'after' })).rejects.toThrow();
        } finally {
          await agent.close().catch(() => {});
        }
        // The refused call never entered the pipeline: the only call on record is the one before.
        const id = t.agents.get(name)?.clientId as string;
        const calls = (await auditEvents(t, `&agent=${id}`)).filter((e) => e.method === 'tools/call');
        expect(calls.map((e) => e.outcome)).toEqual(['executed']);
        expect(t.logs.filter((l) => l.msg === 'authentication failed').at(-1)).toMatchObject({
          code: 'agent_inactive',
        });

        await t.admin(`/api/v1/agents/${name}/resume`, { method: 'POST' });
        const stale = await post(`${t.url}/mcp`, token, JSON.stringify(initialize));
        expect(stale.status).toBe(401);
        expect(stale.json).toMatchObject({ error: { code: 'invalid_token' } });
        await withAgent(connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token(name)), async (fresh) => {
          expect(textOf(await fresh.callTool('echo', { message: 'again' }))).toBe('Echo: again');
        });
      });
    }
  });

  describe('task tokens (RFC 8693 token exchange)', () => {
    it.each(['sdk2-legacy', 'sdk2-modern'] as const)(
      'narrow the agent to one tool and a budget of two calls (%s)',
      async (flavour) => {
        const subject = await t.token('tasker');
        const task = await t.taskToken(subject, {
          scope: 'tool:everything.echo',
          task_purpose: 'say hello twice',
          task_budget: '2',
        });
        await withAgent(connectAgent(flavour, `${t.url}/mcp`, task), async (agent) => {
          expect((await agent.listTools()).map((tool) => tool.name)).toEqual(['echo']);
          expect(textOf(await agent.callTool('echo', { message: 'one' }))).toBe('Echo: one');
          expect(textOf(await agent.callTool('echo', { message: 'two' }))).toBe('Echo: two');
          const third = await agent.callTool('echo', { message: 'three' });
          expect(third.isError).toBe(true);
          expect(textOf(third)).toContain('budget_exhausted');
        });
        const tasker = t.agents.get('tasker')?.clientId as string;
        const calls = (await auditEvents(t, `&agent=${tasker}`)).filter(
          (e) => e.method === 'tools/call' && e.taskId !== null,
        );
        const taskId = calls.at(-1)?.taskId as string;
        expect(taskId).toMatch(/^task/);
        const ofTask = (await auditEvents(t, `&task=${taskId}`)).filter((e) => e.method === 'tools/call');
        expect(ofTask.map((e) => [e.target, e.outcome, e.errorCode])).toEqual([
          ['echo', 'executed', null],
          ['echo', 'executed', null],
          ['echo', 'denied', 'budget_exhausted'],
        ]);
      },
    );

    it('keep their budget across a restart, where calls to unknown tools never counted', async () => {
      const task = await t.taskToken(await t.token('tasker'), {
        scope: 'server:everything',
        task_purpose: 'survive a restart',
        task_budget: '2',
      });
      await withAgent(connectAgent('sdk2-legacy', `${t.url}/mcp`, task), async (agent) => {
        // Stopped before the meter: an unknown tool uses none of the budget.
        expect(textOf(await agent.callTool('no-such-tool', {}))).toContain('unknown_tool');
        expect(textOf(await agent.callTool('echo', { message: 'one' }))).toBe('Echo: one');
      });
      await t.restart();
      await withAgent(connectAgent('sdk2-legacy', `${t.url}/mcp`, task), async (agent) => {
        expect(textOf(await agent.callTool('echo', { message: 'two' }))).toBe('Echo: two');
        expect(textOf(await agent.callTool('echo', { message: 'three' }))).toContain('budget_exhausted');
      });
    });

    it('refuses a tool outside the task, visible to the agent otherwise', async () => {
      const task = await t.taskToken(await t.token('tasker'), {
        scope: 'tool:everything.echo',
        task_purpose: 'only echo',
      });
      await withAgent(connectAgent('sdk2-legacy', `${t.url}/mcp/everything`, task), async (agent) => {
        expect((await agent.listTools()).map((tool) => tool.name)).toEqual(['echo']);
        const outside = await agent.callTool('get-sum', { a: 1, b: 1 });
        expect(outside.isError).toBe(true);
        expect(textOf(outside)).toContain('insufficient_scope');
      });
    });

    it('cannot widen what the agent may do', async () => {
      const res = await fetch(`${t.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          subject_token: await t.taskToken(await t.token('tasker'), {
            scope: 'tool:everything.echo',
            task_purpose: 'narrow',
          }),
          subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
          scope: 'server:everything',
          task_purpose: 'wider',
        }),
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'invalid_scope' });
    });
  });

  describe('progress and cancellation pass through', () => {
    it.each(flavours)('every progress notification of a long-running tool arrives (%s)', async (flavour) => {
      const token = await t.token('writer');
      await withAgent(connectAgent(flavour, `${t.url}/mcp`, token), async (agent) => {
        const seen: number[] = [];
        const result = await agent.callTool(
          'trigger-long-running-operation',
          { duration: 0.3, steps: 3 },
          undefined,
          { onprogress: (p) => seen.push(p.progress) },
        );
        expect(textOf(result)).toContain('Long running operation completed');
        expect(seen).toEqual([1, 2, 3]);
      });
    });

    it.each(flavours)(
      'aborting a long call ends it at once and the call is recorded as failed (%s)',
      async (flavour) => {
        const token = await t.token('writer');
        const marker = `cancel-${flavour}`;
        await withAgent(connectAgent(flavour, `${t.url}/mcp`, token), async (agent) => {
          const controller = new AbortController();
          const call = agent.callTool(
            'trigger-long-running-operation',
            { duration: 600, steps: 6000 },
            { 'io.custos/reasoning': marker },
            { signal: controller.signal, onprogress: () => controller.abort(new Error('enough')) },
          );
          await expect(call).rejects.toThrow();
          // The gateway still serves this client afterwards.
          expect(textOf(await agent.callTool('echo', { message: 'still here' }))).toBe('Echo: still here');
        });
        const writer = t.agents.get('writer')?.clientId as string;
        const event = await eventually(async () => {
          const events = await auditEvents(t, `&agent=${writer}`);
          for (const e of events.filter((x) => x.target === 'trigger-long-running-operation').reverse()) {
            const full = await auditEvent(t, e.id);
            if (full.reasoning === marker) return full;
          }
          return undefined;
        }, 'the cancelled call to be recorded');
        expect(event.outcome).toBe('failed');
      },
    );
  });

  describe('reasoning and trace context', () => {
    it.each(flavours)(
      'are recorded with the call, and io.custos/reasoning never reaches the upstream (%s)',
      async (flavour) => {
        const traceId = `${flavour === 'sdk1' ? '1' : flavour === 'sdk2-modern' ? '2' : '3'}${'0af7651916cd43dd8448eb211c80319c'.slice(1)}`;
        const traceparent = `00-${traceId}-b7ad6b7169203331-01`;
        const token = await t.token('tracer');
        const reasoning = { why: 'the user asked', step: 3 };
        await withAgent(connectAgent(flavour, `${t.url}/mcp`, token, { traceparent }), async (agent) => {
          const result = await agent.callTool(
            'echo-meta',
            { note: 'n' },
            { 'io.custos/reasoning': reasoning, 'example.com/kept': 'yes' },
          );
          const forwarded =
            (JSON.parse(textOf(result)) as { meta: Record<string, unknown> | null }).meta ?? {};
          expect(forwarded['example.com/kept']).toBe('yes');
          expect(Object.keys(forwarded).filter((k) => k.startsWith('io.custos/'))).toEqual([]);
          // The 2026-07-28 envelope is the client's conversation with Custos, not with the upstream.
          expect(Object.keys(forwarded).filter((k) => k.startsWith('io.modelcontextprotocol/'))).toEqual([]);
        });
        const [event] = (await auditEvents(t, `&trace=${traceId}`)).filter((e) => e.method === 'tools/call');
        expect(event).toMatchObject({ target: 'echo-meta', server: 'meta', traceId });
        expect((await auditEvent(t, event?.id as string)).reasoning).toEqual(reasoning);
      },
    );

    it('takes a string reasoning as it is', async () => {
      const token = await t.token('tracer');
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      await withAgent(
        connectAgent('sdk2-legacy', `${t.url}/mcp`, token, {
          traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
        }),
        (agent) => agent.callTool('echo', { message: 'why' }, { 'io.custos/reasoning': 'checking the echo' }),
      );
      const [event] = await auditEvents(t, `&trace=${traceId}`);
      expect((await auditEvent(t, event?.id as string)).reasoning).toBe('checking the echo');
    });
  });

  it("makes a call's audit event durable before the agent has the answer", async () => {
    const token = await t.token('durable');
    const db = new Database(t.dbFile, { readonly: true });
    const count = db.prepare('select count(*) as n from audit_events where trace_id = ?');
    try {
      for (const flavour of flavours) {
        for (let i = 0; i < 5; i++) {
          const traceId = `${i}${flavours.indexOf(flavour)}${'a'.repeat(30)}`;
          await withAgent(
            connectAgent(flavour, `${t.url}/mcp`, token, {
              traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
            }),
            async (agent) => {
              await agent.callTool('echo', { message: `durable ${i}` });
              expect((count.get(traceId) as { n: number }).n).toBe(1);
              const refused = await agent.callTool('no-such-tool', {});
              expect(refused.isError).toBe(true);
              expect((count.get(traceId) as { n: number }).n).toBe(2);
            },
          );
        }
      }
    } finally {
      db.close();
    }
  });

  describe('bad input gets a clear error with a stable code, and nothing half-written', () => {
    let token: string;
    beforeAll(async () => {
      token = await t.token('bad');
    });

    it('malformed JSON is a 400 JSON-RPC parse error', async () => {
      const res = await post(`${t.url}/mcp`, token, '{"jsonrpc": "2.0", "id": 1, "method": ');
      expect(res.status).toBe(400);
      expect(res.json).toMatchObject({
        jsonrpc: '2.0',
        id: null,
        error: { code: -32700, data: { code: 'bad_request' } },
      });
    });

    it('a message that is not JSON-RPC 2.0 is an invalid request', async () => {
      const res = await post(`${t.url}/mcp`, token, JSON.stringify({ id: 1, method: 'tools/list' }));
      expect(res.status).toBe(400);
      expect(res.json).toMatchObject({ error: { code: -32600 } });
    });

    it('a JSON-RPC batch is refused as an invalid request', async () => {
      const res = await post(`${t.url}/mcp`, token, JSON.stringify([initialize, { ...initialize, id: 2 }]));
      expect(res.status).toBe(400);
      expect(res.json).toMatchObject({ error: { code: -32600, message: expect.stringContaining('batch') } });
    });

    it('an unknown server is a 404 unknown_server', async () => {
      const res = await post(`${t.url}/mcp/nope`, token, JSON.stringify(initialize));
      expect(res.status).toBe(404);
      expect(res.json).toMatchObject({ error: { code: 'unknown_server' } });
    });

    it('an unknown tool is a tool error naming unknown_tool, and it is recorded', async () => {
      await withAgent(connectAgent('sdk2-legacy', `${t.url}/mcp`, token), async (agent) => {
        const result = await agent.callTool('does-not-exist', { a: 1 });
        expect(result.isError).toBe(true);
        expect(textOf(result)).toContain('unknown_tool');
        expect(result._meta?.['io.custos/denial']).toMatchObject({ code: 'unknown_tool' });
      });
      const bad = t.agents.get('bad')?.clientId as string;
      const event = (await auditEvents(t, `&agent=${bad}`)).filter((e) => e.method === 'tools/call').at(-1);
      expect(event).toMatchObject({ target: 'does-not-exist', outcome: 'denied', errorCode: 'unknown_tool' });
    });

    it('a missing token is a 401 that points at the protected resource metadata', async () => {
      const res = await post(`${t.url}/mcp`, undefined, JSON.stringify(initialize));
      expect(res.status).toBe(401);
      // Two challenges (RFC 9449 §7.1): Bearer with the metadata, and DPoP with its algorithms.
      expect(res.headers.get('www-authenticate')).toBe(
        `Bearer resource_metadata="${t.url}/.well-known/oauth-protected-resource/mcp", DPoP algs="EdDSA Ed25519 ES256 ES384 PS256 RS256"`,
      );
      expect(res.json).toMatchObject({ error: { code: 'invalid_token' } });
      const metadata = await fetch(`${t.url}/.well-known/oauth-protected-resource/mcp`);
      expect(await metadata.json()).toMatchObject({
        resource: `${t.url}/mcp`,
        authorization_servers: [t.url],
      });
    });

    it('a forged token (signature altered) is a 401 invalid_token', async () => {
      const [header, payload, signature] = token.split('.') as [string, string, string];
      const flipped = `${signature.slice(0, 10)}${signature[10] === 'A' ? 'B' : 'A'}${signature.slice(11)}`;
      for (const forged of [
        `${header}.${payload}.${flipped}`,
        `${header}.${payload}x.${signature}`,
        'not-a-jwt',
      ]) {
        const res = await post(`${t.url}/mcp`, forged, JSON.stringify(initialize));
        expect(res.status).toBe(401);
        expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
        expect(res.json).toMatchObject({ error: { code: 'invalid_token' } });
      }
    });

    it('a token for another audience, signed with the same key, is a 401 invalid_token', async () => {
      const identity = t.custos.identity;
      const elsewhere = new TokenService({
        keys: identity.keys,
        directory: identity.directory,
        clock: { now: () => Date.now() },
        issuer: t.url,
        audience: 'http://127.0.0.1:1/mcp',
      });
      const agent = identity.directory.get(t.agents.get('bad')?.clientId as string);
      const { token: foreign } = await elsewhere.issueAccessToken(agent!);
      const res = await post(`${t.url}/mcp`, foreign, JSON.stringify(initialize));
      expect(res.status).toBe(401);
      expect(res.json).toMatchObject({ error: { code: 'invalid_token' } });
      // Refused on its claims (the audience), not on its signature: the key is Custos's own.
      expect(t.logs.filter((l) => l.msg === 'authentication failed').at(-1)).toMatchObject({
        reason: 'ERR_JWT_CLAIM_VALIDATION_FAILED',
      });
    });

    it('a token of another Custos is a 401 invalid_token', async () => {
      const other = await startTestCustos({
        servers: {},
        policies: { 'none.cedar': '' },
        agents: [{ name: 'bad' }],
      });
      try {
        const res = await post(`${t.url}/mcp`, await other.token('bad'), JSON.stringify(initialize));
        expect(res.status).toBe(401);
        expect(res.json).toMatchObject({ error: { code: 'invalid_token' } });
      } finally {
        await other.close();
      }
    });

    it('a Host header that is not this loopback address is a 403 forbidden_host', async () => {
      for (const host of ['evil.example', `attacker.example:${new URL(t.url).port}`]) {
        const res = await rawPost(
          `${t.url}/mcp`,
          { host, 'content-type': 'application/json', authorization: `Bearer ${token}` },
          JSON.stringify(initialize),
        );
        expect(res.status).toBe(403);
        expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'forbidden_host' } });
      }
    });

    it('afterwards the audit log has consecutive sequence numbers and the gateway still serves', async () => {
      expectConsecutive(allSeqs(t));
      await withAgent(connectAgent('sdk2-modern', `${t.url}/mcp`, token), async (agent) => {
        expect(textOf(await agent.callTool('echo', { message: 'fine' }))).toBe('Echo: fine');
      });
      expectConsecutive(allSeqs(t));
      const health = await fetch(`${t.url}/healthz`);
      expect(health.status).toBe(200);
    });
  });
});

describe('tool names where servers collide (two server-everything instances and a _meta echo)', () => {
  let t: TestCustos;
  let token: string;

  beforeAll(async () => {
    t = await startTestCustos({
      servers: { a: everythingServer, b: everythingServer, m: metaEchoServer },
      policies: { 'all.cedar': '@id("all") permit (principal, action, resource);' },
      agents: [{ name: 'agent' }],
    });
    token = await t.token('agent');
  });
  afterAll(async () => {
    await t?.close();
  });

  it.each(flavours)(
    'prefixes only the colliding names, and each reaches its own server (%s)',
    async (flavour) => {
      await withAgent(connectAgent(flavour, `${t.url}/mcp`, token), async (agent) => {
        const names = (await agent.listTools()).map((tool) => tool.name);
        expect(names).toEqual(
          expect.arrayContaining(['a.echo', 'b.echo', 'a.get-sum', 'b.get-sum', 'echo-meta']),
        );
        expect(names).not.toContain('echo');
        expect(names).not.toContain('m.echo-meta');
        expect(textOf(await agent.callTool('a.echo', { message: 'to a' }))).toBe('Echo: to a');
        expect(textOf(await agent.callTool('b.echo', { message: 'to b' }))).toBe('Echo: to b');
        // The qualified form of a unique name works too.
        expect(JSON.parse(textOf(await agent.callTool('m.echo-meta', {})))).toHaveProperty('meta');
        // An ambiguous plain name is not guessed.
        const ambiguous = await agent.callTool('echo', { message: 'which?' });
        expect(ambiguous.isError).toBe(true);
        expect(textOf(ambiguous)).toContain('unknown_tool');
      });
      const events = (await auditEvents(t)).filter((e) => e.method === 'tools/call' && e.target === 'echo');
      expect(events.slice(-3).map((e) => [e.server, e.outcome])).toEqual([
        ['a', 'executed'],
        ['b', 'executed'],
        [null, 'denied'],
      ]);
    },
  );

  it('does not prefix behind /mcp/<server>, where nothing collides, and keeps the qualified form', async () => {
    await withAgent(connectAgent('sdk2-legacy', `${t.url}/mcp/b`, token), async (agent) => {
      const names = (await agent.listTools()).map((tool) => tool.name);
      expect(names).toContain('echo');
      expect(names.filter((n) => n.includes('.'))).toEqual([]);
      expect(textOf(await agent.callTool('echo', { message: 'plain' }))).toBe('Echo: plain');
      expect(textOf(await agent.callTool('b.echo', { message: 'qualified' }))).toBe('Echo: qualified');
      const other = await agent.callTool('a.echo', { message: 'not here' });
      expect(textOf(other)).toContain('unknown_tool');
    });
  });
});

describe('limits, expiry and policy reload (small body limit, 30 s tokens, a clock the test moves)', () => {
  let t: TestCustos;
  const clock = new ManualClock(Date.now());
  const maxBodyBytes = 4096;
  let policySetHashAtStart = '';

  beforeAll(async () => {
    t = await startTestCustos({
      servers: { everything: everythingServer, meta: metaEchoServer },
      policies: {
        'base.cedar': `
@id("base:meta")
permit (principal, action, resource in Server::"meta");
@id("base:list")
permit (principal, action == Action::"list_tools", resource);
`,
      },
      agents: [{ name: 'agent' }],
      extra: { limits: { maxBodyBytes }, tokens: { ttlSeconds: 30 } },
      clock,
    });
    policySetHashAtStart = t.custos.policy.snapshot.hash;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('an oversized body is a 413 body_too_large, on /mcp and on /oauth/token', async () => {
    const token = await t.token('agent');
    const big = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'echo-meta', arguments: { note: 'x'.repeat(maxBodyBytes) } },
    });
    const res = await post(`${t.url}/mcp`, token, big);
    expect(res.status).toBe(413);
    expect(res.json).toMatchObject({ jsonrpc: '2.0', error: { data: { code: 'body_too_large' } } });
    const oauth = await fetch(`${t.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `grant_type=client_credentials&padding=${'x'.repeat(maxBodyBytes)}`,
    });
    expect(oauth.status).toBe(413);
    expect(await oauth.json()).toMatchObject({ error: { code: 'body_too_large' } });
    // A call just under the limit still goes through.
    await withAgent(connectAgent('sdk2-legacy', `${t.url}/mcp`, token), async (agent) => {
      const result = await agent.callTool('echo-meta', { note: 'x'.repeat(maxBodyBytes - 400) });
      expect(result.isError).toBeFalsy();
    });
  });

  it('an expired token is a 401 invalid_token, for a new session and for an open one', async () => {
    const token = await t.token('agent');
    const agent = await connectAgent('sdk2-legacy', `${t.url}/mcp`, token);
    try {
      expect((await agent.callTool('echo-meta', {})).isError).toBeFalsy();
      clock.advance(31_000);
      await expect(agent.callTool('echo-meta', {})).rejects.toThrow();
    } finally {
      await agent.close().catch(() => {});
    }
    const res = await post(`${t.url}/mcp`, token, JSON.stringify(initialize));
    expect(res.status).toBe(401);
    expect(res.json).toMatchObject({ error: { code: 'invalid_token' } });
    expect(t.logs.filter((l) => l.msg === 'authentication failed').at(-1)?.reason).toMatch(/expired/i);
    // A token issued now works.
    await withAgent(connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('agent')), async (fresh) => {
      expect((await fresh.callTool('echo-meta', {})).isError).toBeFalsy();
    });
  });

  it.each([
    ['sdk2-legacy', 'echo'],
    ['sdk1', 'get-sum'],
    ['sdk2-modern', 'get-tiny-image'],
  ] as const)(
    'a policy change reaches open sessions and listeners as tools/list_changed, and the new policy applies (%s)',
    async (flavour, tool) => {
      const token = await t.token('agent');
      await withAgent(connectAgent(flavour, `${t.url}/mcp`, token), async (agent) => {
        let changes = 0;
        await agent.onToolsChanged(() => {
          changes++;
        });
        expect((await agent.listTools()).map((x) => x.name)).not.toContain(tool);
        // The GET stream opens in the background after initialize, so a change may land before
        // it does: write the policy, and write it again if no notification follows.
        await eventually(async () => {
          writeFileSync(
            join(t.policiesDir, `${flavour}.cedar`),
            `@id("${flavour}:${tool}")\npermit (principal, action == Action::"call_tool", resource in Server::"everything")\nwhen { resource.name == "${tool}" };\n`,
          );
          return eventually(() => changes > 0, 'a notification', 1000).catch(() => false);
        }, 'notifications/tools/list_changed');
        expect((await agent.listTools()).map((x) => x.name)).toContain(tool);
        const before = t.custos.policy.snapshot.hash;
        const args = { echo: { message: 'now' }, 'get-sum': { a: 1, b: 2 }, 'get-tiny-image': {} }[tool];
        const result = await agent.callTool(tool, args);
        expect(result.isError).toBeFalsy();
        // The reload changed the policy set, so the call's event commits to the new hash.
        expect(before).not.toBe(policySetHashAtStart);
        const call = (await auditEvents(t)).filter((e) => e.target === tool).at(-1);
        expect(call?.policySetHash).toBe(t.custos.policy.snapshot.hash);
      });
    },
  );

  it('a broken policy change is rejected, logged, and the policies in force stay', async () => {
    writeFileSync(
      join(t.policiesDir, 'broken.cedar'),
      'permit (principal, action, resource) when { nonsense };',
    );
    await eventually(
      () => t.logs.some((l) => l.msg === 'policy change rejected; the previous policies stay in force'),
      'the rejected policy change to be logged',
    );
    await withAgent(connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('agent')), async (agent) => {
      expect((await agent.callTool('echo-meta', {})).isError).toBeFalsy();
    });
  });

  it('afterwards the audit log has consecutive sequence numbers', () => {
    expectConsecutive(allSeqs(t));
  });
});
