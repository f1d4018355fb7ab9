import { expect, it } from 'vitest';
import { describeEachStore } from '../../test/support/stores.js';
import { systemClock } from '../core/clock.js';
import { IdGenerator } from '../core/ids.js';
import type { Store } from '../store/index.js';
import type { AuditEvent, AuditEventInput } from './events.js';
import { AuditRecorder } from './recorder.js';
import { TransparencyLog } from './tlog.js';

function input(n: number): AuditEventInput {
  return {
    time: 1_767_225_600_000 + n,
    agentId: 'agt_listen',
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
    latencyUs: 10,
    traceId: null,
  };
}

/** A store whose next insertMany fails once. */
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

await describeEachStore('recorder_listeners', (current) => {
  it('tells listeners of durable batches only, after the callers, and survives a listener that throws', async () => {
    const store = failingOnce(current().store);
    const log = await TransparencyLog.open(store, { checkpointIntervalMs: 60_000 });
    const errors: unknown[] = [];
    const recorder = new AuditRecorder(store, log, new IdGenerator(systemClock), {
      commitDelayMs: 0,
      onListenerError: (error) => errors.push(error),
    });
    const seen: AuditEvent[] = [];
    const order: string[] = [];
    recorder.onDurable(() => {
      throw new Error('exporter bug');
    });
    const stop = recorder.onDurable((events) => {
      order.push('listener');
      seen.push(...events);
    });

    const first = recorder.record(input(1)).then((e) => {
      order.push('caller');
      return e;
    });
    const recorded = await first;
    store.failNext();
    await expect(recorder.record(input(2))).rejects.toMatchObject({ code: 'store_unavailable' });
    await recorder.record(input(3));
    await new Promise((r) => setImmediate(r));

    expect(order[0]).toBe('caller');
    expect(seen.map((e) => e.time)).toEqual([input(1).time, input(3).time]);
    expect(seen[0]?.seq).toBe(recorded.seq);
    expect(errors.map((e) => (e as Error).message)).toEqual(['exporter bug', 'exporter bug']);

    stop();
    await recorder.record(input(4));
    await new Promise((r) => setImmediate(r));
    expect(seen).toHaveLength(2);
    await recorder.close();
    await log.close();
  });
});
