import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditEvent } from './events.js';
import { OtlpTraceExporter } from './otlp.js';

interface Span {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client. */
  kind: number;
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
}

const event: AuditEvent = {
  id: 'evt_1',
  seq: 1,
  time: Date.UTC(2026, 10, 28, 9),
  agentId: 'agt_1',
  owner: 'dana@example.com',
  taskId: 'tsk_1',
  method: 'tools/call',
  server: 'files',
  target: 'read_file',
  argsHash: null,
  effect: 'allow',
  policyIds: ['files:read'],
  reasons: [],
  outcome: 'executed',
  errorCode: null,
  latencyUs: 1500,
  traceId: null,
  policySetHash: null,
  approvalId: null,
  arguments: { path: '/a' },
  result: { content: [] },
};

const keys = (span: Span | undefined) => span?.attributes.map((a) => a.key) ?? [];

describe('OtlpTraceExporter', () => {
  let server: Server;
  let url: string;
  let spans: Span[];

  beforeEach(async () => {
    spans = [];
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        const parsed = JSON.parse(body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Span[] }> }> };
        for (const rs of parsed.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('leaves arguments, results and reasoning out unless configured; without a traceparent the call is a root span', async () => {
    const exporter = new OtlpTraceExporter({ endpoint: url });
    exporter.write([{ ...event, reasoning: 'because' }]);
    await exporter.close();
    const invoke = spans.find((s) => s.name === 'invoke_agent agt_1');
    const tool = spans.find((s) => s.name === 'execute_tool read_file');
    expect(invoke?.parentSpanId ?? '').toBe('');
    expect(tool?.parentSpanId).toBe(invoke?.spanId);
    // The GenAI conventions: invoke_agent as Custos serves the agent's request, execute_tool INTERNAL.
    expect([invoke?.kind, tool?.kind]).toEqual([2, 1]);
    expect(keys(invoke)).toContain('gen_ai.conversation.id');
    for (const key of ['gen_ai.tool.call.arguments', 'gen_ai.tool.call.result', 'custos.reasoning'])
      expect([...keys(invoke), ...keys(tool)]).not.toContain(key);
    expect(exporter.stats()).toMatchObject({ delivered: 2, dropped: 0, pending: 0 });
  });

  it('nests under a sampled traceparent and exports nothing for an unsampled one', async () => {
    const exporter = new OtlpTraceExporter({ endpoint: url });
    const sampled = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const unsampled = '00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-00';
    exporter.write([
      { ...event, traceId: sampled.split('-')[1] ?? null, traceparent: sampled },
      { ...event, id: 'evt_2', seq: 2, traceId: unsampled.split('-')[1] ?? null, traceparent: unsampled },
    ]);
    await exporter.close();
    expect(spans.map((s) => s.traceId)).toEqual([
      '0af7651916cd43dd8448eb211c80319c',
      '0af7651916cd43dd8448eb211c80319c',
    ]);
    expect(spans.find((s) => s.name.startsWith('invoke_agent'))?.parentSpanId).toBe('b7ad6b7169203331');
    expect(exporter.stats()).toMatchObject({ delivered: 2, dropped: 0, pending: 0 });
  });

  it('gives a non-tool method only the invoke_agent span, named after the agent name when known', async () => {
    const exporter = new OtlpTraceExporter({
      endpoint: url,
      agentName: (id) => (id === 'agt_1' ? 'reader' : undefined),
    });
    exporter.write([{ ...event, method: 'tools/list', target: null }]);
    await exporter.close();
    expect(spans.map((s) => s.name)).toEqual(['invoke_agent reader']);
  });

  it('drops and counts spans beyond its queue, and after close, instead of growing or throwing', async () => {
    const drops: Array<[number, string]> = [];
    const exporter = new OtlpTraceExporter({
      endpoint: url,
      maxQueue: 2,
      onDrop: (n, why) => drops.push([n, why]),
    });
    exporter.write([event, { ...event, id: 'evt_2', seq: 2 }]);
    expect(drops).toEqual([[2, 'otlp queue full']]);
    await exporter.close();
    exporter.write([event]);
    expect(drops.at(-1)).toEqual([2, 'otlp exporter closed']);
    expect(exporter.stats()).toMatchObject({ delivered: 2, dropped: 4 });
  });
});
