import type { Approval, Overview } from '../api';
import { useData } from '../hooks';
import { Problem } from './common';

export function OverviewScreen() {
  const overview = useData<Overview>('/overview');
  const pending = useData<{ approvals: Approval[] }>('/approvals?status=pending&limit=100');
  const o = overview.data;
  const pendingCount =
    pending.error?.status === 404 ? 'n/a' : pending.data ? String(pending.data.approvals.length) : '…';
  const busiest = Math.max(0, ...(o?.perMinute.map((m) => m.calls) ?? [0]));
  const peak = Math.max(1, busiest);
  return (
    <section>
      <h1>Overview</h1>
      <Problem error={overview.error} />
      <div className="cards">
        <a className="card" href="#/agents">
          <span className="figure" data-testid="agents-total">
            {o?.agents.total ?? '…'}
          </span>
          <span className="label">
            agents ({o?.agents.active ?? 0} active, {o?.agents.suspended ?? 0} suspended)
          </span>
        </a>
        <a className="card" href="#/audit">
          <span className="figure" data-testid="calls-hour">
            {o?.lastHour.calls ?? '…'}
          </span>
          <span className="label">governed requests, last hour</span>
        </a>
        <a className="card" href="#/audit">
          <span className="figure" data-testid="denied-hour">
            {o?.lastHour.denied ?? '…'}
          </span>
          <span className="label">denials, last hour</span>
        </a>
        <a className="card" href="#/approvals">
          <span className="figure" data-testid="pending-approvals">
            {pendingCount}
          </span>
          <span className="label">pending approvals</span>
        </a>
      </div>
      <h2>Requests per minute (last hour)</h2>
      <div className="bars" role="img" aria-label="requests per minute over the last hour, denials in red">
        {o?.perMinute.map((m) => (
          <div
            key={m.minute}
            className="bar"
            title={`${new Date(m.minute).toLocaleTimeString()}: ${m.calls} requests, ${m.denied} denied`}
          >
            <div className="allowed" style={{ height: `${((m.calls - m.denied) / peak) * 100}%` }} />
            <div className="denied" style={{ height: `${(m.denied / peak) * 100}%` }} />
          </div>
        ))}
      </div>
      <p className="muted">Busiest minute: {busiest} requests.</p>
    </section>
  );
}
