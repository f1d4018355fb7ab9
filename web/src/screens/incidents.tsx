import { useState } from 'react';
import { ApiError, api, formatTime } from '../api';
import type { Viewer } from '../app';
import { useData } from '../hooks';
import { Badge, Field, Problem } from './common';

/** An incident as GET /incidents lists it. */
interface Incident {
  id: string;
  status: 'open' | 'closed';
  scope: string;
  target: string;
  agentId: string | null;
  detector: string;
  trigger: { detail?: string };
  onsetAt: number;
  detectedAt: number;
  containedAt: number | null;
  closedAt: number | null;
  closedBy: string | null;
  notes: Array<{ at: number; by: string; text: string }>;
}

interface TimelineEntry {
  seq: number;
  id: string;
  time: number;
  phase: 'before' | 'onset' | 'contained';
  method: string;
  server: string | null;
  target: string | null;
  outcome: string;
  errorCode: string | null;
}

interface Summary {
  incident: Incident;
  actions: Array<{
    id: string;
    time: number;
    kind: string;
    status: string;
    actor: string;
    playbook: string | null;
  }>;
  counts: { executed: number; blocked: number; failed: number };
  timeToDetect: { seconds: number; actions: number };
  timeToContain: { seconds: number | null; actions: number };
  timeline: TimelineEntry[];
  truncated: boolean;
}

interface Containment {
  id: string;
  scope: string;
  target: string;
  resumeVotes: Array<{ by: string }>;
}

export function IncidentList() {
  const { data, error } = useData<{ incidents: Incident[] }>('/incidents');
  return (
    <section>
      <h1>Incidents</h1>
      <Problem error={error} />
      <table className="list">
        <thead>
          <tr>
            <th>Incident</th>
            <th>Status</th>
            <th>Contained</th>
            <th>Trigger</th>
            <th>Detected</th>
          </tr>
        </thead>
        <tbody>
          {data?.incidents.map((i) => (
            <tr key={i.id} data-incident={i.id}>
              <td data-label="Incident">
                <a href={`#/incidents/${encodeURIComponent(i.id)}`}>{i.id}</a>
              </td>
              <td data-label="Status">
                <Badge value={i.status} />
              </td>
              <td data-label="Contained">
                {i.scope} {i.target}
              </td>
              <td data-label="Trigger">{i.detector}</td>
              <td data-label="Detected">{formatTime(i.detectedAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {data?.incidents.length === 0 && <p className="muted">No incidents.</p>}
    </section>
  );
}

export function IncidentDetail({ viewer, id }: { viewer: Viewer; id: string }) {
  const summary = useData<{ summary: Summary }>(`/incidents/${encodeURIComponent(id)}`);
  const contained = useData<{ containments: Containment[] }>('/containments');
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<ApiError | undefined>();
  const [done, setDone] = useState<string | undefined>();
  const s = summary.data?.summary;
  const i = s?.incident;
  const current = i && contained.data?.containments.find((c) => c.scope === i.scope && c.target === i.target);
  const admin = viewer.user.roles.includes('admin');
  const act = async (action: 'kill' | 'resume') => {
    if (i === undefined) return;
    setBusy(true);
    setActionError(undefined);
    setDone(undefined);
    try {
      const target = i.scope === 'all' ? {} : { target: i.target };
      if (action === 'kill') {
        await api('/containments', {
          method: 'POST',
          body: { scope: i.scope, ...target, reason: `killed from the console (incident ${i.id})` },
        });
        setDone('contained');
      } else {
        const r = await api<{ lifted: boolean; votes: number; needed: number }>('/containments/resume', {
          method: 'POST',
          body: { scope: i.scope, ...target },
        });
        setDone(r.lifted ? 'resumed' : `resume asked: ${r.votes} of ${r.needed}`);
      }
      contained.reload();
      summary.reload();
    } catch (e) {
      setActionError(e instanceof ApiError ? e : undefined);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section>
      <p>
        <a href="#/incidents">← Incidents</a>
      </p>
      <h1>Incident {id}</h1>
      <Problem error={summary.error} />
      <Problem error={actionError} />
      {s && i && (
        <>
          <dl className="facts">
            <Field label="Status">
              <Badge value={i.status} />
            </Field>
            <Field label="Contained">
              {i.scope} {i.target}{' '}
              <span data-containment={current ? 'in-force' : 'lifted'}>
                <Badge value={current ? 'in force' : 'lifted'} />
              </span>
            </Field>
            <Field label="Trigger">
              {i.detector}
              {i.trigger.detail ? `: ${i.trigger.detail}` : ''}
            </Field>
            <Field label="Onset">{formatTime(i.onsetAt)}</Field>
            <Field label="Detected">{formatTime(i.detectedAt)}</Field>
            <Field label="Time to detect">
              {s.timeToDetect.seconds.toFixed(3)} s, {s.timeToDetect.actions} calls
            </Field>
            <Field label="Calls since onset">
              <span data-counts="">
                {s.counts.executed} executed, {s.counts.blocked} blocked, {s.counts.failed} failed
              </span>
            </Field>
            {i.closedAt !== null && (
              <Field label="Closed">
                {formatTime(i.closedAt)} by {i.closedBy}
              </Field>
            )}
          </dl>
          {admin && (
            <div className="actions">
              {current ? (
                <button type="button" disabled={busy} onClick={() => act('resume')}>
                  Resume {i.scope}
                </button>
              ) : (
                i.scope !== 'task' && (
                  <button type="button" className="danger" disabled={busy} onClick={() => act('kill')}>
                    Kill {i.scope}
                  </button>
                )
              )}
              {done && (
                <span className="muted" role="status">
                  {done}
                </span>
              )}
            </div>
          )}
          <h2>Actions</h2>
          <table className="list">
            <thead>
              <tr>
                <th>Time</th>
                <th>Action</th>
                <th>Status</th>
                <th>By</th>
              </tr>
            </thead>
            <tbody>
              {s.actions.map((a) => (
                <tr key={a.id}>
                  <td data-label="Time">{formatTime(a.time)}</td>
                  <td data-label="Action">{a.kind}</td>
                  <td data-label="Status">{a.status}</td>
                  <td data-label="By">{a.playbook ? `${a.actor} (${a.playbook})` : a.actor}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2>
            Timeline ({s.timeline.length} calls{s.truncated ? ', truncated' : ''})
          </h2>
          <table className="list timeline">
            <thead>
              <tr>
                <th>#</th>
                <th>Time</th>
                <th>Phase</th>
                <th>Call</th>
                <th>Outcome</th>
              </tr>
            </thead>
            <tbody>
              {s.timeline.map((e) => (
                <tr key={e.id} data-event={e.id} data-outcome={e.outcome}>
                  <td data-label="#">
                    <a href={`#/audit/${encodeURIComponent(e.id)}`}>{e.seq}</a>
                  </td>
                  <td data-label="Time">{formatTime(e.time)}</td>
                  <td data-label="Phase">{e.phase}</td>
                  <td data-label="Call">
                    <code>{e.server ? `${e.server}.${e.target ?? ''}` : (e.target ?? e.method)}</code>
                  </td>
                  <td data-label="Outcome">
                    <Badge value={e.outcome} /> {e.errorCode ?? ''}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
