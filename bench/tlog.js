// Transparency log benchmark: appending audit events with tree integration through the
// AuditRecorder into a real SQLite file (events, content and leaves in one insertMany per
// group commit), then exporting a bundle and verifying it offline with `custos audit verify`
// in a process of its own once the store is closed (as an auditor would). For comparison it also
// times the recorder's old path without the tree (events and content only) and the
// tree appended in a Kysely transaction of its own (appendInTransaction).
// Needs `npm run build` first (imports dist/). TLOG_BENCH_EVENTS sets the event count
// (default 1,000,000); with fewer, the 1M verification time is extrapolated linearly
// (start-up included, so the extrapolation overstates it).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { exportBundle } from '../dist/audit/bundle.js';
import { rowFromEvent } from '../dist/audit/query.js';
import { AuditRecorder } from '../dist/audit/recorder.js';
import { TransparencyLog } from '../dist/audit/tlog.js';
import { verifyBundle } from '../dist/audit/verify-bundle.js';
import { systemClock } from '../dist/core/clock.js';
import { IdGenerator } from '../dist/core/ids.js';
import { openStore } from '../dist/store/index.js';

const EVENTS = Number(process.env.TLOG_BENCH_EVENTS ?? 1_000_000);
const BATCH = 1000; // events in flight at once: one group commit each
const COMPARE = Math.min(EVENTS, 200_000); // events for the two comparison paths
const MILLION = 1_000_000;
const custosBin = fileURLToPath(new URL('../bin/custos.js', import.meta.url));

const targets = { appendPerSecond: 20_000, verifyMillionSeconds: 10 };

const seconds = (start) => Number(process.hrtime.bigint() - start) / 1e9;

function makeEvent(seq) {
  return { id: `evt_${String(seq).padStart(26, '0')}`, seq, ...makeInput(seq) };
}

/** What the gateway hands the recorder for call `seq` (no id, no seq). */
function makeInput(seq) {
  const denied = seq % 7 === 0;
  return {
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
    policySetHash: 'c0ffee'.repeat(10) + 'c0ff',
    approvalId: null,
    arguments: { path: `/sandbox/reports/${seq}.txt` },
    reasoning: `The user asked for report ${seq}; reading it is needed to answer.`,
    ...(denied ? {} : { result: { content: [{ type: 'text', text: `contents of report ${seq}` }] } }),
  };
}

function contentRow(e) {
  return {
    event_id: e.id,
    arguments: JSON.stringify(e.arguments),
    reasoning: JSON.stringify(e.reasoning),
    result: e.result === undefined ? null : JSON.stringify(e.result),
  };
}

/** events/s of `write(events)` over `count` events in batches, on a fresh SQLite file. */
async function timeBatches(count, write) {
  let total = 0;
  for (let seq = 1; seq <= count; seq += BATCH) {
    const events = [];
    for (let s = seq; s < seq + BATCH && s <= count; s++) events.push(makeEvent(s));
    const start = process.hrtime.bigint();
    await write(events);
    total += seconds(start);
  }
  return count / total;
}

/**
 * Before: the recorder as it was without the tree (HEAD before the log was wired): ids
 * and seqs at record(), group commit per event-loop turn, audit_events + audit_content
 * (JSON.stringify, no salt) in one insertMany.
 */
class RecorderWithoutTree {
  constructor(store, ids, nextSeq) {
    this.store = store;
    this.ids = ids;
    this.nextSeq = nextSeq;
    this.queue = [];
    this.scheduled = false;
  }
  record(input) {
    const event = { ...input, id: this.ids.next('evt'), seq: this.nextSeq++ };
    return new Promise((resolve, reject) => {
      this.queue.push({ event, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }
  async flush() {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    const events = batch.map((p) => p.event);
    try {
      await this.store.insertMany({
        audit_events: events.map((e) => rowFromEvent(e)),
        audit_content: events.map(contentRow),
      });
    } catch (error) {
      for (const p of batch) p.reject(error);
      return;
    }
    for (const p of batch) p.resolve(p.event);
  }
}

/** events/s of record() over `count` events, BATCH in flight at a time. */
async function timeRecorder(count, recorder) {
  let total = 0;
  for (let seq = 1; seq <= count; seq += BATCH) {
    const inputs = [];
    for (let s = seq; s < seq + BATCH && s <= count; s++) inputs.push(makeInput(s));
    const start = process.hrtime.bigint();
    await Promise.all(inputs.map((input) => recorder.record(input)));
    total += seconds(start);
  }
  return count / total;
}

async function baselineWithoutTree(dir) {
  const store = await openStore(`sqlite:${join(dir, 'baseline.db')}`);
  try {
    return await timeRecorder(COMPARE, new RecorderWithoutTree(store, new IdGenerator(systemClock), 1));
  } finally {
    await store.close();
  }
}

/** Before: the tree appended inside a Kysely transaction of its own (appendInTransaction). */
async function kyselyTransactionPath(dir) {
  const store = await openStore(`sqlite:${join(dir, 'kysely.db')}`);
  try {
    const log = await TransparencyLog.open(store, { checkpointIntervalMs: 1000 });
    const rate = await timeBatches(COMPARE, async (events) => {
      let pending;
      await store.db.transaction().execute(async (trx) => {
        // Writes the events' rows with their commitment columns, and their content.
        pending = await log.appendInTransaction(trx, events);
      });
      log.commit(pending);
    });
    await log.close();
    return rate;
  } finally {
    await store.close();
  }
}

export async function run() {
  const dir = mkdtempSync(join(tmpdir(), 'custos-bench-tlog-'));
  const withoutTree = await baselineWithoutTree(dir);
  const kyselyPath = await kyselyTransactionPath(dir);
  const store = await openStore(`sqlite:${join(dir, 'custos.db')}`);
  let storeOpen = true;
  try {
    const log = await TransparencyLog.open(store, { checkpointIntervalMs: 1000 });
    const recorder = new AuditRecorder(store, log, new IdGenerator(systemClock), {
      commitDelayMs: 0,
    });

    // 1. Appending through the recorder: BATCH record() calls at a time, each group
    //    commit writing events, content and leaves in one insertMany. Event times are
    //    synthetic (2026-01-01 + seq ms); ids come from the real generator.
    const appendRate = await timeRecorder(EVENTS, recorder);
    await recorder.close();
    await log.checkpointNow();

    // 2. Export everything.
    const out = join(dir, 'bundle');
    let start = process.hrtime.bigint();
    const summary = await exportBundle(store, log, { outDir: out });
    const exportSeconds = seconds(start);

    // 3. Restart: reopening resumes from the last checkpoint's frontier.
    start = process.hrtime.bigint();
    const reopened = await TransparencyLog.open(store);
    const reopenSeconds = seconds(start);
    if (!reopened.root().equals(log.root())) throw new Error('reopened log has a different root');
    await reopened.close();
    await log.close();
    const verifierKey = log.verifierKey;
    // Offline means the server is gone: close the store (and its WAL checkpointer thread) first.
    await store.close();
    storeOpen = false;
    // Nor does it need the database; and the bundle has been written out (no writeback of the
    // gigabytes just written competes with the check: an auditor receives a finished export).
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(dir, `custos.db${suffix}`), { force: true });
    spawnSync('sync');

    // 4. Verify offline as an auditor does: `custos audit verify DIR --key KEY` in a process of
    //    its own (Node start-up included), event lines checked by one worker thread per core.
    globalThis.gc?.();
    start = process.hrtime.bigint();
    const cli = spawnSync(
      process.execPath,
      [custosBin, 'audit', 'verify', out, '--key', verifierKey, '--json'],
      {
        encoding: 'utf8',
        maxBuffer: 1 << 20,
      },
    );
    const verifySeconds = seconds(start);
    const verified = cli.status === 0 ? JSON.parse(cli.stdout) : undefined;
    if (verified?.ok !== true || verified.events !== EVENTS) {
      throw new Error(`custos audit verify failed (${cli.status}): ${cli.stdout}${cli.stderr}`);
    }
    // For comparison: the same check in this process on one thread.
    globalThis.gc?.();
    start = process.hrtime.bigint();
    const oneThread = await verifyBundle(out, { verifierKey, parallelism: 1 });
    const verifyOneThreadSeconds = seconds(start);
    if (!oneThread.ok || oneThread.events !== EVENTS) throw new Error(`bundle did not verify on one thread`);

    const perMillion = (verifySeconds * MILLION) / EVENTS;
    const metrics = [
      {
        metric: `before: recorder without tree (${COMPARE.toLocaleString('en-US')} events, ${BATCH} in flight)`,
        value: withoutTree,
        unit: 'events/s',
        target: '-',
        pass: true,
      },
      {
        metric: `before: tree in its own Kysely transaction (${COMPARE.toLocaleString('en-US')} events)`,
        value: kyselyPath,
        unit: 'events/s',
        target: '-',
        pass: true,
      },
      {
        metric: `append with tree through the recorder (${EVENTS.toLocaleString('en-US')} events, ${BATCH} in flight, SQLite file)`,
        value: appendRate,
        unit: 'events/s',
        target: `>= ${targets.appendPerSecond}`,
        pass: appendRate >= targets.appendPerSecond,
      },
      {
        metric: `export bundle (${summary.events.toLocaleString('en-US')} events)`,
        value: exportSeconds,
        unit: 's',
        target: '-',
        pass: true,
      },
      {
        metric: `verify bundle in-process on one thread (${EVENTS.toLocaleString('en-US')} events)`,
        value: verifyOneThreadSeconds,
        unit: 's',
        target: '-',
        pass: true,
      },
      {
        metric: `custos audit verify (own process, ${availableParallelism()} cores; ${EVENTS.toLocaleString('en-US')} events)`,
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
    if (storeOpen) await store.close();
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
