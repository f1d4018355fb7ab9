// Audit exports benchmark: the event-loop time the exporters take per audit event (building the
// OCSF record, writing it to a file sink and a webhook sink, building the two OpenTelemetry
// spans), and how long until a real loopback collector has received everything. The exporters
// run after the calls are answered, but on the same thread, so this is what they cost the
// gateway's CPU. Needs `npm run build` first (imports dist/).
//   node bench/exports.js            EXPORTS_BENCH_EVENTS sets the event count (default 50,000)

import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startExporters } from '../dist/audit/exporters.js';

const EVENTS = Number(process.env.EXPORTS_BENCH_EVENTS ?? 50_000);
const BATCH = 100; // events per durable batch handed over

function makeEvent(seq) {
  const denied = seq % 7 === 0;
  return {
    id: `evt_${String(seq).padStart(26, '0')}`,
    seq,
    time: 1_767_225_600_000 + seq,
    agentId: `agt_bench${seq % 50}`,
    owner: `owner${seq % 50}@example.com`,
    taskId: `tsk_bench${seq % 500}`,
    method: 'tools/call',
    server: 'files',
    target: 'read_file',
    argsHash: 'ab'.repeat(32),
    effect: denied ? 'deny' : 'allow',
    policyIds: [denied ? 'files:no-secrets' : 'files:read'],
    reasons: denied ? ['the path is under /secrets'] : [],
    outcome: denied ? 'denied' : 'executed',
    errorCode: denied ? 'policy_denied' : null,
    latencyUs: 850,
    traceId: '0af7651916cd43dd8448eb211c80319c',
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    arguments: { path: `/reports/${seq}.txt` },
    reasoning: 'the user asked for the report',
    result: denied ? undefined : { content: [{ type: 'text', text: `report ${seq}` }] },
  };
}

/** A loopback collector counting OCSF records and OTLP spans it receives. */
async function collector() {
  const got = { ocsf: 0, spans: 0 };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      if (req.url === '/ocsf') got.ocsf += body.length;
      else
        for (const rs of body.resourceSpans ?? [])
          for (const ss of rs.scopeSpans ?? []) got.spans += (ss.spans ?? []).length;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, got, close: () => server.close() };
}

async function run(name, config, expectOcsf, expectSpans, c) {
  const home = mkdtempSync(join(tmpdir(), 'custos-bench-exports-'));
  const drops = [];
  const exporters = startExporters(config(home), {
    baseDir: home,
    product: { name: 'custos', version: 'bench' },
    onDrop: (exporter, count, reason) => drops.push({ exporter, count, reason }),
  });
  c.got.ocsf = 0;
  c.got.spans = 0;
  const events = Array.from({ length: EVENTS }, (_, i) => makeEvent(i + 1));
  let busy = 0n;
  const start = process.hrtime.bigint();
  for (let i = 0; i < events.length; i += BATCH) {
    const t = process.hrtime.bigint();
    exporters.write(events.slice(i, i + BATCH));
    busy += process.hrtime.bigint() - t;
    // Let the sinks and the HTTP client work between batches, as between group commits.
    await new Promise((r) => setImmediate(r));
  }
  const deadline = Date.now() + 120_000;
  while (
    (c.got.ocsf < expectOcsf || c.got.spans < expectSpans) &&
    Date.now() < deadline &&
    drops.length === 0
  ) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const delivered = Number(process.hrtime.bigint() - start) / 1e9;
  await exporters.close();
  rmSync(home, { recursive: true, force: true });
  const dropped = drops.reduce((n, d) => n + d.count, 0);
  return {
    name,
    events: EVENTS,
    writeMicrosPerEvent: Number(busy) / 1000 / EVENTS,
    deliveredSeconds: delivered,
    eventsPerSecondDelivered: EVENTS / delivered,
    dropped,
  };
}

const c = await collector();
const spans = EVENTS + EVENTS; // invoke_agent + execute_tool per tools/call
const results = [
  await run('ocsf file', () => ({ ocsf: { file: 'ocsf.jsonl', includeContent: false } }), 0, 0, c),
  await run(
    'ocsf webhook',
    () => ({ ocsf: { webhook: { url: `${c.url}/ocsf`, headers: {} }, includeContent: false } }),
    EVENTS,
    0,
    c,
  ),
  await run(
    'otlp (content off)',
    () => ({
      otlp: { endpoint: `${c.url}/v1/traces`, headers: {}, includeContent: false, serviceName: 'custos' },
    }),
    0,
    spans,
    c,
  ),
  await run(
    'otlp (content on)',
    () => ({
      otlp: { endpoint: `${c.url}/v1/traces`, headers: {}, includeContent: true, serviceName: 'custos' },
    }),
    0,
    spans,
    c,
  ),
  await run(
    'all three',
    (home) => ({
      ocsf: {
        file: join(home, 'o.jsonl'),
        webhook: { url: `${c.url}/ocsf`, headers: {} },
        includeContent: false,
      },
      otlp: { endpoint: `${c.url}/v1/traces`, headers: {}, includeContent: true, serviceName: 'custos' },
    }),
    EVENTS,
    spans,
    c,
  ),
];
c.close();

const rows = results.map(
  (r) =>
    `| ${r.name.padEnd(18)} | ${String(r.events).padStart(7)} | ${r.writeMicrosPerEvent.toFixed(1).padStart(10)} | ${r.deliveredSeconds.toFixed(2).padStart(11)} | ${Math.round(r.eventsPerSecondDelivered).toString().padStart(12)} | ${String(r.dropped).padStart(7)} |`,
);
console.log(
  [
    '| exporter           |  events | write µs/ev | delivered s | delivered/s | dropped |',
    '| ------------------ | ------: | ---------: | ----------: | ----------: | ------: |',
    ...rows,
  ].join('\n'),
);
const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'exports.json');
await mkdir(dirname(out), { recursive: true });
await writeFile(out, `${JSON.stringify({ node: process.version, results }, null, 2)}\n`);
