import { useMemo } from 'react';
import type { Approval, Overview } from '../api';
import { StackedBars } from '../chart';
import { useData } from '../hooks';
import { Problem } from './common';

export function OverviewScreen() {
  const overview = useData<Overview>('/overview');
  const pending = useData<{ approvals: Approval[] }>('/approvals?status=pending&limit=100');
  const o = overview.data;
  const pendingCount =
    pending.error?.status === 404 ? 'n/a' : pending.data ? String(pending.data.approvals.length) : '…';
  const busiest = Math.max(0, ...(o?.perMinute.map((m) => m.calls) ?? [0]));
  const categories = useMemo(
    () =>
      (o?.perMinute ?? []).map((m) =>
        new Date(m.minute).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }),
      ),
    [o],
  );
  const series = useMemo(
    () => [
      { name: 'allowed', values: (o?.perMinute ?? []).map((m) => m.calls - m.denied), color: '#2f5d8a' },
      { name: 'denied', values: (o?.perMinute ?? []).map((m) => m.denied), color: '#b3261e' },
    ],
    [o],
  );
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
      <StackedBars
        label="requests per minute over the last hour: allowed and denied"
        categories={categories}
        series={series}
      />
      <p className="muted">Busiest minute: {busiest} requests.</p>
    </section>
  );
}
