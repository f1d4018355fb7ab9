import type { Store } from '../store/index.js';
import type { AuditEvent } from './events.js';
import { eventFromRow } from './query.js';
import { APPROVAL_METHOD_PREFIX, approvalIdOf, type ChainStep, decisionChain } from './trace.js';

/** A decision chain as the admin API and `custos audit trace --json` give it. */
export interface DecisionChain {
  /** The task id or trace id asked for. */
  id: string;
  steps: ChainStep[];
  /** True when the task or trace has more events than the limit; the oldest `limit` are shown. */
  truncated: boolean;
}

export interface LoadChainOptions {
  /** Most events read (default 1000). */
  limit?: number;
  maxValueChars?: number;
  maxReasoningChars?: number;
  /** Resolves an agent id to its name, for people reading the chain. */
  agentName?: (agentId: string) => Promise<string | undefined> | string | undefined;
}

async function eventsWhere(
  store: Store,
  where: (q: ReturnType<typeof selectEvents>) => ReturnType<typeof selectEvents>,
  limit: number,
): Promise<AuditEvent[]> {
  const rows = await where(selectEvents(store)).orderBy('audit_events.seq').limit(limit).execute();
  return rows.map((row) => eventFromRow(row));
}

function selectEvents(store: Store) {
  return store.db
    .selectFrom('audit_events')
    .leftJoin('audit_content', 'audit_content.event_id', 'audit_events.id')
    .selectAll('audit_events')
    .select([
      'audit_content.salt',
      'audit_content.arguments',
      'audit_content.reasoning',
      'audit_content.result',
    ]);
}

/**
 * The decision chain of one task or trace, read from the store: every event whose task id or
 * trace id is `id`, in log order, with its content where not erased, and the approval events
 * (method approvals/..., target the approval id) of every approval those calls consumed.
 */
export async function loadDecisionChain(
  store: Store,
  id: string,
  options: LoadChainOptions = {},
): Promise<DecisionChain> {
  const limit = options.limit ?? 1000;
  const events = await eventsWhere(
    store,
    (q) =>
      q.where((eb) => eb.or([eb('audit_events.task_id', '=', id), eb('audit_events.trace_id', '=', id)])),
    limit + 1,
  );
  const truncated = events.length > limit;
  if (truncated) events.length = limit;
  const approvalIds = [...new Set(events.map(approvalIdOf).filter((a): a is string => a !== undefined))];
  const seen = new Set(events.map((e) => e.id));
  if (approvalIds.length > 0) {
    const approvals = await eventsWhere(
      store,
      (q) =>
        q
          .where('audit_events.method', 'like', `${APPROVAL_METHOD_PREFIX}%`)
          // The approvals engine commits the approval id; earlier events named it as the target.
          .where((eb) =>
            eb.or([
              eb('audit_events.approval_id', 'in', approvalIds),
              eb('audit_events.target', 'in', approvalIds),
            ]),
          ),
      limit,
    );
    for (const event of approvals) if (!seen.has(event.id)) events.push(event);
  }
  const steps = decisionChain(events, {
    id,
    ...(options.maxValueChars === undefined ? {} : { maxValueChars: options.maxValueChars }),
    ...(options.maxReasoningChars === undefined ? {} : { maxReasoningChars: options.maxReasoningChars }),
  });
  if (options.agentName !== undefined) {
    const names = new Map<string, string | undefined>();
    for (const step of steps) {
      if (step.agentId === null) continue;
      if (!names.has(step.agentId)) names.set(step.agentId, await options.agentName(step.agentId));
      const name = names.get(step.agentId);
      if (name !== undefined) step.agentName = name;
    }
  }
  return { id, steps, truncated };
}
