// Merkle log benchmark: append rate, inclusion verification latency, and full
// recomputation of a 1,000,000-leaf root. Needs `npm run build` first (imports dist/).
import { pathToFileURL } from 'node:url';
import { hashLeaf, MerkleFrontier, MerkleTree, verifyInclusion } from '../dist/audit/merkle.js';

const LEAVES = 1_000_000;
const PROOFS = 10_000;
const EVENT_BYTES = 256; // about the size of one canonical audit event leaf

const targets = {
  appendPerSecond: 20_000,
  verifyInclusionMicros: 50,
  recomputeSeconds: 10,
};

/** Deterministic PRNG (mulberry32), so every run samples the same leaf indices. */
function prng(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Event payloads: one shared buffer, a distinct view per leaf (the counter in the first 8 bytes). */
function makeEvents(count) {
  const all = Buffer.alloc(count * EVENT_BYTES, 0x61);
  for (let i = 0; i < count; i++) all.writeBigUInt64BE(BigInt(i), i * EVENT_BYTES);
  return (i) => all.subarray(i * EVENT_BYTES, (i + 1) * EVENT_BYTES);
}

const seconds = (start) => Number(process.hrtime.bigint() - start) / 1e9;

export async function run() {
  globalThis.gc?.();
  const event = makeEvents(LEAVES);
  const leafHashes = new Array(LEAVES);
  for (let i = 0; i < LEAVES; i++) leafHashes[i] = hashLeaf(event(i));

  // 1. Appending leaf hashes to the O(log n) frontier the recorder keeps.
  let start = process.hrtime.bigint();
  const frontier = new MerkleFrontier();
  for (let i = 0; i < LEAVES; i++) frontier.append(leafHashes[i]);
  const frontierRoot = frontier.root();
  const frontierSeconds = seconds(start);

  // 1b. Appending to the full in-memory tree that serves proofs.
  start = process.hrtime.bigint();
  const tree = new MerkleTree();
  for (let i = 0; i < LEAVES; i++) tree.append(leafHashes[i]);
  const treeSeconds = seconds(start);
  if (!tree.root().equals(frontierRoot))
    throw new Error('MerkleTree and MerkleFrontier disagree on the root');

  // 2. Inclusion proof verification over random leaves of the 1M tree.
  const random = prng(42);
  const root = tree.root();
  const claims = Array.from({ length: PROOFS }, () => {
    const index = Math.floor(random() * LEAVES);
    return { leafHash: leafHashes[index], index, treeSize: LEAVES, proof: tree.inclusionProof(index), root };
  });
  for (const claim of claims.slice(0, 1000)) verifyInclusion(claim); // warm up
  const micros = new Float64Array(PROOFS);
  // CPU time of the whole loop: on a shared machine, wall-clock percentiles also count the
  // time this thread waited for a core.
  const cpu = process.cpuUsage();
  for (let i = 0; i < PROOFS; i++) {
    const t0 = process.hrtime.bigint();
    const result = verifyInclusion(claims[i]);
    micros[i] = Number(process.hrtime.bigint() - t0) / 1e3;
    if (!result.ok) throw new Error(`proof ${i} failed: ${result.message}`);
  }
  const used = process.cpuUsage(cpu);
  const cpuMicros = (used.user + used.system) / PROOFS;
  micros.sort();
  const mean = micros.reduce((sum, x) => sum + x, 0) / PROOFS;
  const p50 = micros[Math.ceil(PROOFS * 0.5) - 1];
  const p99 = micros[Math.ceil(PROOFS * 0.99) - 1];

  // 3. An auditor's full check: rehash every event and recompute the root.
  globalThis.gc?.();
  start = process.hrtime.bigint();
  const check = new MerkleFrontier();
  for (let i = 0; i < LEAVES; i++) check.append(hashLeaf(event(i)));
  const recomputed = check.root();
  const recomputeSeconds = seconds(start);
  if (!recomputed.equals(root)) throw new Error('recomputed root differs');

  const metrics = [
    {
      metric: 'append to frontier (1M leaves)',
      value: LEAVES / frontierSeconds,
      unit: 'leaves/s',
      target: `>= ${targets.appendPerSecond}`,
      pass: LEAVES / frontierSeconds >= targets.appendPerSecond,
    },
    {
      metric: 'append to proof-serving tree (1M leaves)',
      value: LEAVES / treeSeconds,
      unit: 'leaves/s',
      target: `>= ${targets.appendPerSecond}`,
      pass: LEAVES / treeSeconds >= targets.appendPerSecond,
    },
    {
      metric: `verify inclusion, mean (${PROOFS} proofs, 1M tree)`,
      value: mean,
      unit: 'µs',
      target: `<= ${targets.verifyInclusionMicros}`,
      pass: mean <= targets.verifyInclusionMicros,
    },
    {
      metric: `verify inclusion, CPU time per proof (${PROOFS} proofs, 1M tree)`,
      value: cpuMicros,
      unit: 'µs',
      target: '-',
      pass: true,
    },
    {
      metric: `verify inclusion, p50 (${PROOFS} proofs, 1M tree)`,
      value: p50,
      unit: 'µs',
      target: `<= ${targets.verifyInclusionMicros}`,
      pass: p50 <= targets.verifyInclusionMicros,
    },
    {
      metric: `verify inclusion, p99 (${PROOFS} proofs, 1M tree)`,
      value: p99,
      unit: 'µs',
      target: `<= ${targets.verifyInclusionMicros}`,
      pass: p99 <= targets.verifyInclusionMicros,
    },
    {
      metric: `recompute root from 1M events of ${EVENT_BYTES} bytes`,
      value: recomputeSeconds,
      unit: 's',
      target: `<= ${targets.recomputeSeconds}`,
      pass: recomputeSeconds <= targets.recomputeSeconds,
    },
  ];
  return { name: 'merkle', node: process.version, leaves: LEAVES, proofs: PROOFS, metrics };
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
  console.log(`merkle benchmark (node ${result.node})`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  printTable(await run());
}
