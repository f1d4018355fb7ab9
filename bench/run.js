// `npm run bench`: runs the gateway benchmark, then policy and merkle where present,
// writes each result to bench/results/<name>.json and prints Markdown tables.
//
//   node --expose-gc bench/run.js [--only gateway|policy|merkle|tlog|checkpoint] [--quick]
// Progress goes to stderr, tables to stdout. Targets are reported, never asserted.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const benchmarks = [
  'gateway',
  'policy',
  'merkle',
  'tlog',
  'checkpoint',
  'detect',
  'chaos',
  'approvals',
  'vet',
  'vault',
  'dpop',
];

function parseArgs(argv) {
  const options = { only: undefined, quick: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') options.quick = true;
    else if (arg === '--only' || arg.startsWith('--only=')) {
      const value = arg === '--only' ? argv[++i] : arg.slice('--only='.length);
      if (!benchmarks.includes(value)) usage(`--only takes one of ${benchmarks.join(', ')}`);
      options.only = value;
    } else if (arg === '--help' || arg === '-h') usage();
    else usage(`unknown argument ${arg}`);
  }
  return options;
}

function usage(problem) {
  if (problem) console.error(problem);
  console.error(`usage: node --expose-gc bench/run.js [--only ${benchmarks.join('|')}] [--quick]`);
  process.exit(problem ? 2 : 0);
}

/** The commit measured, marked dirty when the tree has uncommitted changes. */
function commit() {
  try {
    const git = (...args) => execFileSync('git', args, { cwd: here, encoding: 'utf8' }).trim();
    return `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain') === '' ? '' : '-dirty'}`;
  } catch {
    return 'unknown';
  }
}

function machine() {
  const cpus = os.cpus();
  return {
    commit: commit(),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpu: cpus[0]?.model?.trim() ?? 'unknown',
    cores: cpus.length,
  };
}

// Markdown rendering ------------------------------------------------------------

function table(header, rows, numeric = []) {
  const cells = rows.map((row) =>
    row.map((cell) => (cell === null || cell === undefined ? 'n/a' : String(cell))),
  );
  const widths = header.map((h, i) => Math.max(h.length, 3, ...cells.map((row) => row[i].length)));
  const line = (row) =>
    `| ${row.map((cell, i) => (numeric.includes(i) ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join(' | ')} |`;
  const rule = `| ${widths.map((w, i) => (numeric.includes(i) ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w))).join(' | ')} |`;
  return [line(header), rule, ...cells.map(line)].join('\n');
}

const number = (x, digits = 3) =>
  typeof x !== 'number'
    ? x
    : Math.abs(x) >= 1000
      ? Math.round(x).toLocaleString('en-US')
      : Number(x.toFixed(digits)).toString();

const met = (pass) => (pass === true ? 'yes' : pass === false ? 'no' : 'n/a');

function gatewayTable(result) {
  const rows = [];
  for (const target of ['direct', 'bare', 'custos']) {
    const scenarios = result.results[target];
    if (scenarios === undefined) {
      rows.push([target, 'not measured', '', '', '', '', '', '', '', '', '', '', '', '']);
      continue;
    }
    for (const s of [scenarios.closed, scenarios.open]) {
      rows.push([
        target,
        s.mode === 'closed' ? `closed, ${s.connections} conns` : `open, ${number(s.rate)}/s`,
        number(s.requests),
        number(s.errors),
        number(s.seconds),
        number(s.rps),
        number(s.p50_ms),
        number(s.p90_ms),
        number(s.p99_ms),
        number(s.max_ms),
        s.send_lag === undefined ? '' : number(s.send_lag.p99_ms),
        s.proxy_cpu_us_per_call ?? '',
        s.upstream_cpu_us_per_call ?? '',
        s.other_cpu_share === null || s.other_cpu_share === undefined
          ? ''
          : `${Math.round(s.other_cpu_share * 100)}%`,
      ]);
    }
  }
  const header = [
    'target',
    'scenario',
    'requests',
    'errors',
    's',
    'calls/s',
    'p50 ms',
    'p90 ms',
    'p99 ms',
    'max ms',
    'send lag p99 ms',
    'proxy CPU µs/call',
    'upstream CPU µs/call',
    'other load',
  ];
  let text = table(header, rows, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
  const busy = Object.values(result.results)
    .flatMap((s) => [s.closed, s.open])
    .some((s) => (s.other_cpu_share ?? 0) > 0.1);
  text +=
    '\n\nLatency in the open loop counts from the scheduled send time; "send lag" is how late the' +
    ' load generator sent. "proxy CPU" is the bare proxy\'s or Custos\'s own CPU per call; "other load" is' +
    ' the share of all cores used by processes outside the benchmark.';
  if (busy)
    text +=
      '\n\nWarning: other processes used more than 10% of the machine during some scenarios;' +
      ' wall-clock numbers are unreliable (CPU µs/call hold up better). Rerun on an idle machine.';
  const errors = Object.entries(result.results).flatMap(([target, s]) =>
    [s.closed, s.open]
      .filter((x) => x.first_error)
      .map((x) => `- ${target} ${x.mode}: first error: ${x.first_error}`),
  );
  if (errors.length > 0) text += `\n\n${errors.join('\n')}`;
  if (result.custos_note) text += `\n\nNote: ${result.custos_note}`;
  return text;
}

function metricsTable(metrics) {
  return table(
    ['metric', 'value', 'unit', 'target', 'met'],
    metrics.map((m) => [m.metric, number(m.value), m.unit, m.target ?? '', met(m.pass)]),
    [1],
  );
}

/** Any other result shape: its scalar fields, one per row. */
function fieldsTable(result) {
  const rows = Object.entries(result)
    .filter(([, v]) => v === null || typeof v !== 'object')
    .map(([k, v]) => [k, number(v)]);
  return table(['field', 'value'], rows, [1]);
}

function render(name, result) {
  if (name === 'gateway' && result.results !== undefined) return gatewayTable(result);
  if (Array.isArray(result.metrics)) return metricsTable(result.metrics);
  return fieldsTable(result);
}

function targetsTable(entries) {
  const rows = [];
  for (const { name, result } of entries) {
    for (const m of result.metrics ?? []) {
      if (m.target === undefined || m.target === '') continue;
      const measured =
        m.value === null || m.value === undefined ? 'n/a' : `${number(m.value)} ${m.unit ?? ''}`.trim();
      rows.push([name, `${m.metric} ${m.target}`, measured, met(m.pass)]);
    }
  }
  return table(['benchmark', 'target', 'measured', 'met'], rows, [2]);
}

// Main --------------------------------------------------------------------------

async function main() {
  const options = parseArgs(process.argv.slice(2));
  if (globalThis.gc === undefined) console.error('note: run with node --expose-gc for steadier numbers');
  const info = machine();
  console.error(
    `bench: ${info.cpu}, ${info.cores} cores, node ${info.node}${options.quick ? ', quick' : ''}`,
  );
  const resultsDir = path.join(here, 'results');
  await mkdir(resultsDir, { recursive: true });

  const done = [];
  let failed = false;
  for (const name of benchmarks) {
    if (options.only !== undefined && options.only !== name) continue;
    const file = path.join(here, `${name}.js`);
    if (!existsSync(file)) {
      console.log(`\n## ${name}\n\nSkipped: bench/${name}.js does not exist yet.`);
      continue;
    }
    console.error(`\n${name}: running`);
    globalThis.gc?.();
    const startedAt = new Date();
    let result;
    try {
      const module = await import(pathToFileURL(file).href);
      if (typeof module.run !== 'function') throw new Error(`bench/${name}.js exports no run()`);
      result = await module.run({ quick: options.quick });
    } catch (error) {
      failed = true;
      console.log(`\n## ${name}\n\nFailed: ${error.stack ?? error}`);
      continue;
    }
    const record = {
      name,
      date: startedAt.toISOString(),
      duration_seconds: Math.round((Date.now() - startedAt.getTime()) / 100) / 10,
      ...info,
      load_average: os.loadavg().map((x) => Math.round(x * 100) / 100),
      quick: options.quick,
      result,
    };
    const out = path.join(resultsDir, `${name}.json`);
    await writeFile(out, `${JSON.stringify(record, null, 2)}\n`);
    console.log(`\n## ${name}\n\n${render(name, result)}\n\n(${path.relative(process.cwd(), out)})`);
    done.push({ name, result });
  }

  if (done.some(({ result }) => Array.isArray(result.metrics)))
    console.log(`\n## targets\n\n${targetsTable(done)}`);
  console.log(`\n${info.cpu}, ${info.cores} cores, node ${info.node}`);
  return failed ? 1 : 0;
}

process.exitCode = await main();
