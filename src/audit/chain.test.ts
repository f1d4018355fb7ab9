import { expect, it } from 'vitest';
import { describeEachStore } from '../../test/support/stores.js';
import { systemClock } from '../core/clock.js';
import { IdGenerator } from '../core/ids.js';
import { loadDecisionChain } from './chain.js';
import type { AuditEventInput } from './events.js';
import { AuditRecorder } from './recorder.js';
import { TransparencyLog } from './tlog.js';

const t0 = Date.UTC(2026, 10, 28, 9, 0, 0);

function call(n: number, over: Partial<AuditEventInput> = {}): AuditEventInput {
  return {
    time: t0 + n * 1000,
    agentId: 'agt_chain',
    owner: 'dana@example.com',
    taskId: 'tsk_chain',
    method: 'tools/call',
    server: 'files',
    target: `tool_${n}`,
    argsHash: null,
    effect: 'allow',
    policyIds: ['p'],
    reasons: [],
    outcome: 'executed',
    errorCode: null,
    latencyUs: 100,
    traceId: null,
    arguments: { n },
    reasoning: `step ${n}`,
    result: { ok: n },
    ...over,
  };
}

await describeEachStore('decision_chain', (current) => {
  it('loads a task chain and a trace chain in log order, with content, and says when it is cut', async () => {
    const { store } = current();
    const log = await TransparencyLog.open(store, { checkpointIntervalMs: 60_000 });
    const recorder = new AuditRecorder(store, log, new IdGenerator(systemClock), { commitDelayMs: 0 });
    await recorder.record(call(1));
    await recorder.record(call(2, { taskId: 'tsk_other', traceId: 'trace_x' }));
    await recorder.record(
      call(3, { traceId: 'trace_x', effect: 'deny', outcome: 'denied', errorCode: 'policy_denied' }),
    );
    await recorder.record(
      call(4, {
        method: 'approvals/decide',
        server: null,
        target: 'apr_1',
        arguments: { decision: 'approved', decidedBy: 'oncall@example.com' },
      }),
    );
    await recorder.close();
    await log.close();

    const task = await loadDecisionChain(store, 'tsk_chain');
    expect(task.truncated).toBe(false);
    expect(task.steps.map((s) => s.call.name ?? s.call.method)).toEqual([
      'files.tool_1',
      'files.tool_3',
      'apr_1',
    ]);
    expect(task.steps[0]).toMatchObject({
      reasoning: 'step 1',
      call: { arguments: '{"n":1}' },
      outcome: { result: '{"ok":1}' },
    });
    expect(task.steps[1]?.decision.effect).toBe('deny');
    // An approval event no call consumed stands as its own step.
    expect(task.steps[2]?.call.method).toBe('approvals/decide');

    const traced = await loadDecisionChain(store, 'trace_x');
    expect(traced.steps.map((s) => s.call.name)).toEqual(['files.tool_2', 'files.tool_3']);

    const cut = await loadDecisionChain(store, 'tsk_chain', { limit: 2 });
    expect(cut.truncated).toBe(true);
    expect(cut.steps).toHaveLength(2);

    expect((await loadDecisionChain(store, 'nothing')).steps).toEqual([]);
  });
});
