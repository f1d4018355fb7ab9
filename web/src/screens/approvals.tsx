import { type FormEvent, useMemo, useState } from 'react';
import { ApiError, type Approval, type ApproverStats, api, asText, formatTime } from '../api';
import type { Viewer } from '../app';
import { StackedBars } from '../chart';
import { useData } from '../hooks';
import { Badge, EventList, Field, Problem, TextBlock } from './common';

const views = [
  ['inbox', 'Inbox'],
  ['history', 'History'],
  ['stats', 'Approvers'],
] as const;

export function Approvals({ viewer, view }: { viewer: Viewer; view: string }) {
  return (
    <section>
      <h1>Approvals</h1>
      <nav className="tabs">
        {views.map(([id, label]) => (
          <a key={id} href={`#/approvals/${id}`} className={view === id ? 'current' : undefined}>
            {label}
          </a>
        ))}
      </nav>
      {view === 'stats' ? (
        <Stats />
      ) : view === 'history' ? (
        <History />
      ) : view === 'inbox' ? (
        <Inbox viewer={viewer} />
      ) : (
        <ApprovalById viewer={viewer} id={view} />
      )}
    </section>
  );
}

function Unavailable({ error }: { error: ApiError | undefined }) {
  if (error?.status === 404) {
    return <p className="muted">This Custos has no approval engine (GET /api/v1/approvals answered 404).</p>;
  }
  return <Problem error={error} />;
}

function Inbox({ viewer }: { viewer: Viewer }) {
  const { data, error, reload } = useData<{ approvals: Approval[] }>('/approvals?status=pending&limit=100');
  return (
    <>
      <Unavailable error={error} />
      {data?.approvals.length === 0 && <p className="muted">Nothing waits for a decision.</p>}
      {data?.approvals.map((a) => (
        <ApprovalById key={a.id} id={a.id} viewer={viewer} onDecided={reload} />
      ))}
    </>
  );
}

/** One approval fetched on its own, which brings the agent's recent activity with it. */
function ApprovalById({ viewer, id, onDecided }: { viewer: Viewer; id: string; onDecided?: () => void }) {
  const { data, error, reload } = useData<{ approval: Approval }>(`/approvals/${encodeURIComponent(id)}`);
  const decided = () => {
    reload();
    onDecided?.();
  };
  return (
    <>
      <Problem error={error} />
      {data && <ApprovalCard approval={data.approval} viewer={viewer} onDecided={decided} />}
    </>
  );
}

function History() {
  const { data, error } = useData<{ approvals: Approval[] }>('/approvals?limit=200');
  return (
    <>
      <Unavailable error={error} />
      <table className="list">
        <thead>
          <tr>
            <th>Requested</th>
            <th>Agent</th>
            <th>Call</th>
            <th>Status</th>
            <th>Decided by</th>
            <th>Reason</th>
          </tr>
        </thead>
        <tbody>
          {data?.approvals.map((a) => (
            <tr key={a.id}>
              <td data-label="Requested">
                <a href={`#/approvals/${encodeURIComponent(a.id)}`}>{formatTime(a.createdAt)}</a>
              </td>
              <td data-label="Agent">{a.agent.name}</td>
              <td data-label="Call">
                {a.server}.{a.tool}
              </td>
              <td data-label="Status">
                <Badge value={a.status} />
              </td>
              <td data-label="Decided by">{a.quorum.votes.map((v) => v.by).join(', ') || '-'}</td>
              <td data-label="Reason">{a.reason ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function hourLabel(hour: string | number): string {
  const time = typeof hour === 'number' ? hour : Date.parse(hour);
  return Number.isNaN(time)
    ? String(hour)
    : new Date(time).toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit' });
}

function Stats() {
  const { data, error } = useData<{ approvers: ApproverStats[] }>('/approvals/stats');
  const chart = useMemo(() => {
    const approvers = data?.approvers ?? [];
    const hours = [...new Set(approvers.flatMap((s) => s.perHour.map((h) => String(h.hour))))].sort();
    return {
      categories: hours.map((h) => hourLabel(/^\d+$/.test(h) ? Number(h) : h)),
      series: approvers.map((s) => ({
        name: s.approver,
        values: hours.map((h) => s.perHour.find((p) => String(p.hour) === h)?.count ?? 0),
      })),
    };
  }, [data]);
  return (
    <>
      <Unavailable error={error} />
      {chart.series.length > 0 && (
        <StackedBars
          label="decisions per hour by approver"
          categories={chart.categories}
          series={chart.series}
        />
      )}
      <table className="list">
        <thead>
          <tr>
            <th>Approver</th>
            <th>Handled (last hours)</th>
            <th>Busiest hour</th>
            <th>Median time to decide</th>
          </tr>
        </thead>
        <tbody>
          {data?.approvers.map((s) => {
            const total = s.perHour.reduce((n, h) => n + h.count, 0);
            const busiest = s.perHour.reduce((m, h) => Math.max(m, h.count), 0);
            return (
              <tr key={s.approver}>
                <td data-label="Approver">{s.approver}</td>
                <td data-label="Handled">
                  {total} in {s.perHour.length} hour{s.perHour.length === 1 ? '' : 's'}
                </td>
                <td data-label="Busiest hour">{busiest} per hour</td>
                <td data-label="Median">
                  {s.medianSeconds === null ? '-' : `${s.medianSeconds.toFixed(1)} s`}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {data?.approvers.length === 0 && <p className="muted">No decisions yet.</p>}
    </>
  );
}

/**
 * One approval request with everything an approver needs to decide: the agent and its
 * owner, the task's purpose, the exact arguments from the approval record (rendered here as
 * text, never markup from the agent), the agent's reasoning, the policy that asked, and
 * what else the agent did in this task.
 */
function ApprovalCard({
  approval: a,
  viewer,
  onDecided,
}: {
  approval: Approval;
  viewer: Viewer;
  onDecided: () => void;
}) {
  const [reason, setReason] = useState('');
  const [grant, setGrant] = useState(false);
  const [minutes, setMinutes] = useState(15);
  const [patterns, setPatterns] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>();
  const decide = async (decision: 'approve' | 'deny', event?: FormEvent) => {
    event?.preventDefault();
    if (decision === 'deny' && reason.trim() === '') {
      setError(new ApiError(400, 'bad_request', 'say why you deny it'));
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      const argumentsPattern = Object.fromEntries(
        Object.entries(patterns).filter(([, pattern]) => pattern.trim() !== ''),
      );
      const body =
        decision === 'approve'
          ? {
              channel: 'console',
              ...(reason.trim() ? { reason: reason.trim() } : {}),
              ...(grant
                ? {
                    grant: {
                      minutes,
                      ...(Object.keys(argumentsPattern).length > 0 ? { argumentsPattern } : {}),
                    },
                  }
                : {}),
            }
          : { channel: 'console', reason: reason.trim() };
      await api(`/approvals/${encodeURIComponent(a.id)}/${decision}`, { method: 'POST', body });
      onDecided();
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, 'network', String(e)));
    } finally {
      setBusy(false);
    }
  };
  // Deciding needs the approver role itself (admins read but do not approve unless also approvers).
  const canDecide = a.status === 'pending' && viewer.user.roles.includes('approver');
  const argumentNames =
    a.arguments !== null && typeof a.arguments === 'object' && !Array.isArray(a.arguments)
      ? Object.keys(a.arguments as Record<string, unknown>)
      : [];
  const activity = a.recentActivity ?? [];
  return (
    <article className="approval" data-approval={a.id} aria-label={`approval ${a.id}`}>
      <header>
        <h2>
          {a.agent.name} wants to call{' '}
          <code>
            {a.server}.{a.tool}
          </code>
        </h2>
        <Badge value={a.status} />
      </header>
      <dl className="facts">
        <Field label="Agent owner">{a.agent.owner}</Field>
        <Field label="Task">{a.task ? a.task.purpose : 'no task (agent token)'}</Field>
        <Field label="Policy that asked">{a.policyIds.join(', ') || '-'}</Field>
        <Field label="Tier">{a.tier}</Field>
        <Field label="Requested">{formatTime(a.createdAt)}</Field>
        <Field label="Expires">{formatTime(a.expiresAt)}</Field>
        <Field label="Quorum">
          {a.quorum.votes.filter((v) => v.decision === 'approve').length} of {a.quorum.required}
          {a.quorum.votes.length > 0 &&
            ` (${a.quorum.votes.map((v) => `${v.by}: ${v.decision}`).join('; ')})`}
        </Field>
        <Field label="Call hash">
          <code className="hash">{a.callHash}</code>
        </Field>
      </dl>
      <h3>Arguments (as Custos recorded them)</h3>
      <TextBlock label="arguments" text={asText(a.arguments)} />
      <h3>The agent's reasoning</h3>
      <TextBlock label="reasoning" text={asText(a.reasoning)} />
      {a.reason && (
        <p>
          Decision reason: <q>{a.reason}</q>
        </p>
      )}
      <details>
        <summary>
          What else the agent did {a.task ? 'in this task' : 'recently'} ({activity.length})
        </summary>
        <EventList events={activity} empty="Nothing else recorded." />
      </details>
      {canDecide && (
        <form className="decide" onSubmit={(e) => decide('approve', e)}>
          <label>
            Reason
            <input
              name="reason"
              value={reason}
              onChange={(e) => setReason(e.target.value)}
              placeholder="why (required to deny)"
            />
          </label>
          <label className="inline">
            <input type="checkbox" checked={grant} onChange={(e) => setGrant(e.target.checked)} /> Also allow
            this tool for this task for a while
          </label>
          {grant && (
            <div className="grant">
              <label>
                Minutes
                <input
                  type="number"
                  min={1}
                  max={1440}
                  value={minutes}
                  onChange={(e) => setMinutes(Number(e.target.value))}
                />
              </label>
              {argumentNames.map((name) => (
                <label key={name}>
                  Pattern for argument “{name}” (regular expression; empty: must stay equal)
                  <input
                    value={patterns[name] ?? ''}
                    onChange={(e) => setPatterns({ ...patterns, [name]: e.target.value })}
                  />
                </label>
              ))}
            </div>
          )}
          <Problem error={error} />
          <div className="actions">
            <button type="submit" disabled={busy} className="approve">
              Approve
            </button>
            <button type="button" disabled={busy} className="danger" onClick={() => decide('deny')}>
              Deny
            </button>
          </div>
        </form>
      )}
    </article>
  );
}
