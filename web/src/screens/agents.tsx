import { useState } from 'react';
import { type Agent, ApiError, type AuditEvent, api, formatTime } from '../api';
import type { Viewer } from '../app';
import { useData } from '../hooks';
import { Badge, EventList, Field, Problem } from './common';

export function AgentList() {
  const { data, error } = useData<{ agents: Agent[] }>('/agents');
  return (
    <section>
      <h1>Agents</h1>
      <Problem error={error} />
      <table className="list">
        <thead>
          <tr>
            <th>Name</th>
            <th>Owner</th>
            <th>Status</th>
            <th>Environment</th>
            <th>Purpose</th>
          </tr>
        </thead>
        <tbody>
          {data?.agents.map((a) => (
            <tr key={a.id} data-agent={a.name}>
              <td data-label="Name">
                <a href={`#/agents/${encodeURIComponent(a.name)}`}>{a.name}</a>
              </td>
              <td data-label="Owner">{a.owner}</td>
              <td data-label="Status">
                <Badge value={a.status} />
              </td>
              <td data-label="Environment">{a.environment}</td>
              <td data-label="Purpose">{a.purpose}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {data?.agents.length === 0 && <p className="muted">No agents yet.</p>}
    </section>
  );
}

export function AgentDetail({ viewer, agentRef }: { viewer: Viewer; agentRef: string }) {
  const agent = useData<{ agent: Agent }>(`/agents/${encodeURIComponent(agentRef)}`);
  const id = agent.data?.agent.id;
  const events = useData<{ events: AuditEvent[] }>(
    id === undefined ? null : `/audit/events?agent=${encodeURIComponent(id)}&limit=50`,
  );
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<ApiError | undefined>();
  const act = async (action: 'suspend' | 'resume') => {
    setBusy(true);
    setActionError(undefined);
    try {
      await api(`/agents/${encodeURIComponent(agentRef)}/${action}`, { method: 'POST' });
      agent.reload();
    } catch (e) {
      setActionError(e instanceof ApiError ? e : undefined);
    } finally {
      setBusy(false);
    }
  };
  const a = agent.data?.agent;
  return (
    <section>
      <p>
        <a href="#/agents">← Agents</a>
      </p>
      <h1>{a?.name ?? agentRef}</h1>
      <Problem error={agent.error} />
      <Problem error={actionError} />
      {a && (
        <>
          <dl className="facts">
            <Field label="Status">
              <Badge value={a.status} />
            </Field>
            <Field label="Owner">{a.owner}</Field>
            <Field label="Purpose">{a.purpose}</Field>
            <Field label="Environment">{a.environment}</Field>
            <Field label="Id">
              <code>{a.id}</code>
            </Field>
            <Field label="Created">{formatTime(a.createdAt)}</Field>
            <Field label="Expires">{formatTime(a.expiresAt)}</Field>
          </dl>
          {viewer.user.roles.includes('admin') && (
            <div className="actions">
              {a.status === 'active' && (
                <button type="button" className="danger" disabled={busy} onClick={() => act('suspend')}>
                  Suspend
                </button>
              )}
              {a.status === 'suspended' && (
                <button type="button" disabled={busy} onClick={() => act('resume')}>
                  Resume
                </button>
              )}
            </div>
          )}
        </>
      )}
      <h2>Recent activity</h2>
      <Problem error={events.error} />
      {events.data && <EventList events={events.data.events} empty="No calls recorded for this agent." />}
    </section>
  );
}
