// Checkpoint lag benchmark: under sustained appends through the AuditRecorder into a real
// SQLite file, the time from each event's append (its record() promise resolving: the
// event is durable) to the first signed checkpoint that covers it being stored.
// Needs `npm run build` first (imports dist/). CHECKPOINT_BENCH_RATE (events/s, default
// 5,000, a load this shared machine sustains), CHECKPOINT_BENCH_SECONDS (default 20) and CHECKPOINT_BENCH_INTERVAL_MS
// (audit.checkpointIntervalMs, default 1000) shape the run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { AuditRecorder } from '../dist/audit/recorder.js';
import { TransparencyLog } from '../dist/audit/tlog.js';
import { systemClock } from '../dist/core/clock.js';
import { IdGenerator } from '../dist/core/ids.js';
import { openStore } from '../dist/store/index.js';

const RATE = Number(process.env.CHECKPOINT_BENCH_RATE ?? 5_000);
const SECONDS = Number(process.env.CHECKPOINT_BENCH_SECONDS ?? 20);
const INTERVAL_MS = Number(process.env.CHECKPOINT_BENCH_INTERVAL_MS ?? 1000);
const TICK_MS = 10;
const targets = { lagP99Ms: 1000 };

function makeInput(seq) {
  return {
    time: Date.now(),
    agentId: `agt_01jbench${seq % 50}`,
    owner: `owner${seq % 50}@example.com`,
    taskId: `task_01jbench${seq % 500}`,
    method: 'tools/call',
    server: 'files',
    target: 'read_file',
    argsHash: null,
    effect: 'allow',
    policyIds: ['base', 'files-readonly'],
    reasons: [],
    outcome: 'executed',
    errorCode: null,
    latencyUs: 250,
    traceId: null,
    policySetHash: 'ab'.repeat(32),
    approvalId: null,
    arguments: { path: `/sandbox/reports/${seq}.txt` },
    reasoning: `The user asked for report ${seq}; reading it is needed to answer.`,
    result: { content: [{ type: 'text', text: `contents of report ${seq}` }] },
  };
}

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * q) - 1)];

export async function run() {
  const dir = mkdtempSync(join(tmpdir(), 'custos-bench-checkpoint-'));
  const store = await openStore(`sqlite:${join(dir, 'custos.db')}`);
  try {
    const checkpoints = []; // [stored at (performance.now()), size]
    const log = await TransparencyLog.open(store, {
      checkpointIntervalMs: INTERVAL_MS,
      onCheckpoint: (c) => checkpoints.push([performance.now(), c.size]),
    });
    const recorder = new AuditRecorder(store, log, new IdGenerator(systemClock), { commitDelayMs: 0 });
    const appended = []; // index seq - 1: when the event became durable
    const inflight = [];
    let issued = 0;
    const start = performance.now();
    // Open loop: every tick, issue the events due by now, whether or not earlier ones are done.
    for (let now = start; now - start < SECONDS * 1000; now = performance.now()) {
      const due = Math.floor(((now - start) / 1000) * RATE);
      for (; issued < due; issued++) {
        inflight.push(
          recorder.record(makeInput(issued + 1)).then((event) => {
            appended[event.seq - 1] = performance.now();
          }),
        );
      }
      await sleep(TICK_MS);
    }
    await Promise.all(inflight);
    const appendSeconds = (performance.now() - start) / 1000;
    // Let the last checkpoint come by its timer, as it would in service.
    const deadline = performance.now() + INTERVAL_MS * 3;
    while ((checkpoints.at(-1)?.[1] ?? 0) < issued && performance.now() < deadline) await sleep(20);
    await recorder.close();
    await log.close();

    const lags = new Float64Array(issued);
    let c = 0;
    let uncovered = 0;
    for (let i = 0; i < issued; i++) {
      while (c < checkpoints.length && checkpoints[c][1] < i + 1) c++;
      if (c === checkpoints.length) {
        lags[i] = Number.POSITIVE_INFINITY;
        uncovered++;
      } else lags[i] = checkpoints[c][0] - appended[i];
    }
    lags.sort();
    const p50 = quantile(lags, 0.5);
    const p99 = quantile(lags, 0.99);
    const max = lags[lags.length - 1];
    const metrics = [
      {
        metric: `appended (target ${RATE.toLocaleString('en-US')} events/s for ${SECONDS} s, SQLite file)`,
        value: issued / appendSeconds,
        unit: 'events/s',
        target: '-',
        pass: true,
      },
      { metric: 'checkpoints signed', value: checkpoints.length, unit: '', target: '-', pass: true },
      {
        metric: 'events never covered by a timer checkpoint',
        value: uncovered,
        unit: '',
        target: '0',
        pass: uncovered === 0,
      },
      {
        metric: `checkpoint lag p50 (interval ${INTERVAL_MS} ms)`,
        value: p50,
        unit: 'ms',
        target: '-',
        pass: true,
      },
      {
        metric: `checkpoint lag p99 (interval ${INTERVAL_MS} ms)`,
        value: p99,
        unit: 'ms',
        target: `<= ${targets.lagP99Ms}`,
        pass: p99 <= targets.lagP99Ms,
      },
      { metric: 'checkpoint lag max', value: max, unit: 'ms', target: '-', pass: true },
    ];
    return {
      name: 'checkpoint',
      node: process.version,
      rate: RATE,
      seconds: SECONDS,
      intervalMs: INTERVAL_MS,
      metrics,
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await run();
  for (const m of result.metrics)
    console.log(
      `${m.metric}: ${m.value.toFixed?.(1) ?? m.value} ${m.unit} ${m.target} ${m.pass ? 'ok' : 'MISSED'}`,
    );
}
