import { expect, it } from 'vitest';
import { describeEachStore } from '../../test/support/stores.js';
import { systemClock } from '../core/clock.js';
import { IdGenerator } from '../core/ids.js';
import type { Store } from '../store/index.js';
import type { AuditEventInput } from './events.js';
import { AuditRecorder } from './recorder.js';
import { TransparencyLog } from './tlog.js';
import { verifyLive } from './verify-bundle.js';

function input(n: number): AuditEventInput {
  return {
    time: 1_767_225_600_000 + n,
    agentId: 'agt_rec',
    owner: 'owner@example.com',
    taskId: null,
    method: 'tools/call',
    server: 'files',
    target: 'read_file',
    argsHash: null,
    effect: 'allow',
    policyIds: ['p'],
    reasons: [],
    outcome: 'executed',
    errorCode: null,
    latencyUs: 10.4,
    traceId: null,
    ...(n % 3 === 0 ? {} : { arguments: { n }, reasoning: `call ${n}` }),
  };
}

/** A store whose next insertMany fails once, as a full disk or a lost connection would. */
function failingOnce(store: Store): Store & { failNext: () => void } {
  let fail = false;
  return {
    ...store,
    db: store.db,
    insertMany: (batch) => {
      if (fail) {
        fail = false;
        return Promise.reject(new Error('disk full'));
      }
      return store.insertMany(batch);
    },
    failNext: () => {
      fail = true;
    },
  };
}

await describeEachStore('recorder', (current) => {
  it('writes events, content and leaves in one batch; a failed batch leaves no seq gap and no leaf', async () => {
    const store = failingOnce(current().store);
    const log = await TransparencyLog.open(store, { checkpointIntervalMs: 60_000 });
    const recorder = new AuditRecorder(store, log, new IdGenerator(systemClock), { commitDelayMs: 0 });

    const first = await Promise.all([1, 2, 3, 4, 5].map((n) => recorder.record(input(n))));
    expect(first.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);

    store.failNext();
    const failed = await Promise.allSettled([6, 7, 8].map((n) => recorder.record(input(n))));
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(log.size).toBe(5);

    const after = await Promise.all([9, 10].map((n) => recorder.record(input(n))));
    expect(after.map((e) => e.seq)).toEqual([6, 7]);
    await recorder.close();
    await log.close();

    const seqs = await store.db.selectFrom('audit_events').select('seq').orderBy('seq').execute();
    expect(seqs.map((r) => Number(r.seq))).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const leaves = await store.db
      .selectFrom('audit_events')
      .select('seq')
      .where('leaf_hash', 'is not', null)
      .orderBy('seq')
      .execute();
    expect(leaves.map((r) => Number(r.seq))).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const content = await store.db.selectFrom('audit_content').select(['event_id', 'salt']).execute();
    expect(content).toHaveLength(5); // events 3 and 9 carry no content; 6 and 8 failed
    for (const row of content) expect(row.salt).toMatch(/^[0-9a-f]{64}$/);

    const reopened = await TransparencyLog.open(store, { readOnly: true });
    expect(reopened.latestCheckpoint?.size).toBe(7);
    expect(await verifyLive(store, reopened)).toEqual({ ok: true, events: 7, checkpoints: 1 });
  });

  it('rejects events after close, and close signs a checkpoint covering everything recorded', async () => {
    const { store } = current();
    const log = await TransparencyLog.open(store, { checkpointIntervalMs: 60_000 });
    const recorder = new AuditRecorder(store, log, new IdGenerator(systemClock), { commitDelayMs: 2 });
    const recorded = await Promise.all([11, 12, 13].map((n) => recorder.record(input(n))));
    expect(recorded.map((e) => e.seq)).toEqual([8, 9, 10]);
    await recorder.close();
    await expect(recorder.record(input(14))).rejects.toMatchObject({ code: 'store_unavailable' });
    await log.close();
    expect(log.latestCheckpoint?.size).toBe(10);
  });
});
