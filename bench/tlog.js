// Transparency log benchmark: appending audit events with tree integration through a
// real SQLite store (events and leaves in one transaction per batch, as the recorder's
// group commit does), then exporting a bundle and verifying it offline.
// Needs `npm run build` first (imports dist/). TLOG_BENCH_EVENTS sets the event count
// (default 1,000,000); with fewer, the 1M verification time is extrapolated linearly.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { exportBundle } from '../dist/audit/bundle.js';
import { TransparencyLog } from '../dist/audit/tlog.js';
import { verifyBundle } from '../dist/audit/verify-bundle.js';
import { openStore } from '../dist/store/index.js';

const EVENTS = Number(process.env.TLOG_BENCH_EVENTS ?? 1_000_000);
const BATCH = 1000; // events per transaction, like a busy group commit
const MILLION = 1_000_000;

const targets = { appendPerSecond: 20_000, verifyMillionSeconds: 10 };

const seconds = (start) => Number(process.hrtime.bigint() - start) / 1e9;

function makeEvent(seq) {
  const denied = seq % 7 === 0;
  return {
    id: `evt_${String(seq).padStart(26, '0')}`,
    seq,
    time: 1_767_225_600_000 + seq,
    agentId: `agt_01jbench${seq % 50}`,
    owner: `owner${seq % 50}@example.com`,
    taskId: `task_01jbench${seq % 500}`,
    method: 'tools/call',
    server: 'files',
    target: 'read_file',
    argsHash: null,
    effect: denied ? 'deny' : 'allow',
    policyIds: ['base', 'files-readonly'],
    reasons: denied ? ['forbid: path outside sandbox'] : [],
    outcome: denied ? 'denied' : 'executed',
    errorCode: denied ? 'policy_denied' : null,
    latencyUs: 250,
    traceId: null,
    arguments: { path: `/sandbox/reports/${seq}.txt` },
    reasoning: `The user asked for report ${seq}; reading it is needed to answer.`,
    ...(denied ? {} : { result: { content: [{ type: 'text', text: `contents of report ${seq}` }] } }),
  };
}

function toRow(e) {
  return {
    seq: e.seq,
    id: e.id,
    time: e.time,
    agent_id: e.agentId,
    owner: e.owner,
    task_id: e.taskId,
    method: e.method,
    server: e.server,
    target: e.target,
    args_hash: e.argsHash,
    effect: e.effect,
    policy_ids: JSON.stringify(e.policyIds),
    reasons: JSON.stringify(e.reasons),
    outcome: e.outcome,
    error_code: e.errorCode,
    latency_us: e.latencyUs,
    trace_id: e.traceId,
  };
}

export async function run() {
  const dir = mkdtempSync(join(tmpdir(), 'custos-bench-tlog-'));
  const store = await openStore(`sqlite:${join(dir, 'custos.db')}`);
  try {
    const log = await TransparencyLog.open(store, { checkpointIntervalMs: 1000 });

    // 1. Appending: events + leaves + content in one transaction per batch.
    let appendSeconds = 0;
    for (let seq = 1; seq <= EVENTS; seq += BATCH) {
      const events = [];
      for (let s = seq; s < seq + BATCH && s <= EVENTS; s++) events.push(makeEvent(s));
      const start = process.hrtime.bigint();
      let pending;
      await store.db.transaction().execute(async (trx) => {
        await trx.insertInto('audit_events').values(events.map(toRow)).execute();
        pending = await log.appendInTransaction(trx, events);
      });
      log.commit(pending);
      appendSeconds += seconds(start);
    }
    await log.checkpointNow();

    // 2. Export everything, then verify it offline.
    const out = join(dir, 'bundle');
    let start = process.hrtime.bigint();
    const summary = await exportBundle(store, log, { outDir: out });
    const exportSeconds = seconds(start);
    globalThis.gc?.();
    start = process.hrtime.bigint();
    const verified = await verifyBundle(out, { verifierKey: log.verifierKey });
    const verifySeconds = seconds(start);
    if (!verified.ok) throw new Error(`bundle did not verify: ${verified.problem}`);
    if (verified.events !== EVENTS) throw new Error(`verified ${verified.events} events, want ${EVENTS}`);

    // 3. Restart: reopening resumes from the last checkpoint's frontier.
    start = process.hrtime.bigint();
    const reopened = await TransparencyLog.open(store);
    const reopenSeconds = seconds(start);
    if (!reopened.root().equals(log.root())) throw new Error('reopened log has a different root');
    await reopened.close();
    await log.close();

    const perMillion = (verifySeconds * MILLION) / EVENTS;
    const metrics = [
      {
        metric: `append with tree integration (${EVENTS.toLocaleString('en-US')} events, batches of ${BATCH}, SQLite)`,
        value: EVENTS / appendSeconds,
        unit: 'events/s',
        target: `>= ${targets.appendPerSecond}`,
        pass: EVENTS / appendSeconds >= targets.appendPerSecond,
      },
      {
        metric: `export bundle (${summary.events.toLocaleString('en-US')} events)`,
        value: exportSeconds,
        unit: 's',
        target: '-',
        pass: true,
      },
      {
        metric: `verify bundle offline (${EVENTS.toLocaleString('en-US')} events)`,
        value: verifySeconds,
        unit: 's',
        target: EVENTS === MILLION ? `<= ${targets.verifyMillionSeconds}` : '-',
        pass: EVENTS !== MILLION || verifySeconds <= targets.verifyMillionSeconds,
      },
      ...(EVENTS === MILLION
        ? []
        : [
            {
              metric: 'verify bundle offline, extrapolated to 1,000,000 events',
              value: perMillion,
              unit: 's',
              target: `<= ${targets.verifyMillionSeconds}`,
              pass: perMillion <= targets.verifyMillionSeconds,
            },
          ]),
      {
        metric: 'reopen log after restart',
        value: reopenSeconds * 1000,
        unit: 'ms',
        target: '-',
        pass: true,
      },
    ];
    return { name: 'tlog', node: process.version, events: EVENTS, batch: BATCH, metrics };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function printTable(result) {
  const rows = result.metrics.map((m) => [
    m.metric,
    m.value >= 1000 ? Math.round(m.value).toLocaleString('en-US') : m.value.toFixed(2),
    m.unit,
    m.target,
    m.pass ? 'ok' : 'MISSED',
  ]);
  const header = ['metric', 'value', 'unit', 'target', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) =>
    cells.map((c, i) => (i === 1 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  console.log(`tlog benchmark (node ${result.node})`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  printTable(await run());
}
