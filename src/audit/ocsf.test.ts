import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditEvent } from './events.js';
import { FileOcsfSink, type OcsfApiActivity, toOcsf, WebhookOcsfSink } from './ocsf.js';

const product = { name: 'custos', version: '0.1.0' };

function auditEvent(overrides: Partial<AuditEvent> = {}): AuditEvent {
  return {
    id: 'evt-1',
    seq: 7,
    time: 1_780_000_000_123,
    agentId: 'agt-support',
    owner: 'alice@example.com',
    taskId: 'task-9',
    method: 'tools/call',
    server: 'tickets',
    target: 'get_ticket',
    argsHash: 'ab'.repeat(32),
    effect: 'allow',
    policyIds: ['support-read'],
    reasons: [],
    outcome: 'executed',
    errorCode: null,
    latencyUs: 12_400,
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    policySetHash: null,
    approvalId: null,
    arguments: { id: 'T-1', note: 'customer SSN 123-45-6789' },
    reasoning: 'the customer asked about their ticket',
    result: { content: [{ type: 'text', text: 'open' }] },
    ...overrides,
  };
}

describe('toOcsf', () => {
  it('maps an executed tool call to a successful API Activity with the agent as actor', () => {
    const record = toOcsf(auditEvent(), product);
    expect(record).toMatchObject({
      class_uid: 6003,
      category_uid: 6,
      activity_id: 99,
      type_uid: 600399,
      severity_id: 1,
      time: 1_780_000_000_123,
      duration: 12,
      status_id: 1,
      status: 'Success',
      action_id: 1,
      disposition_id: 1,
      disposition: 'Allowed',
      actor: {
        app_uid: 'agt-support',
        user: { name: 'alice@example.com', email_addr: 'alice@example.com' },
        authorizations: [{ decision: 'Allowed', policy: { uid: 'support-read' } }],
      },
      api: { operation: 'tools/call', service: { name: 'tickets' } },
      resources: [{ name: 'get_ticket', type: 'MCP Tool' }],
      metadata: {
        version: '1.3.0',
        product: { name: 'custos', version: '0.1.0' },
        uid: 'evt-1',
        sequence: 7,
        correlation_uid: '4bf92f3577b34da6a3ce929d0e0e4736',
      },
      unmapped: { custos: { task_id: 'task-9', args_hash: 'ab'.repeat(32), latency_us: 12_400 } },
    });
    expect(record.status_code).toBeUndefined();
  });

  it('carries the approval id and policy set hash when the event has them', () => {
    const event = { ...auditEvent(), approvalId: 'apr_1', policySetHash: 'ab'.repeat(32) } as AuditEvent;
    expect(toOcsf(event, product).unmapped.custos).toMatchObject({
      approval_id: 'apr_1',
      policy_set_hash: 'ab'.repeat(32),
    });
    expect(toOcsf(auditEvent(), product).unmapped.custos).not.toHaveProperty('approval_id');
  });

  it('maps a read method to activity Read', () => {
    const record = toOcsf(auditEvent({ method: 'resources/read', target: 'file:///a.txt' }), product);
    expect(record.activity_id).toBe(2);
    expect(record.type_uid).toBe(600302);
    expect(record.resources).toEqual([{ name: 'file:///a.txt', type: 'MCP Resource' }]);
  });

  it('expresses a policy denial as a blocked, denied authorization naming the policies', () => {
    const record = toOcsf(
      auditEvent({
        effect: 'deny',
        outcome: 'denied',
        policyIds: ['no-prod-writes', 'business-hours'],
        reasons: ['production is read-only for agents'],
        errorCode: 'policy_denied',
        result: undefined,
      }),
      product,
    );
    expect(record).toMatchObject({
      status_id: 2,
      status: 'Failure',
      status_code: 'policy_denied',
      status_detail: 'production is read-only for agents',
      action_id: 2,
      action: 'Denied',
      disposition_id: 2,
      disposition: 'Blocked',
      severity_id: 3,
    });
    expect(record.actor.authorizations).toEqual([
      { decision: 'Denied', policy: { uid: 'no-prod-writes', name: 'no-prod-writes' } },
      { decision: 'Denied', policy: { uid: 'business-hours', name: 'business-hours' } },
    ]);
    expect(record.message).toContain('denied by no-prod-writes, business-hours');
  });

  it('records a default deny with no determining policy as a bare Denied authorization', () => {
    const record = toOcsf(auditEvent({ effect: 'deny', outcome: 'denied', policyIds: [] }), product);
    expect(record.actor.authorizations).toEqual([{ decision: 'Denied' }]);
  });

  it('maps an allowed call that failed upstream to Failure with disposition Allowed', () => {
    const record = toOcsf(auditEvent({ outcome: 'failed', errorCode: 'upstream_timeout' }), product);
    expect(record).toMatchObject({
      status_id: 2,
      status: 'Failure',
      status_code: 'upstream_timeout',
      action_id: 1,
      disposition: 'Allowed',
      severity_id: 2,
    });
  });

  it('leaves out arguments, reasoning and results unless asked', () => {
    const plain = JSON.stringify(toOcsf(auditEvent(), product));
    expect(plain).not.toContain('123-45-6789');
    expect(plain).not.toContain('the customer asked');
    expect(plain).not.toContain('"open"');

    const full = toOcsf(auditEvent(), product, { includeContent: true });
    expect(full.unmapped.custos).toMatchObject({
      arguments: { id: 'T-1' },
      reasoning: 'the customer asked about their ticket',
    });
  });

  it('omits actor fields, service and resources the event does not have', () => {
    const record = toOcsf(
      auditEvent({ agentId: null, owner: null, server: null, target: null, method: 'tools/list' }),
      product,
    );
    expect(record.actor.app_uid).toBeUndefined();
    expect(record.actor.user).toBeUndefined();
    expect(record.api).toEqual({ operation: 'tools/list' });
    expect(record.resources).toBeUndefined();
    expect(record.src_endpoint.name).toBe('unknown');
  });
});

describe('FileOcsfSink', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('appends one valid JSON line per record, in order, to an existing file', async () => {
    dir = mkdtempSync(join(tmpdir(), 'custos-ocsf-'));
    const path = join(dir, 'ocsf.jsonl');
    const first = new FileOcsfSink(path);
    first.write(toOcsf(auditEvent({ id: 'e0', seq: 0 }), product));
    await first.close();

    const sink = new FileOcsfSink(path);
    for (let i = 1; i <= 50; i++) sink.write(toOcsf(auditEvent({ id: `e${i}`, seq: i }), product));
    await sink.flush();
    expect(sink.stats()).toEqual({ delivered: 50, dropped: 0, pending: 0, lastError: null });
    await sink.close();

    const lines = readFileSync(path, 'utf8').split('\n');
    expect(lines.pop()).toBe('');
    const records = lines.map((line) => JSON.parse(line) as OcsfApiActivity);
    expect(records.map((r) => r.metadata.uid)).toEqual(Array.from({ length: 51 }, (_, i) => `e${i}`));
    expect(records.every((r) => r.class_uid === 6003)).toBe(true);
  });

  it('counts writes after close as dropped instead of throwing', async () => {
    dir = mkdtempSync(join(tmpdir(), 'custos-ocsf-'));
    const drops: string[] = [];
    const sink = new FileOcsfSink(join(dir, 'ocsf.jsonl'), { onDrop: (_n, reason) => drops.push(reason) });
    await sink.close();
    sink.write(toOcsf(auditEvent(), product));
    expect(sink.stats().dropped).toBe(1);
    expect(drops).toEqual(['sink closed']);
  });
});

interface Collector {
  url: string;
  batches: OcsfApiActivity[][];
  server: Server;
}

/** A real HTTP collector on loopback answering with the given status codes in turn (then 200). */
async function startCollector(statuses: number[] = []): Promise<Collector> {
  const batches: OcsfApiActivity[][] = [];
  const queue = [...statuses];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const status = queue.shift() ?? 200;
      if (status === 200)
        batches.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as OcsfApiActivity[]);
      res.statusCode = status;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/ocsf`, batches, server };
}

describe('WebhookOcsfSink', () => {
  let collector: Collector | undefined;
  afterEach(async () => {
    await new Promise((resolve) => collector?.server.close(resolve) ?? resolve(undefined));
    collector = undefined;
  });

  it('posts records in batches, in order, as JSON', async () => {
    collector = await startCollector();
    const sink = new WebhookOcsfSink({ url: collector.url, batchSize: 4, flushIntervalMs: 5 });
    for (let i = 0; i < 10; i++) sink.write(toOcsf(auditEvent({ id: `e${i}`, seq: i }), product));
    await sink.flush();
    expect(collector.batches.map((b) => b.length)).toEqual([4, 4, 2]);
    expect(collector.batches.flat().map((r) => r.metadata.uid)).toEqual(
      Array.from({ length: 10 }, (_, i) => `e${i}`),
    );
    expect(sink.stats()).toEqual({ delivered: 10, dropped: 0, pending: 0, lastError: null });
    await sink.close();
  });

  it('sends a partial batch after the flush interval without an explicit flush', async () => {
    collector = await startCollector();
    const sink = new WebhookOcsfSink({ url: collector.url, batchSize: 100, flushIntervalMs: 10 });
    sink.write(toOcsf(auditEvent(), product));
    await expect.poll(() => collector?.batches.length, { timeout: 2000 }).toBe(1);
    await sink.close();
  });

  it('delivers a batch after a retry when the collector answers 500 then 200', async () => {
    collector = await startCollector([500]);
    const sink = new WebhookOcsfSink({ url: collector.url, batchSize: 10, backoffMs: 5 });
    sink.write(toOcsf(auditEvent({ id: 'retried' }), product));
    await sink.flush();
    expect(collector.batches.flat().map((r) => r.metadata.uid)).toEqual(['retried']);
    expect(sink.stats()).toMatchObject({ delivered: 1, dropped: 0, pending: 0, lastError: 'HTTP 500' });
    await sink.close();
  });

  it('drops and reports a batch once retries are exhausted', async () => {
    collector = await startCollector([503, 503, 503]);
    const drops: Array<[number, string]> = [];
    const sink = new WebhookOcsfSink({
      url: collector.url,
      maxRetries: 2,
      backoffMs: 1,
      onDrop: (n, reason) => drops.push([n, reason]),
    });
    sink.write(toOcsf(auditEvent(), product));
    sink.write(toOcsf(auditEvent(), product));
    await sink.flush();
    expect(drops).toEqual([[2, 'webhook: HTTP 503']]);
    expect(sink.stats()).toMatchObject({ delivered: 0, dropped: 2, pending: 0 });
    expect(collector.batches).toEqual([]);
  });

  it('does not retry a 4xx rejection other than 429', async () => {
    collector = await startCollector([400]);
    const sink = new WebhookOcsfSink({ url: collector.url, backoffMs: 1 });
    sink.write(toOcsf(auditEvent(), product));
    await sink.flush();
    expect(sink.stats()).toMatchObject({ delivered: 0, dropped: 1, lastError: 'HTTP 400' });
    // The next batch goes through: the 400 was not retried and consumed only one answer.
    sink.write(toOcsf(auditEvent({ id: 'next' }), product));
    await sink.flush();
    expect(collector.batches.flat().map((r) => r.metadata.uid)).toEqual(['next']);
  });

  it('drops writes beyond the bounded queue without blocking the caller', async () => {
    const drops: number[] = [];
    // Nothing listens on this port: every attempt fails fast, and retries are slow.
    const sink = new WebhookOcsfSink({
      url: 'http://127.0.0.1:9/ocsf',
      maxQueue: 3,
      batchSize: 100,
      flushIntervalMs: 60_000,
      maxRetries: 0,
      onDrop: (n) => drops.push(n),
    });
    const started = performance.now();
    for (let i = 0; i < 5; i++) sink.write(toOcsf(auditEvent({ id: `e${i}` }), product));
    expect(performance.now() - started).toBeLessThan(50);
    expect(sink.stats()).toMatchObject({ dropped: 2, pending: 3 });
    await sink.flush();
    expect(sink.stats()).toMatchObject({ delivered: 0, dropped: 5, pending: 0 });
    expect(drops).toEqual([1, 1, 3]);
  });
});
