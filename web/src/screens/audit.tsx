import { type FormEvent, useState } from 'react';
import { type AuditEvent, asText, formatTime } from '../api';
import { useData } from '../hooks';
import { Badge, EventList, Field, Problem, TextBlock } from './common';

interface Filters {
  agent: string;
  task: string;
  trace: string;
  effect: '' | 'allow' | 'deny';
}

const empty: Filters = { agent: '', task: '', trace: '', effect: '' };

export function AuditTimeline() {
  const [draft, setDraft] = useState<Filters>(empty);
  const [filters, setFilters] = useState<Filters>(empty);
  const query = new URLSearchParams({ limit: '200' });
  if (filters.agent) query.set('agent', filters.agent);
  if (filters.task) query.set('task', filters.task);
  if (filters.trace) query.set('trace', filters.trace);
  const { data, error } = useData<{ events: AuditEvent[] }>(`/audit/events?${query}`);
  const events = (data?.events ?? []).filter((e) => filters.effect === '' || e.effect === filters.effect);
  const apply = (event: FormEvent) => {
    event.preventDefault();
    setFilters(draft);
  };
  return (
    <section>
      <h1>Audit</h1>
      <form className="filters" onSubmit={apply} aria-label="filters">
        <label>
          Agent
          <input
            name="agent"
            value={draft.agent}
            onChange={(e) => setDraft({ ...draft, agent: e.target.value })}
            placeholder="name or id"
          />
        </label>
        <label>
          Task
          <input
            name="task"
            value={draft.task}
            onChange={(e) => setDraft({ ...draft, task: e.target.value })}
          />
        </label>
        <label>
          Trace
          <input
            name="trace"
            value={draft.trace}
            onChange={(e) => setDraft({ ...draft, trace: e.target.value })}
          />
        </label>
        <label>
          Decision
          <select
            name="effect"
            value={draft.effect}
            onChange={(e) => setDraft({ ...draft, effect: e.target.value as Filters['effect'] })}
          >
            <option value="">any</option>
            <option value="allow">allowed</option>
            <option value="deny">denied</option>
          </select>
        </label>
        <button type="submit">Filter</button>
      </form>
      <Problem error={error} />
      {data && <EventList events={events} empty="No events match." />}
    </section>
  );
}

interface ChainStep {
  seq: number;
  eventId: string;
  time: number;
  erased?: boolean;
  reasoning: string | null;
  call: { method: string; name: string | null; arguments: string | null };
  decision: { effect: string; policyIds: readonly string[]; reasons: readonly string[] };
  approval?: {
    approvalId: string;
    callHash?: string | null;
    callHashMatches?: boolean | null;
    decisions?: Array<{
      eventId: string;
      time: number;
      decision: string;
      by: string | null;
      reasons: readonly string[];
    }>;
  };
  outcome: { outcome: string; errorCode: string | null; latencyMs: number };
}

function stepsOf(data: unknown): ChainStep[] | undefined {
  if (Array.isArray(data)) return data as ChainStep[];
  if (data !== null && typeof data === 'object') {
    for (const key of ['steps', 'chain']) {
      const value = (data as Record<string, unknown>)[key];
      if (Array.isArray(value)) return value as ChainStep[];
      if (value !== null && typeof value === 'object') {
        const nested = stepsOf(value);
        if (nested) return nested;
      }
    }
  }
  return undefined;
}

/** The decision chain of the event's task (or trace): every call in order with reasoning and decision. */
function DecisionChain({ event }: { event: AuditEvent }) {
  const chainId = event.taskId ?? event.traceId;
  const chain = useData<unknown>(chainId ? `/audit/trace/${encodeURIComponent(chainId)}` : null, {
    live: false,
  });
  // Without the chain endpoint (or the role to read it), the task's or trace's events stand in.
  const related = useData<{ events: AuditEvent[] }>(
    chainId && chain.error !== undefined
      ? `/audit/events?${event.taskId ? 'task' : 'trace'}=${encodeURIComponent(chainId)}&limit=200`
      : null,
  );
  if (!chainId)
    return <p className="muted">This call belongs to no task or trace: its chain is this event alone.</p>;
  const steps = stepsOf(chain.data);
  if (steps) {
    return (
      <ol className="chain">
        {steps.map((s) => (
          <li key={s.eventId} className={s.eventId === event.id ? 'this' : undefined}>
            <div className="step-head">
              <a href={`#/audit/${encodeURIComponent(s.eventId)}`}>{formatTime(s.time)}</a>{' '}
              <strong>{s.call.name ?? s.call.method}</strong> <Badge value={s.decision.effect} />{' '}
              <Badge value={s.outcome.outcome} />
            </div>
            {s.erased && <p className="muted">(erased): arguments, reasoning and result were deleted</p>}
            {s.reasoning && <TextBlock label="reasoning" text={s.reasoning} />}
            {s.call.arguments && <TextBlock label="arguments" text={s.call.arguments} />}
            <div className="muted">
              policy {s.decision.policyIds.join(', ') || '-'}
              {s.decision.reasons.length > 0 && ` · ${s.decision.reasons.join('; ')}`}
              {s.approval && ` · approval ${s.approval.approvalId}`}
            </div>
            {s.approval?.decisions?.map((d) => (
              <div key={d.eventId} className="muted">
                {formatTime(d.time)}: {d.by ?? 'someone'} {d.decision}
                {d.reasons.length > 0 && ` (${d.reasons.join('; ')})`}
              </div>
            ))}
            {s.approval?.callHash && (
              <div className="muted">
                approved call hash <code className="hash">{s.approval.callHash}</code>
                {s.approval.callHashMatches === true && ' (the hash of this call)'}
                {s.approval.callHashMatches === false && ' (NOT the hash of this call)'}
              </div>
            )}
          </li>
        ))}
      </ol>
    );
  }
  if (related.error) return <Problem error={related.error} />;
  return related.data ? <EventList events={related.data.events} /> : <p className="muted">Loading…</p>;
}

export function AuditEventDetail({ id }: { id: string }) {
  const { data, error } = useData<{ event: AuditEvent }>(`/audit/events/${encodeURIComponent(id)}`, {
    live: false,
  });
  const e = data?.event;
  return (
    <section>
      <p>
        <a href="#/audit">← Audit</a>
      </p>
      <h1>Event {id}</h1>
      <Problem error={error} />
      {e && (
        <>
          <dl className="facts">
            <Field label="Time">{formatTime(e.time)}</Field>
            <Field label="Call">
              {e.method} {e.server ? `${e.server}.` : ''}
              {e.target ?? ''}
            </Field>
            <Field label="Decision">
              <Badge value={e.effect} /> {e.policyIds.join(', ')}
            </Field>
            <Field label="Outcome">
              <Badge value={e.outcome} /> {e.errorCode ?? ''}
            </Field>
            <Field label="Reasons">{e.reasons.join('; ') || '-'}</Field>
            <Field label="Agent">
              {e.agentId ? <a href={`#/agents/${encodeURIComponent(e.agentId)}`}>{e.agentId}</a> : '-'}
            </Field>
            <Field label="Owner">{e.owner ?? '-'}</Field>
            <Field label="Task">{e.taskId ?? '-'}</Field>
            <Field label="Trace">{e.traceId ?? '-'}</Field>
            <Field label="Latency">{(e.latencyUs / 1000).toFixed(2)} ms</Field>
            <Field label="Arguments hash">
              <code className="hash">{e.argsHash ?? '-'}</code>
            </Field>
            <Field label="Policy set">
              <code className="hash">{e.policySetHash ?? '-'}</code>
            </Field>
            <Field label="Approval">{e.approvalId ?? '-'}</Field>
          </dl>
          <h2>Arguments</h2>
          <TextBlock label="arguments" text={e.erased ? '(erased)' : asText(e.arguments)} />
          <h2>Reasoning</h2>
          <TextBlock label="reasoning" text={e.erased ? '(erased)' : asText(e.reasoning)} />
          <h2>Result</h2>
          <TextBlock label="result" text={e.erased ? '(erased)' : asText(e.result)} />
          <h2>Decision chain</h2>
          <section aria-label="decision chain">
            <DecisionChain event={e} />
          </section>
        </>
      )}
    </section>
  );
}
