// Checkpoint lag benchmark: under sustained appends through the AuditRecorder into a real
// SQLite file, the time from each event's append (its record() promise resolving: the
// event is durable) to the first signed checkpoint that covers it being stored.
// Two runs: an open loop at CHECKPOINT_BENCH_RATE events/s (default 5,000), and a
// saturated closed loop (1,000 record() calls in flight at all times, as fast as the
// machine appends), where the checkpoint competes with a write backlog.
// Needs `npm run build` first (imports dist/). CHECKPOINT_BENCH_SECONDS (default 15 per
// run) and CHECKPOINT_BENCH_INTERVAL_MS (audit.checkpointIntervalMs, default 1000) shape the runs.
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
const SECONDS = Number(process.env.CHECKPOINT_BENCH_SECONDS ?? 15);
const IN_FLIGHT = 1000;
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

/** One run: `rate` events/s in an open loop, or undefined for the saturated closed loop. */
async function measure(rate) {
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
    const cpu = process.cpuUsage();
    const start = performance.now();
    const record = (n) =>
      recorder.record(makeInput(n)).then((event) => {
        appended[event.seq - 1] = performance.now();
      });
    if (rate !== undefined) {
      // Open loop: every tick, issue the events due by now, whether or not earlier ones are done.
      for (let now = start; now - start < SECONDS * 1000; now = performance.now()) {
        const due = Math.floor(((now - start) / 1000) * rate);
        for (; issued < due; issued++) inflight.push(record(issued + 1));
        await sleep(TICK_MS);
      }
    } else {
      // Closed loop: each append that completes issues the next, IN_FLIGHT at all times.
      const worker = async () => {
        while (performance.now() - start < SECONDS * 1000) await record(++issued);
      };
      for (let i = 0; i < IN_FLIGHT; i++) inflight.push(worker());
    }
    await Promise.all(inflight);
    const appendSeconds = (performance.now() - start) / 1000;
    // Let the last checkpoint come by its timer, as it would in service.
    const deadline = performance.now() + INTERVAL_MS * 3;
    while ((checkpoints.at(-1)?.[1] ?? 0) < issued && performance.now() < deadline) await sleep(20);
    const used = process.cpuUsage(cpu);
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
    return {
      rate: issued / appendSeconds,
      cpuSecondsPerSecond: (used.user + used.system) / 1e6 / appendSeconds,
      checkpoints: checkpoints.length,
      uncovered,
      p50: quantile(lags, 0.5),
      p99: quantile(lags, 0.99),
      max: lags[lags.length - 1],
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run() {
  const metrics = [];
  for (const [label, rate] of [
    [`open loop, ${RATE.toLocaleString('en-US')} events/s`, RATE],
    [`saturated, ${IN_FLIGHT} in flight`, undefined],
  ]) {
    const r = await measure(rate);
    metrics.push(
      {
        metric: `${label}: appended (${SECONDS} s, SQLite file)`,
        value: r.rate,
        unit: 'events/s',
        target: '-',
        pass: true,
      },
      {
        metric: `${label}: process CPU while appending`,
        value: r.cpuSecondsPerSecond,
        unit: 'cores',
        target: '-',
        pass: true,
      },
      { metric: `${label}: checkpoints signed`, value: r.checkpoints, unit: '', target: '-', pass: true },
      {
        metric: `${label}: events never covered by a timer checkpoint`,
        value: r.uncovered,
        unit: '',
        target: '0',
        pass: r.uncovered === 0,
      },
      {
        metric: `${label}: checkpoint lag p50 (interval ${INTERVAL_MS} ms)`,
        value: r.p50,
        unit: 'ms',
        target: '-',
        pass: true,
      },
      {
        metric: `${label}: checkpoint lag p99 (interval ${INTERVAL_MS} ms)`,
        value: r.p99,
        unit: 'ms',
        target: `<= ${targets.lagP99Ms}`,
        pass: r.p99 <= targets.lagP99Ms,
      },
      { metric: `${label}: checkpoint lag max`, value: r.max, unit: 'ms', target: '-', pass: true },
    );
  }
  return {
    name: 'checkpoint',
    node: process.version,
    rate: RATE,
    seconds: SECONDS,
    intervalMs: INTERVAL_MS,
    metrics,
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await run();
  for (const m of result.metrics)
    console.log(
      `${m.metric}: ${m.value.toFixed?.(1) ?? m.value} ${m.unit} ${m.target} ${m.pass ? 'ok' : 'MISSED'}`,
    );
}
