import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from '../../test/support/stores.js';
import { systemClock } from '../core/clock.js';
import { IdGenerator } from '../core/ids.js';
import { AgentDirectory, AgentService } from '../identity/index.js';
import type { Store } from '../store/index.js';
import { adminTokenActor } from './actor.js';
import { consoleDataRoutes } from './admin-console.js';
import { sendError } from './errors.js';

function auditRow(seq: number, effect: 'allow' | 'deny') {
  return {
    seq,
    id: `evt_${seq}`,
    time: systemClock.now(),
    agent_id: null,
    owner: null,
    task_id: null,
    method: 'tools/call',
    server: 'everything',
    target: 'echo',
    args_hash: null,
    effect,
    policy_ids: '[]',
    reasons: '[]',
    outcome: effect === 'allow' ? 'executed' : 'denied',
    error_code: null,
    latency_us: 10,
    trace_id: null,
  };
}

/** Read server-sent events from a streaming response until `until` says stop. */
async function readEvents(
  body: ReadableStream<Uint8Array>,
  until: (events: Array<{ event: string; data: string }>) => boolean,
): Promise<Array<{ event: string; data: string }>> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const events: Array<{ event: string; data: string }> = [];
  let buffer = '';
  while (!until(events)) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event !== undefined && data !== undefined) events.push({ event, data });
      end = buffer.indexOf('\n\n');
    }
  }
  await reader.cancel();
  return events;
}

await describeEachStore('console_data', (current) => {
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let pending = ['apr_1'];

  beforeAll(async () => {
    store = current().store;
    const ids = new IdGenerator(systemClock);
    const agents = new AgentService({ store, clock: systemClock, ids, directory: new AgentDirectory(store) });
    await agents.add({ name: 'one', owner: 'o@example.com', purpose: 'testing' });
    app = Fastify();
    app.setErrorHandler((error, _request, reply) => sendError(reply, error));
    app.register(
      async (api) => {
        api.addHook('onRequest', async (request) => {
          request.actor = adminTokenActor;
        });
        consoleDataRoutes({
          store,
          agents,
          clock: systemClock,
          pollMs: 20,
          watch: { approvals: async () => pending },
          serverTools: (name) =>
            name === 'everything' ? [{ name: 'echo', description: 'echoes' }] : undefined,
        })(api);
      },
      { prefix: '/api/v1' },
    );
    url = await app.listen({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await app.close();
  });

  it('streams new audit events and watched changes, not what happened before it connected', async () => {
    await store.insertMany({ audit_events: [auditRow(1, 'allow')] });
    const controller = new AbortController();
    const res = await fetch(`${url}/api/v1/stream`, { signal: controller.signal });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const body = res.body;
    if (body === null) throw new Error('no body');
    const seen = readEvents(body, (events) => events.filter((e) => e.event !== 'ready').length >= 3);
    // Give the stream a poll to start from seq 1, then change things.
    await new Promise((r) => setTimeout(r, 100));
    await store.insertMany({ audit_events: [auditRow(2, 'deny'), auditRow(3, 'allow')] });
    pending = ['apr_1', 'apr_2'];
    const events = await seen;
    controller.abort();
    expect(events[0]).toMatchObject({ event: 'ready', data: JSON.stringify({ seq: 1 }) });
    const audit = events.filter((e) => e.event === 'audit').map((e) => JSON.parse(e.data) as { seq: number });
    expect(audit.map((e) => e.seq)).toEqual([2, 3]);
    expect(events.filter((e) => e.event === 'change').map((e) => e.data)).toEqual([
      JSON.stringify({ topic: 'approvals' }),
    ]);
  });

  it('counts requests and denials per minute over the last hour, and agents by status', async () => {
    const res = await fetch(`${url}/api/v1/overview`);
    const overview = (await res.json()) as {
      agents: { total: number; active: number };
      perMinute: Array<{ calls: number; denied: number }>;
      lastHour: { calls: number; denied: number };
    };
    expect(overview.agents).toMatchObject({ total: 1, active: 1 });
    expect(overview.perMinute.length).toBeGreaterThanOrEqual(60);
    expect(overview.lastHour).toEqual({ calls: 3, denied: 1 });
  });

  it('lists a server’s tools, and answers not_found for an unknown server', async () => {
    const ok = await fetch(`${url}/api/v1/servers/everything/tools`);
    expect(await ok.json()).toEqual({ tools: [{ name: 'echo', description: 'echoes', annotations: {} }] });
    const missing = await fetch(`${url}/api/v1/servers/nope/tools`);
    expect(missing.status).toBe(404);
  });
});
