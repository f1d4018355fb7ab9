import { callHash } from '../core/call-hash.js';
import type { AuditEvent } from './events.js';

/**
 * Decision chains: the calls of one task or trace, in order, each with the agent's reasoning, the
 * call, the policy decision, the approval and the outcome, rendered as plain text for a human
 * (`custos audit trace`). The same steps serve the admin API as JSON.
 */

/** One governed call in a decision chain, with content already shortened for display. */
export interface ChainStep {
  seq: number;
  eventId: string;
  time: number;
  agentId: string | null;
  /** The agent's name, when the caller could resolve it (decisionChain leaves it out). */
  agentName?: string;
  owner: string | null;
  taskId: string | null;
  traceId: string | null;
  /** True when the event's content (arguments, reasoning, result) was erased; the leaf still commits to it. */
  erased: boolean;
  /** The agent's stated reasoning, or null when it gave none or it was erased. */
  reasoning: string | null;
  call: {
    method: string;
    /** server.target, or whichever of the two is known. */
    name: string | null;
    /** The arguments as compact JSON, shortened; null when absent (erased or never given). */
    arguments: string | null;
    argsHash: string | null;
  };
  decision: {
    effect: 'allow' | 'deny';
    policyIds: readonly string[];
    reasons: readonly string[];
  };
  /** Present when the event names the approval the call consumed, with its recorded decisions. */
  approval?: ChainApproval;
  outcome: {
    outcome: AuditEvent['outcome'];
    errorCode: string | null;
    latencyMs: number;
    /** The upstream result as compact JSON, shortened; null when absent. */
    result: string | null;
  };
}

/** The approval a call consumed, and who decided it when, from the approval audit events. */
export interface ChainApproval {
  approvalId: string;
  /** The call hash the approvers decided on (from the decision events), or null when none is in the log. */
  callHash: string | null;
  /**
   * Whether that hash is the hash of this call (agent, task, server, tool and arguments), recomputed
   * from the event: null when it cannot be recomputed (no decision event, or the arguments were erased).
   */
  callHashMatches: boolean | null;
  /** Oldest first; empty when no approval event for this id is in the log (or in the selection). */
  decisions: ApprovalDecision[];
}

/** One recorded approval event: a request being opened, approved or rejected. */
export interface ApprovalDecision {
  seq: number;
  eventId: string;
  time: number;
  /** approvals/request, approvals/decide, ... */
  method: string;
  /** "approved", "rejected", "requested", or what the event says; from its arguments or its effect. */
  decision: string;
  /** The person who decided (their email), when the event names one. */
  by: string | null;
  /** The call hash the decision was about (the approval event's argsHash). */
  callHash: string | null;
  reasons: readonly string[];
}

/** Audit events recorded by the approvals engine rather than by a governed call. */
export const APPROVAL_METHOD_PREFIX = 'approvals/';

export function isApprovalEvent(event: AuditEvent): boolean {
  return event.method.startsWith(APPROVAL_METHOD_PREFIX);
}

export interface ChainOptions {
  /** Keep only events whose task id or trace id equals this. */
  id?: string;
  /** Longest arguments or result text kept, in characters (default 240). */
  maxValueChars?: number;
  /** Longest reasoning text kept, in characters (default 1000). */
  maxReasoningChars?: number;
}

/** Shortens text to at most max characters, saying how much was cut. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.length - max;
  return `${text.slice(0, max)}... (${cut} more chars)`;
}

function compactJson(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    // Circular or BigInt content cannot be JSON; show something rather than fail the whole chain.
    return String(value);
  }
}

function reasoningText(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value.trim() === '' ? null : value;
  return compactJson(value);
}

/**
 * The approval id an event carries: its approvalId field (set by the gateway on a call that
 * consumed an approval), or, for an approval event (method approvals/...), its target.
 */
export function approvalIdOf(event: AuditEvent): string | undefined {
  const value = (event as AuditEvent & { approvalId?: unknown }).approvalId;
  if (typeof value === 'string' && value !== '') return value;
  if (isApprovalEvent(event) && event.target !== null && event.target !== '') return event.target;
  return undefined;
}

function stringField(value: unknown, ...keys: string[]): string | null {
  if (value === null || typeof value !== 'object') return null;
  for (const key of keys) {
    const field = (value as Record<string, unknown>)[key];
    if (typeof field === 'string' && field !== '') return field;
  }
  return null;
}

/**
 * What an approval event says. The approvals engine records a decision as an event with method
 * approvals/decide, the approval id as target (or approvalId), and the decider and decision in its
 * arguments ({decidedBy | approver, decision}); without them, the effect says approved or rejected.
 */
export function approvalDecisionOf(event: AuditEvent): ApprovalDecision {
  const fallback =
    event.method === 'approvals/request'
      ? 'requested'
      : event.method === 'approvals/cancel'
        ? 'cancelled'
        : event.effect === 'allow'
          ? 'approved'
          : 'rejected';
  const approver =
    event.arguments !== null && typeof event.arguments === 'object'
      ? (event.arguments as Record<string, unknown>).approver
      : undefined;
  return {
    seq: event.seq,
    eventId: event.id,
    time: event.time,
    method: event.method,
    decision: decisionWord(stringField(event.arguments, 'decision', 'status')) ?? fallback,
    // The committed reasons first: they name the voter as approval votes do, and survive erasure.
    by:
      deciderInReasons(event.reasons) ??
      stringField(event.arguments, 'decidedBy', 'by', 'actor') ??
      stringField(approver, 'name', 'email', 'id') ??
      (typeof approver === 'string' && approver !== '' ? approver : null),
    callHash: event.argsHash,
    reasons: event.reasons,
  };
}

/** "approve" and "deny" (the approvals engine's verbs) read as what happened. */
function decisionWord(value: string | null): string | null {
  if (value === 'approve') return 'approved';
  if (value === 'deny') return 'denied';
  return value;
}

/**
 * The decider as the committed reasons name them ("approve by dana@example.com (usr_1) via api",
 * "cancelled by ..."), so the chain still says who after the event's content was erased.
 */
function deciderInReasons(reasons: readonly string[]): string | null {
  for (const reason of reasons) {
    const match = /^(?:approve|deny|cancelled|revoked) by (\S+)/.exec(reason);
    if (match !== null) return match[1]!;
  }
  return null;
}

/** The hash an approval of this call would be bound to, or null when its arguments were erased. */
function callHashOfEvent(event: AuditEvent, erased: boolean): string | null {
  if (erased || event.agentId === null || event.target === null) return null;
  return callHash({
    agentId: event.agentId,
    taskId: event.taskId,
    server: event.server ?? '',
    tool: event.target,
    arguments: event.arguments,
  });
}

/**
 * The decision chain for a set of audit events: in log order (sequence number), optionally only
 * those of one task or trace id.
 */
export function decisionChain(events: readonly AuditEvent[], options: ChainOptions = {}): ChainStep[] {
  const maxValue = options.maxValueChars ?? 240;
  const maxReasoning = options.maxReasoningChars ?? 1000;
  const selected =
    options.id === undefined
      ? [...events]
      : events.filter(
          (event) => event.taskId === options.id || event.traceId === options.id || isApprovalEvent(event),
        );
  selected.sort((a, b) => a.seq - b.seq);

  // Approval events fold into the calls that consumed their approval; the rest stand as steps.
  const calls = selected.filter((event) => !isApprovalEvent(event));
  const consumed = new Set(calls.map(approvalIdOf).filter((id): id is string => id !== undefined));
  const decisions = new Map<string, ApprovalDecision[]>();
  const steps = selected.filter((event) => {
    if (!isApprovalEvent(event)) return true;
    const id = approvalIdOf(event);
    if (id === undefined || !consumed.has(id)) {
      // Approval events outside the selection's task or trace are kept only when a call links them.
      return options.id === undefined || event.taskId === options.id || event.traceId === options.id;
    }
    decisions.set(id, [...(decisions.get(id) ?? []), approvalDecisionOf(event)]);
    return false;
  });

  return steps.map((event) => {
    const name = [event.server, event.target].filter((part) => part !== null).join('.');
    const reasoning = reasoningText(event.reasoning);
    const erased = event.erased === true;
    const step: ChainStep = {
      seq: event.seq,
      eventId: event.id,
      time: event.time,
      agentId: event.agentId,
      owner: event.owner,
      taskId: event.taskId,
      traceId: event.traceId,
      erased,
      reasoning: reasoning === null ? null : truncate(reasoning, maxReasoning),
      call: {
        method: event.method,
        name: name === '' ? null : name,
        arguments: event.arguments === undefined ? null : truncate(compactJson(event.arguments), maxValue),
        argsHash: event.argsHash,
      },
      decision: { effect: event.effect, policyIds: event.policyIds, reasons: event.reasons },
      outcome: {
        outcome: event.outcome,
        errorCode: event.errorCode,
        latencyMs: event.latencyUs / 1000,
        result: event.result === undefined ? null : truncate(compactJson(event.result), maxValue),
      },
    };
    const approvalId = approvalIdOf(event);
    if (approvalId !== undefined) {
      // An approval event standing as its own step (no call in the selection consumed it) is its decision.
      const recorded = isApprovalEvent(event)
        ? [approvalDecisionOf(event)]
        : (decisions.get(approvalId) ?? []);
      // The hash the approvers saw: every decision on one approval is about the same call.
      const approved = recorded.find((d) => d.callHash !== null)?.callHash ?? null;
      const own = approved === null || isApprovalEvent(event) ? null : callHashOfEvent(event, erased);
      step.approval = {
        approvalId,
        callHash: approved,
        callHashMatches: own === null ? null : own === approved,
        decisions: recorded,
      };
    }
    return step;
  });
}

const LABEL_WIDTH = 11;

/** "label:" padded to a column, then the value; continuation lines of the value line up under it. */
function field(label: string, value: string, indent: string): string[] {
  const head = `${indent}${(label === '' ? '' : `${label}:`).padEnd(LABEL_WIDTH)}`;
  const pad = ' '.repeat(head.length);
  return value.split(/\r?\n/).map((line, i) => (i === 0 ? head : pad) + line);
}

function formatLatency(ms: number): string {
  if (ms < 1) return `${Math.round(ms * 1000)} us`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

function renderStep(step: ChainStep, index: number): string[] {
  const lines: string[] = [];
  const who =
    step.agentName === undefined ? (step.agentId ?? 'unknown agent') : `${step.agentName} (${step.agentId})`;
  const owner = step.owner === null ? '' : ` (owner ${step.owner})`;
  lines.push(`${index + 1}. [seq ${step.seq}] ${new Date(step.time).toISOString()}  ${who}${owner}`);
  const indent = '   ';

  lines.push(...field('reasoning', step.reasoning ?? (step.erased ? '(erased)' : '(none recorded)'), indent));

  const target = step.call.name === null ? step.call.method : `${step.call.name}  (${step.call.method})`;
  lines.push(...field('call', target, indent));
  const args =
    step.call.arguments ??
    (step.erased
      ? `(erased${step.call.argsHash === null ? '' : `; sha256 ${step.call.argsHash.slice(0, 16)}...`})`
      : step.call.argsHash === null
        ? '(none)'
        : `(not available; sha256 ${step.call.argsHash.slice(0, 16)}...)`);
  lines.push(...field('arguments', args, `${indent}  `));

  lines.push(...field('decision', step.decision.effect.toUpperCase(), indent));
  const policies = step.decision.policyIds.length > 0 ? step.decision.policyIds.join(', ') : '(none matched)';
  lines.push(...field('policies', policies, `${indent}  `));
  for (const [i, reason] of step.decision.reasons.entries()) {
    lines.push(...field(i === 0 ? 'reasons' : '', `- ${reason}`, `${indent}  `));
  }

  if (step.approval !== undefined) {
    const { approvalId, callHash: approved, callHashMatches, decisions } = step.approval;
    lines.push(...field('approval', approvalId, indent));
    for (const d of decisions) {
      const by = d.by === null ? '' : ` by ${d.by}`;
      lines.push(
        ...field('', `${d.decision}${by} at ${new Date(d.time).toISOString()} [seq ${d.seq}]`, indent),
      );
    }
    if (decisions.length === 0) lines.push(...field('', '(no decision recorded in the log)', indent));
    if (approved !== null) {
      const check =
        callHashMatches === null
          ? 'not rechecked: the arguments are erased'
          : callHashMatches
            ? 'the hash of this call'
            : 'NOT the hash of this call';
      lines.push(...field('', `call hash ${approved} (${check})`, indent));
    }
  }

  const error = step.outcome.errorCode === null ? '' : ` (${step.outcome.errorCode})`;
  lines.push(
    ...field(
      'outcome',
      `${step.outcome.outcome}${error} in ${formatLatency(step.outcome.latencyMs)}`,
      indent,
    ),
  );
  if (step.outcome.result !== null) lines.push(...field('result', step.outcome.result, `${indent}  `));
  else if (step.erased && step.outcome.outcome === 'executed')
    lines.push(...field('result', '(erased)', `${indent}  `));
  return lines;
}

/**
 * The chain as plain text: a header, then one numbered block per call with indented fields. No
 * colour codes, so it reads the same in a terminal, a ticket or an evidence file.
 */
export function renderChain(steps: readonly ChainStep[], title?: string): string {
  if (steps.length === 0) return `${title ?? 'Decision chain'}: no events\n`;
  const first = steps[0]!;
  const last = steps[steps.length - 1]!;
  const denied = steps.filter((s) => s.decision.effect === 'deny').length;
  const failed = steps.filter((s) => s.outcome.outcome === 'failed').length;
  const header = [
    title ?? `Decision chain${first.taskId === null ? '' : ` for task ${first.taskId}`}`,
    `${steps.length} call${steps.length === 1 ? '' : 's'}, ${denied} denied, ${failed} failed, ` +
      `${new Date(first.time).toISOString()} to ${new Date(last.time).toISOString()}`,
  ];
  const blocks = steps.map((step, i) => renderStep(step, i).join('\n'));
  return `${header.join('\n')}\n\n${blocks.join('\n\n')}\n`;
}
