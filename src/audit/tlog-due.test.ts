import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { openStore, type Store } from '../store/index.js';
import type { AuditEvent } from './events.js';
import { TransparencyLog } from './tlog.js';

let store: Store | undefined;
afterEach(async () => {
  await store?.close();
  store = undefined;
});

function makeEvent(seq: number): AuditEvent {
  return {
    id: `evt_${String(seq).padStart(8, '0')}`,
    seq,
    time: 1_767_225_600_000 + seq,
    agentId: 'agt_a',
    owner: 'alice@example.com',
    taskId: 'task_1',
    method: 'tools/call',
    server: 'files',
    target: 'read_file',
    argsHash: null,
    effect: 'allow',
    policyIds: ['base'],
    reasons: [],
    outcome: 'executed',
    errorCode: null,
    latencyUs: 100,
    traceId: null,
    policySetHash: null,
    approvalId: null,
    arguments: { path: `/data/${seq}.txt` },
  };
}

async function append(log: TransparencyLog, count: number): Promise<void> {
  const base = log.nextSeq;
  const { rows, pending } = log.prepareAppend(Array.from({ length: count }, (_, i) => makeEvent(base + i)));
  await store!.insertMany(rows);
  log.commit(pending);
}

/** Hold the event loop for `ms`, as a backlog of synchronous batch writes does. */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {}
}

it('signs a due checkpoint between batches even when the event loop gave its timer no turn', async () => {
  store = await openStore('sqlite::memory:');
  const log = await TransparencyLog.open(store, { clock: new ManualClock(0), checkpointIntervalMs: 50 });
  await append(log, 3);
  busy(60); // the timer's deadline passes without it running
  const due = log.checkpointIfDue();
  expect(due).toBeDefined();
  await due;
  expect(log.latestCheckpoint?.size).toBe(3);
  // Covered now: nothing is due until the next append.
  expect(log.checkpointIfDue()).toBeUndefined();
  await log.close();
});
