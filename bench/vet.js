// The deterministic vetting layer on 100 tools: one server snapshot built from the labelled
// corpus (all four labels mixed), vetted against the corpus's neighbouring servers.
// Run: npm run build && node bench/run.js --only vet
import { detect, loadCorpus } from '../dist/vet/index.js';

const TOOLS = 100;
const targetMs = 50;

export async function run({ quick = false } = {}) {
  const { entries, neighbours } = loadCorpus();
  // Every third entry, cycling, so the 100 tools mix benign and poisoned definitions.
  const tools = [];
  for (let i = 0; tools.length < TOOLS; i += 3) {
    const entry = entries[i % entries.length];
    tools.push({ ...entry.tool, name: `${entry.tool.name}_${tools.length}` });
  }
  const snapshot = {
    name: 'bench',
    serverInfo: { name: 'bench', version: '1' },
    instructions: 'A server for the benchmark. Call list tools first to see what it offers.',
    tools,
    prompts: [],
    resources: [],
    resourceTemplates: [],
  };
  // Loading the YAML corpus leaves garbage; collect it so the measurement is of vetting alone.
  globalThis.gc?.();
  let start = process.hrtime.bigint();
  let cpu = process.cpuUsage();
  const first = detect(snapshot, neighbours);
  const coldMs = Number(process.hrtime.bigint() - start) / 1e6;
  const coldCpu = process.cpuUsage(cpu);
  // CPU time of this thread's process: less disturbed than wall-clock by other load on the machine.
  const coldCpuMs = (coldCpu.user + coldCpu.system) / 1000;
  // A fresh set of 100 definitions (new names, so nothing is cached by value) after the first run.
  const fresh = {
    ...snapshot,
    tools: tools.map((t, i) => ({ ...t, name: `fresh_${i}`, description: `${t.description} ` })),
  };
  start = process.hrtime.bigint();
  detect(fresh, neighbours);
  const freshMs = Number(process.hrtime.bigint() - start) / 1e6;
  const runs = quick ? 20 : 200;
  const times = [];
  cpu = process.cpuUsage();
  for (let i = 0; i < runs; i++) {
    if (i % 20 === 0) globalThis.gc?.();
    start = process.hrtime.bigint();
    detect(snapshot, neighbours);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  const loopCpu = process.cpuUsage(cpu);
  const meanCpuMs = (loopCpu.user + loopCpu.system) / 1000 / runs;
  times.sort((a, b) => a - b);
  const p50 = times[Math.floor(runs / 2)];
  const p99 = times[Math.min(runs - 1, Math.floor(runs * 0.99))];
  return {
    name: 'vet',
    node: process.version,
    tools: TOOLS,
    findings: first.length,
    load_average_1m: (await import('node:os')).loadavg()[0],
    metrics: [
      {
        metric: `vet ${TOOLS} tools, first run (cold)`,
        value: coldMs,
        unit: 'ms',
        target: `<= ${targetMs}`,
        pass: coldMs <= targetMs,
      },
      {
        metric: `vet ${TOOLS} tools, first run, CPU time`,
        value: coldCpuMs,
        unit: 'ms',
        target: `<= ${targetMs}`,
        pass: coldCpuMs <= targetMs,
      },
      {
        metric: `vet ${TOOLS} tools, mean CPU time of ${runs} (incl. GC)`,
        value: meanCpuMs,
        unit: 'ms',
        target: `<= ${targetMs}`,
        pass: meanCpuMs <= targetMs,
      },
      {
        metric: `vet ${TOOLS} new tools, second run in the process`,
        value: freshMs,
        unit: 'ms',
        target: `<= ${targetMs}`,
        pass: freshMs <= targetMs,
      },
      {
        metric: `vet ${TOOLS} tools, p50 of ${runs}`,
        value: p50,
        unit: 'ms',
        target: `<= ${targetMs}`,
        pass: p50 <= targetMs,
      },
      {
        metric: `vet ${TOOLS} tools, p99 of ${runs}`,
        value: p99,
        unit: 'ms',
        target: `<= ${targetMs}`,
        pass: p99 <= targetMs,
      },
    ],
  };
}
