import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAgent, textOf } from './support/agents.js';
import { eventually, everythingServer, startTestCustos, type TestCustos } from './support/custos.js';

const policies = {
  'analyst.cedar': `
@id("analyst:everything")
permit (principal, action, resource)
when { principal.name == "analyst" };

@id("analyst:no-env")
forbid (principal, action == Action::"call_tool", resource in Server::"everything")
when { principal.name == "analyst" && resource.name == "get-env" };
`,
};

interface Receiver {
  url: string;
  bodies: Array<{ path: string; headers: Record<string, unknown>; body: string }>;
  /** HTTP status to answer with (200 by default). */
  status: number;
  close(): Promise<void>;
}

/** A real HTTP receiver on loopback that keeps every request body. */
async function startReceiver(): Promise<Receiver> {
  const bodies: Receiver['bodies'] = [];
  const receiver = { bodies, status: 200 } as Receiver;
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      if (receiver.status === 200) bodies.push({ path: req.url ?? '', headers: req.headers, body });
      res.writeHead(receiver.status, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  receiver.url = `http://127.0.0.1:${port}`;
  receiver.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  arrayValue?: { values?: OtlpValue[] };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Array<{ key: string; value: OtlpValue }>;
  status?: { code?: number; message?: string };
}

/** Ids in OTLP/JSON are hex; accept base64 too, in case an encoder uses the protobuf JSON mapping. */
function hex(id: string | undefined): string {
  if (id === undefined || id === '') return '';
  return /^[0-9a-f]+$/.test(id) ? id : Buffer.from(id, 'base64').toString('hex');
}

function spansOf(receiver: Receiver): OtlpSpan[] {
  const spans: OtlpSpan[] = [];
  for (const { body } of receiver.bodies) {
    const request = JSON.parse(body) as {
      resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }>;
    };
    for (const rs of request.resourceSpans)
      for (const ss of rs.scopeSpans)
        for (const span of ss.spans)
          spans.push({
            ...span,
            traceId: hex(span.traceId),
            spanId: hex(span.spanId),
            parentSpanId: hex(span.parentSpanId),
          });
  }
  return spans;
}

function attr(span: OtlpSpan | undefined, key: string): unknown {
  const value = span?.attributes.find((a) => a.key === key)?.value;
  if (value === undefined) return undefined;
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map((v) => v.stringValue);
  return value.stringValue ?? value.intValue ?? value.boolValue;
}

interface OcsfRecord {
  class_uid: number;
  action: string;
  disposition: string;
  actor: { app_uid?: string; user?: { name: string }; authorizations: Array<{ policy?: { uid: string } }> };
  api: { operation: string; service?: { name: string } };
  resources?: Array<{ name: string }>;
  metadata: { uid: string; correlation_uid?: string };
  unmapped: { custos: Record<string, unknown> };
}

describe('audit exports of real traffic: OCSF to a file and a webhook, OpenTelemetry over OTLP/HTTP', () => {
  let t: TestCustos;
  let otlp: Receiver;
  let webhook: Receiver;
  let home: string;
  let ocsfFile: string;
  let agentId: string;
  const traceId = '0af7651916cd43dd8448eb211c80319c';
  const agentSpanId = 'b7ad6b7169203331';

  beforeAll(async () => {
    otlp = await startReceiver();
    webhook = await startReceiver();
    home = mkdtempSync(join(tmpdir(), 'custos-exports-'));
    ocsfFile = join(home, 'ocsf.jsonl');
    t = await startTestCustos({
      servers: { everything: everythingServer },
      policies,
      agents: [{ name: 'analyst', owner: 'dana@example.com' }],
      extra: {
        exports: {
          ocsf: {
            file: ocsfFile,
            webhook: { url: `${webhook.url}/ocsf`, headers: { authorization: 'Bearer siem' } },
          },
          otlp: { endpoint: `${otlp.url}/v1/traces`, headers: { 'x-tenant': 'acme' }, includeContent: true },
        },
      },
    });
    agentId = t.agents.get('analyst')?.clientId ?? '';
    const agent = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('analyst'), {
      traceparent: `00-${traceId}-${agentSpanId}-01`,
    });
    try {
      const echoed = await agent.callTool(
        'echo',
        { message: 'exported' },
        { 'io.custos/reasoning': 'say it' },
      );
      expect(textOf(echoed)).toContain('exported');
      expect((await agent.callTool('get-env', {})).isError).toBe(true);
    } finally {
      await agent.close();
    }
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await otlp?.close();
    await webhook?.close();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  function ocsfFromFile(): OcsfRecord[] {
    let text = '';
    try {
      text = readFileSync(ocsfFile, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as OcsfRecord);
  }

  function checkOcsf(records: OcsfRecord[]): void {
    const calls = records.filter((r) => r.api.operation === 'tools/call');
    const allowed = calls.find((r) => r.resources?.[0]?.name === 'echo');
    const denied = calls.find((r) => r.resources?.[0]?.name === 'get-env');
    expect(allowed).toMatchObject({
      class_uid: 6003,
      action: 'Allowed',
      disposition: 'Allowed',
      actor: { app_uid: agentId, user: { name: 'dana@example.com' } },
      api: { service: { name: 'everything' } },
      metadata: { correlation_uid: traceId },
    });
    expect(denied).toMatchObject({ class_uid: 6003, action: 'Denied', disposition: 'Blocked' });
    expect(denied?.actor.authorizations.map((a) => a.policy?.uid)).toContain('analyst:no-env');
    // Content stays out of SIEM records unless configured.
    expect(allowed?.unmapped.custos).not.toHaveProperty('arguments');
  }

  it('appends OCSF API Activity records to the configured file as calls happen', async () => {
    const records = await eventually(() => {
      const r = ocsfFromFile();
      return r.filter((x) => x.api.operation === 'tools/call').length >= 2 && r;
    }, 'OCSF records in the file');
    checkOcsf(records);
  });

  it('posts the same records to the webhook, in JSON array batches with the configured headers', async () => {
    await eventually(
      () =>
        webhook.bodies
          .flatMap((b) => JSON.parse(b.body) as OcsfRecord[])
          .filter((r) => r.api.operation === 'tools/call').length >= 2,
      'OCSF records at the webhook',
    );
    expect(webhook.bodies[0]?.path).toBe('/ocsf');
    expect(webhook.bodies[0]?.headers.authorization).toBe('Bearer siem');
    checkOcsf(webhook.bodies.flatMap((b) => JSON.parse(b.body) as OcsfRecord[]));
  });

  it('sends invoke_agent and execute_tool spans with GenAI attributes, nested under the agent traceparent', async () => {
    const spans = await eventually(() => {
      const s = spansOf(otlp);
      return s.filter((x) => x.name.startsWith('execute_tool')).length >= 2 && s;
    }, 'spans at the OTLP receiver');
    expect(otlp.bodies[0]?.path).toBe('/v1/traces');
    expect(otlp.bodies[0]?.headers['x-tenant']).toBe('acme');
    const echo = spans.find((s) => s.name === 'execute_tool echo');
    const env = spans.find((s) => s.name === 'execute_tool get-env');
    const invoke = spans.find((s) => s.spanId === echo?.parentSpanId);
    expect(invoke?.name).toBe('invoke_agent analyst');
    expect(attr(invoke, 'gen_ai.operation.name')).toBe('invoke_agent');
    expect(attr(invoke, 'gen_ai.agent.id')).toBe(agentId);
    expect(attr(invoke, 'gen_ai.agent.name')).toBe('analyst');
    expect(attr(invoke, 'custos.reasoning')).toBe('say it');
    // The agent's own span is the parent; the trace is the agent's.
    expect(invoke?.traceId).toBe(traceId);
    expect(invoke?.parentSpanId).toBe(agentSpanId);
    expect(echo?.traceId).toBe(traceId);
    expect(attr(echo, 'gen_ai.operation.name')).toBe('execute_tool');
    expect(attr(echo, 'gen_ai.tool.name')).toBe('echo');
    expect(attr(echo, 'gen_ai.agent.id')).toBe(agentId);
    expect(attr(echo, 'mcp.method.name')).toBe('tools/call');
    expect(JSON.parse(String(attr(echo, 'gen_ai.tool.call.arguments')))).toEqual({ message: 'exported' });
    expect(String(attr(echo, 'gen_ai.tool.call.result'))).toContain('exported');
    expect(attr(echo, 'custos.policy_ids')).toEqual(['analyst:everything']);
    expect(attr(env, 'custos.decision')).toBe('deny');
    expect(attr(env, 'error.type')).toBe('policy_denied');
    expect(env?.status?.code).toBe(2);
  });

  it('takes the trace context from params._meta.traceparent (SEP-414) when the request has no header', async () => {
    const metaTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const agent = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('analyst'));
    try {
      await agent.callTool(
        'echo',
        { message: 'meta' },
        { traceparent: `00-${metaTrace}-00f067aa0ba902b7-01` },
      );
    } finally {
      await agent.close();
    }
    const invoke = await eventually(
      () => spansOf(otlp).find((s) => s.traceId === metaTrace && s.name.startsWith('invoke_agent')),
      'the span of the _meta traceparent',
    );
    expect(invoke.parentSpanId).toBe('00f067aa0ba902b7');
  });

  it('counts drops in /metrics when a destination refuses, without failing or holding the call', async () => {
    webhook.status = 400;
    const agent = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('analyst'));
    try {
      expect(textOf(await agent.callTool('echo', { message: 'still answered' }))).toContain('still answered');
    } finally {
      await agent.close();
    }
    const metrics = await eventually(async () => {
      const text = await (await fetch(`${t.url}/metrics`)).text();
      return /custos_audit_export_dropped_total\{exporter="ocsf-webhook"\} [1-9]/.test(text) && text;
    }, 'the webhook drop in /metrics');
    expect(metrics).toMatch(/custos_audit_export_delivered\{exporter="ocsf-file"\} [1-9]/);
    expect(metrics).toMatch(/custos_audit_export_delivered\{exporter="otlp"\} [1-9]/);
    expect(
      t.logs.some((l) => l.msg === 'audit export dropped records' && l.exporter === 'ocsf-webhook'),
    ).toBe(true);
    const state = await t.admin<{ exporters: Record<string, { delivered: number; dropped: number }> }>(
      '/api/v1/audit/exporters',
    );
    expect(Object.keys(state.exporters).sort()).toEqual(['ocsf-file', 'ocsf-webhook', 'otlp']);
    expect(state.exporters['ocsf-webhook']?.dropped).toBeGreaterThan(0);
    expect(state.exporters.otlp?.delivered).toBeGreaterThan(0);
  });

  it('rejects an exports section with an unknown key or a bad URL at start, naming the key', async () => {
    const { buildConfig } = await import('../src/core/config.js');
    expect(() => buildConfig({ exports: { otlp: { endpoint: 'not a url' } } }, home, { env: {} })).toThrow(
      /exports\.otlp\.endpoint/,
    );
    expect(() => buildConfig({ exports: { ocsf: { fil: 'x' } } }, home, { env: {} })).toThrow(
      /exports\.ocsf\.fil: unknown key/,
    );
  });
});
