import type { ReactNode } from 'react';
import type { ApiError, AuditEvent } from '../api';
import { formatTime } from '../api';

export function Problem({ error }: { error: ApiError | undefined }) {
  if (error === undefined) return null;
  return (
    <p className="error" role="alert">
      {error.message} <span className="code">[{error.code}]</span>
    </p>
  );
}

export function Badge({ value }: { value: string }) {
  return <span className={`badge badge-${value}`}>{value}</span>;
}

export function Field({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="field">
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}

/** Text rendered as text: whatever an agent or an upstream wrote is never interpreted as markup. */
export function TextBlock({ text, label }: { text: string; label: string }) {
  if (text === '') return <p className="muted">none</p>;
  return (
    <section aria-label={label}>
      <pre className="text">{text}</pre>
    </section>
  );
}

/** Audit events as a compact timeline; each links to the event's detail. */
export function EventList({ events, empty }: { events: AuditEvent[]; empty?: string }) {
  if (events.length === 0) return <p className="muted">{empty ?? 'No events.'}</p>;
  return (
    <ol className="events">
      {[...events].reverse().map((e) => (
        <li key={e.id} className={`event event-${e.effect}`}>
          <a href={`#/audit/${encodeURIComponent(e.id)}`}>
            <span className="time">{formatTime(e.time)}</span>
            <span className="what">
              {e.method}
              {e.target ? ` ${e.server ? `${e.server}.` : ''}${e.target}` : ''}
            </span>
            <Badge value={e.outcome} />
            {e.errorCode && <span className="code">{e.errorCode}</span>}
          </a>
        </li>
      ))}
    </ol>
  );
}
