// The vault: reveal latency (what the inject stage pays per call: one SQLite read and two
// AES-256-GCM decryptions), rotation, and a master-key rotation of 100 secrets.
// Run: npm run build && node bench/run.js --only vault
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../dist/core/clock.js';
import { openStore } from '../dist/store/index.js';
import { Vault } from '../dist/vault/index.js';

const SECRETS = 100;

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

export async function run({ quick = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'custos-bench-vault-'));
  const store = await openStore(`sqlite:${join(dir, 'custos.db')}`);
  try {
    const vault = await Vault.open({ store, clock: systemClock, dataDir: dir, env: {} });
    for (let i = 0; i < SECRETS; i++) await vault.set(`bench-${i}`, `value-${i}-${'x'.repeat(40)}`);
    const reveals = quick ? 2_000 : 20_000;
    const times = [];
    for (let i = 0; i < reveals; i++) {
      const start = process.hrtime.bigint();
      await vault.reveal(`bench-${i % SECRETS}`);
      times.push(Number(process.hrtime.bigint() - start) / 1000);
    }
    times.sort((a, b) => a - b);
    const rotations = quick ? 200 : 2_000;
    let start = process.hrtime.bigint();
    for (let i = 0; i < rotations; i++) await vault.rotate(`bench-${i % SECRETS}`, `rotated-${i}`);
    const rotateUs = Number(process.hrtime.bigint() - start) / 1000 / rotations;
    start = process.hrtime.bigint();
    const result = await vault.rotateMasterKey();
    const masterMs = Number(process.hrtime.bigint() - start) / 1e6;
    return {
      name: 'vault',
      node: process.version,
      secrets: SECRETS,
      rewrapped: result.rewrapped,
      load_average_1m: (await import('node:os')).loadavg()[0],
      metrics: [
        { metric: `reveal p50 (${reveals} reveals)`, value: percentile(times, 0.5), unit: 'µs' },
        { metric: 'reveal p99', value: percentile(times, 0.99), unit: 'µs' },
        { metric: `rotate, mean of ${rotations} (one transaction each)`, value: rotateUs, unit: 'µs' },
        {
          metric: `master-key rotation of ${SECRETS} secrets (one transaction)`,
          value: masterMs,
          unit: 'ms',
        },
      ],
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
