// Chaos benchmark: a real MCP SDK client agent (its own process) works normally through
// Custos to a counting echo upstream, then runs away at 4,000 actions per minute, and in a
// second run bursts at 1,000 calls per second; a third run is stopped by `custos kill`.
// Counts the calls that reach the upstream after onset, after the detection decision and
// after `custos kill` returns.  Run: npm run build && node bench/run.js --only chaos
import { fileURLToPath } from 'node:url';
import { startCustos } from '../dist/app.js';
import { buildConfig } from '../dist/core/config.js';
import { killSwitch, runaway, startChaosRig } from './chaos-scenario.js';

const bin = fileURLToPath(new URL('../bin/custos.js', import.meta.url));

async function withRig(detect, work) {
  const rig = await startChaosRig({ startCustos, buildConfig, detect, upstreamProcess: true });
  try {
    return await work(rig);
  } finally {
    await rig.close();
  }
}

export async function run({ quick = false } = {}) {
  const log = (m) => console.error(`chaos: ${m}`);
  const normalSeconds = quick ? 2 : 5;
  const slow = await withRig({}, (rig) => runaway(rig, { rate: 4000 / 60, normalSeconds, ownProcess: true }));
  log(`4,000/min: detected after ${slow.detectionMs?.toFixed(0)} ms`);
  const burst = await withRig({}, (rig) => runaway(rig, { rate: 1000, normalSeconds, ownProcess: true }));
  log(`1,000/s: detected after ${burst.detectionMs?.toFixed(0)} ms`);
  const off = { anomaly: { action: 'off' }, ceiling: { action: 'off' }, loop: { action: 'off' } };
  const kill = await withRig(off, (rig) => killSwitch(rig, { bin, rate: 200 }));
  log(`kill: ${kill.upstreamAfterKillReturned} calls after it returned`);
  const metrics = [];
  for (const [label, r] of [
    ['4,000/min', slow],
    ['1,000/s', burst],
  ]) {
    metrics.push(
      { metric: `${label}: achieved rate`, value: r.achievedRate, unit: 'calls/s' },
      { metric: `${label}: detector`, value: r.detector ?? 'none', unit: '' },
      {
        metric: `${label}: detection time after onset`,
        value: r.detectionMs,
        unit: 'ms',
        target: '<= 2000',
        pass: r.detectionMs !== null && r.detectionMs <= 2000,
      },
      { metric: `${label}: upstream calls after onset`, value: r.upstreamAfterOnset, unit: 'calls' },
      {
        metric: `${label}: upstream calls after the detection decision`,
        value: r.upstreamAfterDetection,
        unit: 'calls',
        target: '<= 10',
        pass: r.upstreamAfterDetection !== null && r.upstreamAfterDetection <= 10,
      },
    );
  }
  metrics.push(
    {
      metric: 'kill: upstream calls before custos kill returned',
      value: kill.upstreamBeforeKillReturned,
      unit: 'calls',
    },
    {
      metric: 'kill: upstream calls after custos kill returned',
      value: kill.upstreamAfterKillReturned,
      unit: 'calls',
      target: '= 0',
      pass: kill.upstreamAfterKillReturned === 0 && kill.cli.code === 0,
    },
  );
  return { metrics, runs: { slow, burst, kill: { ...kill, cli: { code: kill.cli.code } } } };
}
