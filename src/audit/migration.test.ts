import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, sql } from 'kysely';
import { afterAll, expect, it } from 'vitest';
import { openStore } from '../store/index.js';
import { migrationProvider } from '../store/migrations.js';
import { commitEvent } from './commitment.js';
import type { AuditEvent } from './events.js';
import { hashLeaf } from './merkle.js';
import { TransparencyLog } from './tlog.js';
import { verifyLive } from './verify-bundle.js';

const dir = mkdtempSync(join(tmpdir(), 'custos-migration-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function event(seq: number): AuditEvent {
  return {
    id: `evt_${String(seq).padStart(8, '0')}`,
    seq,
    time: 1_767_225_600_000 + seq,
    agentId: 'agt_a',
    owner: 'alice@example.com',
    taskId: null,
    method: 'tools/call',
    server: 'files',
    target: 'read_file',
    argsHash: null,
    effect: 'allow',
    policyIds: ['base'],
    reasons: [],
    outcome: 'executed',
    errorCode: null,
    latencyUs: 10,
    traceId: null,
    policySetHash: null,
    approvalId: null,
    arguments: { path: `/data/${seq}.txt` },
  };
}

it('0005 carries the leaf hashes and commitments of a 0004 log into the event rows, and the log still verifies', async () => {
  const file = join(dir, 'custos.db');
  // A store as 0004 left it: leaves stored whole in tlog_leaves.
  const old = new Kysely<unknown>({ dialect: new SqliteDialect({ database: new SqliteDatabase(file) }) });
  const { error } = await new Migrator({ db: old, provider: migrationProvider }).migrateTo('0004_tlog');
  expect(error).toBeUndefined();
  for (let seq = 1; seq <= 5; seq++) {
    const e = event(seq);
    const c = commitEvent(e, Buffer.alloc(32, seq));
    await sql`insert into audit_events (seq, id, time, agent_id, owner, task_id, method, server, target,
      args_hash, effect, policy_ids, reasons, outcome, error_code, latency_us, trace_id) values (${seq}, ${e.id},
      ${e.time}, ${e.agentId}, ${e.owner}, null, ${e.method}, ${e.server}, ${e.target}, null, ${e.effect},
      ${JSON.stringify(e.policyIds)}, '[]', ${e.outcome}, null, 10, null)`.execute(old);
    await sql`insert into audit_content (event_id, arguments, reasoning, result, salt) values (${e.id},
      ${c.content.arguments}, null, null, ${c.salt.toString('hex')})`.execute(old);
    await sql`insert into tlog_leaves (seq, hash, leaf) values (${seq}, ${hashLeaf(c.leaf).toString('hex')},
      ${c.leafText})`.execute(old);
  }
  await old.destroy();

  const store = await openStore(`sqlite:${file}`);
  try {
    const rows = await store.db.selectFrom('audit_events').selectAll().orderBy('seq').execute();
    expect(rows.map((r) => r.leaf_hash)).toEqual(
      [1, 2, 3, 4, 5].map((seq) =>
        hashLeaf(commitEvent(event(seq), Buffer.alloc(32, seq)).leaf).toString('hex'),
      ),
    );
    expect(rows[0]).toMatchObject({ policy_set_hash: null, approval_id: null, reasoning_hash: null });
    expect(rows[0]?.arguments_hash).toMatch(/^[0-9a-f]{64}$/);
    const tables = (await store.db.introspection.getTables()).map((t) => t.name);
    expect(tables).not.toContain('tlog_leaves');
    const log = await TransparencyLog.open(store, { checkpointIntervalMs: 60_000 });
    expect(log.size).toBe(5);
    await log.checkpointNow();
    expect(await verifyLive(store, log)).toEqual({ ok: true, events: 5, checkpoints: 1 });
    await log.close();
  } finally {
    await store.close();
  }
});
