import type { AuditContentTable, AuditEventTable, Store } from '../store/index.js';
import type { CommitmentRecord, CommittableEvent } from './commitment.js';
import type { AuditEvent } from './events.js';

export interface EventFilter {
  agentId?: string;
  taskId?: string;
  traceId?: string;
  /** Only events with a sequence number greater than this. */
  afterSeq?: number;
  server?: string;
  /** The tool, prompt or resource (with `server`, one tool). */
  target?: string;
  /** Only events of these methods (e.g. the governed calls, without listings and admin events). */
  methods?: readonly string[];
  /** Only events at or after this time (ms). */
  since?: number;
  /** Only events at or before this time (ms). */
  until?: number;
  /** Newest first, at most this many (default 50). */
  limit?: number;
  /** With `oldest`, the first `limit` events instead of the last (still returned oldest first). */
  from?: 'newest' | 'oldest';
}

type Row = AuditEventTable & Partial<Omit<AuditContentTable, 'event_id'>>;

function parse(text: string | null | undefined): unknown {
  return text === null || text === undefined ? undefined : JSON.parse(text);
}

/** An audit event from its row, with its content where the row carries it and it is not erased. */
export function eventFromRow(row: Row): AuditEvent {
  const event: AuditEvent = {
    seq: Number(row.seq),
    id: row.id,
    time: Number(row.time),
    agentId: row.agent_id,
    owner: row.owner,
    taskId: row.task_id,
    method: row.method,
    server: row.server,
    target: row.target,
    argsHash: row.args_hash,
    effect: row.effect as AuditEvent['effect'],
    policyIds: JSON.parse(row.policy_ids) as string[],
    reasons: JSON.parse(row.reasons) as string[],
    outcome: row.outcome as AuditEvent['outcome'],
    errorCode: row.error_code,
    latencyUs: Number(row.latency_us),
    traceId: row.trace_id,
    policySetHash: row.policy_set_hash ?? null,
    approvalId: row.approval_id ?? null,
  };
  for (const key of ['arguments', 'reasoning', 'result'] as const) {
    const value = parse(row[key]);
    if (value !== undefined) event[key] = value;
  }
  // Only where the query read the content row's salt: a committed event without one was erased.
  if ('salt' in row && row.salt === null && isCommitted(row)) event.erased = true;
  return event;
}

function isCommitted(row: Row): boolean {
  return (
    (row.arguments_hash ?? null) !== null ||
    (row.reasoning_hash ?? null) !== null ||
    (row.result_hash ?? null) !== null
  );
}

/** The most recent events matching the filter, oldest first. */
export async function listEvents(store: Store, filter: EventFilter = {}): Promise<AuditEvent[]> {
  const oldest = filter.from === 'oldest';
  const rows = await filtered(store.db.selectFrom('audit_events').selectAll(), filter)
    .orderBy('seq', oldest ? 'asc' : 'desc')
    .limit(filter.limit ?? 50)
    .execute();
  return (oldest ? rows : rows.reverse()).map(eventFromRow);
}

// biome-ignore lint/suspicious/noExplicitAny: one filter for select and count queries over audit_events
function filtered<Q extends { where: (...args: any[]) => Q }>(query: Q, filter: EventFilter): Q {
  let q = query;
  if (filter.agentId !== undefined) q = q.where('agent_id', '=', filter.agentId);
  if (filter.taskId !== undefined) q = q.where('task_id', '=', filter.taskId);
  if (filter.traceId !== undefined) q = q.where('trace_id', '=', filter.traceId);
  if (filter.server !== undefined) q = q.where('server', '=', filter.server);
  if (filter.target !== undefined) q = q.where('target', '=', filter.target);
  if (filter.methods !== undefined) q = q.where('method', 'in', filter.methods);
  if (filter.since !== undefined) q = q.where('time', '>=', filter.since);
  if (filter.until !== undefined) q = q.where('time', '<=', filter.until);
  if (filter.afterSeq !== undefined) q = q.where('seq', '>', filter.afterSeq);
  return q;
}

/** How many events match the filter, by outcome (executed, denied, failed). */
export async function countEvents(store: Store, filter: EventFilter = {}): Promise<Record<string, number>> {
  const rows = await filtered(
    store.db
      .selectFrom('audit_events')
      .select(['outcome', (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy('outcome'),
    filter,
  ).execute();
  const counts: Record<string, number> = { executed: 0, denied: 0, failed: 0 };
  for (const row of rows) counts[row.outcome] = Number(row.n);
  return counts;
}

/** One event with its content (arguments, reasoning, result) where not erased. */
export async function getEvent(store: Store, id: string): Promise<AuditEvent | undefined> {
  const row = await store.db
    .selectFrom('audit_events')
    .leftJoin('audit_content', 'audit_content.event_id', 'audit_events.id')
    .selectAll('audit_events')
    .select([
      'audit_content.salt',
      'audit_content.arguments',
      'audit_content.reasoning',
      'audit_content.result',
    ])
    .where('audit_events.id', '=', id)
    .executeTakeFirst();
  return row === undefined ? undefined : eventFromRow(row as Row);
}

/** The commitment columns of an audit_events row (see TransparencyLog.prepareAppend). */
export interface CommitmentColumns {
  readonly argumentsHash: string | null;
  readonly reasoningHash: string | null;
  readonly resultHash: string | null;
  /** Hex leaf hash. */
  readonly leafHash: string;
}

/** The audit_events row of an event (its content lives in audit_content), with its commitment if known. */
export function rowFromEvent(e: CommittableEvent, commitment?: CommitmentColumns): AuditEventTable {
  return {
    seq: e.seq,
    id: e.id,
    time: e.time,
    agent_id: e.agentId,
    owner: e.owner,
    task_id: e.taskId,
    method: e.method,
    server: e.server,
    target: e.target,
    args_hash: e.argsHash,
    effect: e.effect,
    policy_ids: JSON.stringify(e.policyIds),
    reasons: JSON.stringify(e.reasons),
    outcome: e.outcome,
    error_code: e.errorCode,
    latency_us: Math.round(e.latencyUs),
    trace_id: e.traceId,
    policy_set_hash: e.policySetHash ?? null,
    approval_id: e.approvalId ?? null,
    arguments_hash: commitment?.argumentsHash ?? null,
    reasoning_hash: commitment?.reasoningHash ?? null,
    result_hash: commitment?.resultHash ?? null,
    leaf_hash: commitment?.leafHash ?? null,
  };
}

/**
 * The commitment record an audit_events row commits to: the leaf is rebuilt from the row
 * rather than stored twice. Throws a SyntaxError when a JSON column was damaged.
 */
export function commitmentRecordOf(row: AuditEventTable): CommitmentRecord {
  return {
    agentId: row.agent_id,
    approvalId: row.approval_id ?? null,
    argumentsHash: row.arguments_hash ?? null,
    effect: row.effect,
    errorCode: row.error_code,
    id: row.id,
    method: row.method,
    outcome: row.outcome,
    owner: row.owner,
    policyIds: JSON.parse(row.policy_ids) as string[],
    policySetHash: row.policy_set_hash ?? null,
    reasons: JSON.parse(row.reasons) as string[],
    reasoningHash: row.reasoning_hash ?? null,
    resultHash: row.result_hash ?? null,
    seq: Number(row.seq),
    server: row.server,
    target: row.target,
    taskId: row.task_id,
    time: Number(row.time),
    v: 1,
  };
}
