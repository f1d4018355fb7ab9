import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeEachStore } from '../../test/support/stores.js';
import { systemClock } from '../core/clock.js';
import { IdGenerator } from '../core/ids.js';
import type { AuditEventInput } from './events.js';
import { type InventoryAgent, verifyEvidencePack, writeEvidencePack } from './evidence.js';
import { AuditRecorder } from './recorder.js';
import { TransparencyLog } from './tlog.js';

const t0 = Date.UTC(2026, 10, 1);
const day = 86_400_000;

function call(n: number, denied = false): AuditEventInput {
  return {
    time: t0 + n * day,
    agentId: 'agt_ev',
    owner: 'dana@example.com',
    taskId: null,
    method: 'tools/call',
    server: 'files',
    target: denied ? 'delete_file' : 'read_file',
    argsHash: null,
    effect: denied ? 'deny' : 'allow',
    policyIds: [denied ? 'files:no-delete' : 'files:read'],
    reasons: denied ? ['deleting is forbidden'] : [],
    outcome: denied ? 'denied' : 'executed',
    errorCode: denied ? 'policy_denied' : null,
    latencyUs: 100,
    traceId: null,
    arguments: { n },
  };
}

const agents: InventoryAgent[] = [
  {
    id: 'agt_ev',
    name: 'reader',
    owner: 'dana@example.com',
    purpose: 'reads files',
    environment: 'production',
    status: 'active',
    createdAt: t0,
    updatedAt: t0,
    expiresAt: null,
    credentials: [{ id: 'cred_1', kind: 'client_secret', createdAt: t0, revokedAt: null }],
  },
];

await describeEachStore('evidence_pack', (current) => {
  it('writes a pack for a window from the store whose manifest verifies, and counts only the window', async () => {
    const { store } = current();
    const log = await TransparencyLog.open(store, { checkpointIntervalMs: 60_000 });
    const recorder = new AuditRecorder(store, log, new IdGenerator(systemClock), { commitDelayMs: 0 });
    for (let n = 1; n <= 10; n++) await recorder.record(call(n, n % 4 === 0));
    await recorder.record({
      ...call(5),
      method: 'approvals/decide',
      server: null,
      target: 'apr_7',
      arguments: { decision: 'approved', decidedBy: 'oncall@example.com' },
    });
    await recorder.close();
    await log.close();

    const home = mkdtempSync(join(tmpdir(), 'custos-evidence-'));
    try {
      const reopened = await TransparencyLog.open(store, { readOnly: true });
      const out = join(home, 'pack');
      const summary = await writeEvidencePack(store, reopened, {
        framework: 'iso42001',
        from: t0 + 3 * day,
        to: t0 + 8 * day,
        outDir: out,
        agents,
        policies: {
          directory: '/policies',
          files: [
            { name: 'files.cedar', text: '@id("files:read")\npermit (principal, action, resource);\n' },
          ],
        },
        now: t0 + 20 * day,
        version: 'test',
      });
      expect(summary.bundle.ok).toBe(true);
      expect(summary.controls).toEqual([
        { id: 'A.6.2.8', title: 'AI system recording of event logs', support: 'supported' },
      ]);
      const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as {
        facts: Record<string, unknown>;
      };
      // Days 3 to 8: six calls, denials on days 4 and 8.
      expect(index.facts).toMatchObject({ events: 6, denied: 2, policies: 1, agents: 1 });
      const denials = readFileSync(join(out, 'evidence/denials.jsonl'), 'utf8').trim().split('\n');
      expect(denials.map((l) => (JSON.parse(l) as { time: string }).time)).toEqual([
        new Date(t0 + 4 * day).toISOString(),
        new Date(t0 + 8 * day).toISOString(),
      ]);
      const approvals = readFileSync(join(out, 'evidence/approvals.jsonl'), 'utf8').trim().split('\n');
      expect(approvals.map((l) => JSON.parse(l) as Record<string, unknown>)).toMatchObject([
        { approvalId: 'apr_7', decision: 'approved', by: 'oncall@example.com', method: 'approvals/decide' },
      ]);
      expect(await verifyEvidencePack(out, { verifierKey: reopened.verifierKey })).toMatchObject({
        ok: true,
        framework: 'iso42001',
      });
      // A pack whose manifest is signed over a broken export (made from a damaged log) fails too.
      const leaves = join(out, 'evidence/audit-export/leaves.txt');
      const damaged = readFileSync(leaves, 'utf8').replace(/^[0-9a-f]/, (c) => (c === '0' ? '1' : '0'));
      writeFileSync(leaves, damaged);
      const manifest = readFileSync(join(out, 'manifest.txt'), 'utf8');
      const body = manifest
        .slice(0, manifest.indexOf('\n\n') + 1)
        .replace(
          /^sha256 [0-9a-f]{64} evidence\/audit-export\/leaves\.txt$/m,
          `sha256 ${createHash('sha256').update(damaged).digest('hex')} evidence/audit-export/leaves.txt`,
        );
      writeFileSync(join(out, 'manifest.txt'), reopened.signNote(body));
      const broken = await verifyEvidencePack(out, { verifierKey: reopened.verifierKey });
      expect(broken.ok).toBe(false);
      expect(broken.ok ? '' : broken.problem).toMatch(/^evidence\/audit-export: /);
      writeFileSync(join(out, 'index.md'), 'changed');
      expect(await verifyEvidencePack(out, { verifierKey: reopened.verifierKey })).toEqual({
        ok: false,
        problem: 'index.md: SHA-256 does not match the signed manifest (modified)',
      });
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
