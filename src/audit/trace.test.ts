import { describe, expect, it } from 'vitest';
import { callHash } from '../core/call-hash.js';
import type { AuditEvent } from './events.js';
import { decisionChain, renderChain, truncate } from './trace.js';

const base: AuditEvent = {
  id: 'evt-0',
  seq: 0,
  time: Date.UTC(2026, 10, 28, 9, 0, 0),
  agentId: 'support-bot',
  owner: 'alice@example.com',
  taskId: 'task-42',
  method: 'tools/call',
  server: 'tickets',
  target: 'get_ticket',
  argsHash: 'c0ffee'.repeat(10),
  effect: 'allow',
  policyIds: ['support-read-tickets'],
  reasons: [],
  outcome: 'executed',
  errorCode: null,
  latencyUs: 12_300,
  traceId: 'trace-a',
  policySetHash: null,
  approvalId: null,
};

const allowed: AuditEvent = {
  ...base,
  id: 'evt-1',
  seq: 11,
  reasoning: 'The customer asked for the status of ticket T-1.',
  arguments: { id: 'T-1' },
  result: { content: [{ type: 'text', text: 'status: open' }] },
};

const denied: AuditEvent = {
  ...base,
  id: 'evt-2',
  seq: 12,
  time: base.time + 2000,
  target: 'delete_ticket',
  effect: 'deny',
  policyIds: ['forbid-destructive-tools', 'support-read-only'],
  reasons: ['delete_ticket is destructive', 'support agents are read-only'],
  outcome: 'denied',
  errorCode: 'policy_denied',
  latencyUs: 400,
  reasoning: { plan: 'clean up duplicate ticket', step: 2 },
  arguments: { id: 'T-2' },
};

const failed: AuditEvent = {
  ...base,
  id: 'evt-3',
  seq: 13,
  time: base.time + 5000,
  server: 'crm',
  target: 'lookup_customer',
  policyIds: ['support-read-crm'],
  outcome: 'failed',
  errorCode: 'upstream_timeout',
  latencyUs: 30_000_000,
  reasoning: 'Need the customer record\nto check the SLA.',
  arguments: { email: 'bob@example.com', note: 'x'.repeat(1000) },
};

const otherTask: AuditEvent = { ...base, id: 'evt-9', seq: 14, taskId: 'task-7', traceId: 'trace-b' };

describe('decisionChain', () => {
  it('orders the events by sequence number and keeps only the task asked for', () => {
    const steps = decisionChain([failed, otherTask, denied, allowed], { id: 'task-42' });
    expect(steps.map((s) => s.eventId)).toEqual(['evt-1', 'evt-2', 'evt-3']);
  });

  it('selects by trace id as well as task id', () => {
    expect(decisionChain([allowed, otherTask], { id: 'trace-b' }).map((s) => s.eventId)).toEqual(['evt-9']);
  });

  it('carries the decision, the outcome with latency, and truncated arguments', () => {
    const [, deny, fail] = decisionChain([allowed, denied, failed]);
    expect(deny?.decision).toEqual({
      effect: 'deny',
      policyIds: ['forbid-destructive-tools', 'support-read-only'],
      reasons: ['delete_ticket is destructive', 'support agents are read-only'],
    });
    expect(deny?.reasoning).toBe('{"plan":"clean up duplicate ticket","step":2}');
    expect(fail?.outcome).toEqual({
      outcome: 'failed',
      errorCode: 'upstream_timeout',
      latencyMs: 30_000,
      result: null,
    });
    expect(fail?.call.arguments?.length).toBeLessThan(300);
    expect(fail?.call.arguments).toMatch(/^\{"email":"bob@example.com".*\.\.\. \(\d+ more chars\)$/);
  });

  it('includes the approval only when the event names one', () => {
    const approved = { ...allowed, approvalId: 'apr-5' } as AuditEvent;
    const [withApproval, without] = decisionChain([approved, { ...denied }]);
    expect(withApproval?.approval).toEqual({
      approvalId: 'apr-5',
      callHash: null,
      callHashMatches: null,
      decisions: [],
    });
    expect(without).not.toHaveProperty('approval');
  });

  it('folds the approval decision events into the call that consumed the approval, in order', () => {
    const requested: AuditEvent = {
      ...base,
      id: 'evt-r',
      seq: 5,
      method: 'approvals/request',
      server: null,
      target: 'apr-5',
      taskId: null,
      traceId: null,
    };
    const decided: AuditEvent = {
      ...requested,
      id: 'evt-d',
      seq: 9,
      time: base.time - 1000,
      method: 'approvals/decide',
      arguments: { decision: 'approved', decidedBy: 'oncall@example.com' },
      reasons: ["ticket T-1 is the customer's own"],
    };
    const other: AuditEvent = { ...decided, id: 'evt-o', seq: 10, target: 'apr-9' };
    const approved = { ...allowed, approvalId: 'apr-5' } as AuditEvent;
    const steps = decisionChain([approved, decided, requested, other], { id: 'task-42' });
    expect(steps.map((s) => s.eventId)).toEqual(['evt-1']);
    expect(steps[0]?.approval?.decisions.map((d) => [d.method, d.decision, d.by])).toEqual([
      ['approvals/request', 'requested', null],
      ['approvals/decide', 'approved', 'oncall@example.com'],
    ]);
    expect(renderChain(steps)).toContain(
      [
        '   approval:  apr-5',
        '              requested at 2026-11-28T09:00:00.000Z [seq 5]',
        '              approved by oncall@example.com at 2026-11-28T08:59:59.000Z [seq 9]',
      ].join('\n'),
    );
  });
});

describe('decisionChain with the approvals engine', () => {
  // What the approvals engine records for a decision: the approval id committed, the call hash as argsHash.
  const hashOfAllowed = callHash({
    agentId: 'support-bot',
    taskId: 'task-42',
    server: 'tickets',
    tool: 'get_ticket',
    arguments: { id: 'T-1' },
  });
  const decide: AuditEvent = {
    ...base,
    id: 'evt-d',
    seq: 9,
    time: base.time - 1000,
    traceId: null,
    method: 'approvals/decide',
    argsHash: hashOfAllowed,
    approvalId: 'apr_5',
    reasons: ['approval apr_5', 'approve by dana@example.com (usr_1) via console', `call ${hashOfAllowed}`],
    arguments: {
      approvalId: 'apr_5',
      decision: 'approve',
      approver: { id: 'usr_1', name: 'dana@example.com' },
    },
  };
  const consumer = { ...allowed, approvalId: 'apr_5', reasons: ['approval apr_5'] } as AuditEvent;

  it('names who approved, when, and the call hash approved, and rechecks it against the call', () => {
    const [step, ...rest] = decisionChain([consumer, decide], { id: 'task-42' });
    expect(rest).toEqual([]);
    expect(step?.approval).toEqual({
      approvalId: 'apr_5',
      callHash: hashOfAllowed,
      callHashMatches: true,
      decisions: [
        expect.objectContaining({ decision: 'approved', by: 'dana@example.com', time: decide.time, seq: 9 }),
      ],
    });
    const text = renderChain([step!]);
    expect(text).toContain('approved by dana@example.com at 2026-11-28T08:59:59.000Z [seq 9]');
    expect(text).toContain(`call hash ${hashOfAllowed} (the hash of this call)`);
  });

  it('says when the approved hash is not the hash of the call that consumed it', () => {
    const other = { ...consumer, arguments: { id: 'T-9' } } as AuditEvent;
    const [step] = decisionChain([other, decide]);
    expect(step?.approval?.callHashMatches).toBe(false);
    expect(renderChain([step!])).toContain('(NOT the hash of this call)');
  });

  it('still names the approver from the committed reasons once the content is erased', () => {
    const { arguments: _gone, ...erasedDecide } = decide;
    const { arguments: _a, reasoning: _r, result: _x, ...erasedCall } = consumer;
    const [step] = decisionChain([
      { ...erasedCall, erased: true },
      { ...erasedDecide, erased: true },
    ]);
    expect(step?.approval?.decisions[0]?.by).toBe('dana@example.com');
    expect(step?.approval?.callHashMatches).toBeNull();
    const text = renderChain([step!]);
    expect(text).toContain('reasoning: (erased)');
    expect(text).toMatch(/arguments: \(erased; sha256 c0ffeec0ffeec0ff\.\.\.\)/);
    expect(text).toContain('result:    (erased)');
    expect(text).toContain('(not rechecked: the arguments are erased)');
  });
});

describe('renderChain', () => {
  const text = renderChain(decisionChain([allowed, denied, failed], { id: 'task-42' }));

  it('names the task and counts calls, denials and failures in the header', () => {
    expect(text.split('\n').slice(0, 2)).toEqual([
      'Decision chain for task task-42',
      '3 calls, 1 denied, 1 failed, 2026-11-28T09:00:00.000Z to 2026-11-28T09:00:05.000Z',
    ]);
  });

  it('renders the allowed call with its reasoning, call, policy, result and latency', () => {
    expect(text).toContain(
      [
        '1. [seq 11] 2026-11-28T09:00:00.000Z  support-bot (owner alice@example.com)',
        '   reasoning: The customer asked for the status of ticket T-1.',
        '   call:      tickets.get_ticket  (tools/call)',
        '     arguments: {"id":"T-1"}',
        '   decision:  ALLOW',
        '     policies:  support-read-tickets',
        '   outcome:   executed in 12.3 ms',
        '     result:    {"content":[{"type":"text","text":"status: open"}]}',
      ].join('\n'),
    );
  });

  it('names every denying policy and each reason', () => {
    expect(text).toContain(
      [
        '   decision:  DENY',
        '     policies:  forbid-destructive-tools, support-read-only',
        '     reasons:   - delete_ticket is destructive',
        '                - support agents are read-only',
        '   outcome:   denied (policy_denied) in 400 us',
      ].join('\n'),
    );
  });

  it('indents multi-line reasoning under its label and shows upstream failures with their code', () => {
    expect(text).toContain(
      ['   reasoning: Need the customer record', '              to check the SLA.'].join('\n'),
    );
    expect(text).toContain('   outcome:   failed (upstream_timeout) in 30.00 s');
  });

  it('says when reasoning and arguments are not available, as after erasure', () => {
    const erased: AuditEvent = { ...base, id: 'evt-e', seq: 20 };
    const out = renderChain(decisionChain([erased]));
    expect(out).toContain('   reasoning: (none recorded)');
    expect(out).toContain('     arguments: (not available; sha256 c0ffeec0ffeec0ff...)');
  });

  it('shows the approval id when present', () => {
    const out = renderChain(decisionChain([{ ...allowed, approvalId: 'apr-5' } as AuditEvent]));
    expect(out).toContain('   approval:  apr-5');
  });

  it('contains no terminal escape codes', () => {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: checking for escape codes is the point
    expect(text).not.toMatch(/\u001b/);
  });

  it('reports an empty chain plainly', () => {
    expect(renderChain([])).toBe('Decision chain: no events\n');
  });
});

describe('truncate', () => {
  it('keeps short text and marks how much of long text was cut', () => {
    expect(truncate('abc', 3)).toBe('abc');
    expect(truncate('abcdef', 3)).toBe('abc... (3 more chars)');
  });
});
