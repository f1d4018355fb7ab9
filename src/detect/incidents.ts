import { type AuditEvent, countEvents, type EventFilter, listEvents } from '../audit/index.js';
import type { IncidentActionTable, IncidentTable, Store } from '../store/index.js';
import type { ContainScope } from './containment.js';

export interface IncidentNote {
  readonly at: number;
  readonly by: string;
  readonly text: string;
}

/** An incident: opened by a quarantine or kill, closed by a human with a note. Times in ms. */
export interface Incident {
  readonly id: string;
  readonly status: 'open' | 'closed';
  readonly scope: ContainScope;
  readonly target: string;
  readonly agentId: string | null;
  readonly taskId: string | null;
  /** The detector that fired, or "manual" for a person's kill. */
  readonly detector: string;
  readonly trigger: Record<string, unknown>;
  readonly onsetAt: number;
  readonly detectedAt: number;
  readonly containedAt: number | null;
  readonly closedAt: number | null;
  readonly closedBy: string | null;
  readonly notes: readonly IncidentNote[];
  /** Calls refused at authentication because the quarantine ended the agent's tokens (not in the audit log). */
  readonly refusedTokens: number;
}

/** One thing done about an incident (or by a playbook run), in order. */
export interface IncidentAction {
  readonly id: string;
  readonly incidentId: string | null;
  readonly time: number;
  /** contain, resume_vote, lift, notify, revoke_bindings, open_approval, snapshot, close, ... */
  readonly kind: string;
  readonly status: 'done' | 'failed' | 'noop' | 'dry-run';
  readonly actor: string;
  readonly playbook: string | null;
  readonly detail: Record<string, unknown>;
}

export function incidentFromRow(row: IncidentTable): Incident {
  return {
    id: row.id,
    status: row.status as Incident['status'],
    scope: row.scope as ContainScope,
    target: row.target,
    agentId: row.agent_id,
    taskId: row.task_id,
    detector: row.detector,
    trigger: JSON.parse(row.trigger) as Record<string, unknown>,
    onsetAt: Number(row.onset_at),
    detectedAt: Number(row.detected_at),
    containedAt: row.contained_at === null ? null : Number(row.contained_at),
    closedAt: row.closed_at === null ? null : Number(row.closed_at),
    closedBy: row.closed_by,
    notes: JSON.parse(row.notes) as IncidentNote[],
    refusedTokens: Number(row.refused_tokens ?? 0),
  };
}

export function actionFromRow(row: IncidentActionTable): IncidentAction {
  return {
    id: row.id,
    incidentId: row.incident_id,
    time: Number(row.time),
    kind: row.kind,
    status: row.status as IncidentAction['status'],
    actor: row.actor,
    playbook: row.playbook,
    detail: JSON.parse(row.detail) as Record<string, unknown>,
  };
}

/**
 * The governed calls: the methods that run the gateway's whole request path (its
 * TargetMethod), each of which may reach an upstream or be refused. Listings (tools/list
 * and the like) and admin events (approvals/*, detect/*, incident/*, vet/*) are not calls.
 */
export const governedMethods: readonly string[] = Object.freeze([
  'tools/call',
  'resources/read',
  'prompts/get',
  'completion/complete',
  'resources/subscribe',
]);

/** The governed calls an incident concerns: of its agent, task, server, tool, or everything. */
export function scopeFilter(incident: Pick<Incident, 'scope' | 'target'>): EventFilter {
  const methods = governedMethods;
  switch (incident.scope) {
    case 'agent':
      return { agentId: incident.target, methods };
    case 'task':
      return { taskId: incident.target, methods };
    case 'server':
      return { server: incident.target, methods };
    case 'tool': {
      const dot = incident.target.indexOf('.');
      return { server: incident.target.slice(0, dot), target: incident.target.slice(dot + 1), methods };
    }
    case 'all':
      return { methods };
  }
}

export interface TimelineEntry {
  readonly seq: number;
  readonly id: string;
  readonly time: number;
  /** before onset, between onset and detection, or after detection. */
  readonly phase: 'before' | 'onset' | 'contained';
  readonly method: string;
  readonly server: string | null;
  readonly target: string | null;
  readonly argsHash: string | null;
  readonly outcome: AuditEvent['outcome'];
  readonly errorCode: string | null;
  readonly reasons: readonly string[];
}

/** What `incident show` and the report present: the record, the numbers, the timeline. */
export interface IncidentSummary {
  readonly incident: Incident;
  readonly actions: readonly IncidentAction[];
  /** The window the timeline covers (ms): lookback before onset to close (or now). */
  readonly window: { readonly from: number; readonly to: number };
  /** Calls of the incident's scope from onset to the end of the window, by outcome. */
  readonly counts: { readonly executed: number; readonly blocked: number; readonly failed: number };
  readonly timeToDetect: { readonly seconds: number; readonly actions: number };
  readonly timeToContain: { readonly seconds: number | null; readonly actions: number };
  readonly firstEvent: TimelineEntry | null;
  readonly lastEvent: TimelineEntry | null;
  readonly timeline: readonly TimelineEntry[];
  /** True when the window holds more events than the timeline shows. */
  readonly truncated: boolean;
}

const timelineLimit = 5000;

/**
 * Rebuild an incident's picture from the audit log: every event of its scope from
 * `lookbackMs` before onset until it closed (or now), the counts of calls executed and
 * blocked from onset on, and time to detect and to contain in seconds and in actions.
 */
export async function summarize(
  store: Store,
  incident: Incident,
  actions: readonly IncidentAction[],
  options: { lookbackMs: number; now: number },
): Promise<IncidentSummary> {
  const scope = scopeFilter(incident);
  const to = incident.closedAt ?? options.now;
  const from = incident.onsetAt - options.lookbackMs;
  const [events, sinceOnset, beforeDetect, afterDetect, inWindow] = await Promise.all([
    listEvents(store, { ...scope, since: from, until: to, limit: timelineLimit, from: 'oldest' }),
    countEvents(store, { ...scope, since: incident.onsetAt, until: to }),
    countEvents(store, { ...scope, since: incident.onsetAt, until: incident.detectedAt - 1 }),
    countEvents(store, { ...scope, since: incident.detectedAt, until: to }),
    countEvents(store, { ...scope, since: from, until: to }),
  ]);
  const phase = (time: number): TimelineEntry['phase'] =>
    time < incident.onsetAt ? 'before' : time < incident.detectedAt ? 'onset' : 'contained';
  const timeline = events.map(
    (e): TimelineEntry => ({
      seq: e.seq,
      id: e.id,
      time: e.time,
      phase: phase(e.time),
      method: e.method,
      server: e.server,
      target: e.target,
      argsHash: e.argsHash,
      outcome: e.outcome,
      errorCode: e.errorCode,
      reasons: e.reasons,
    }),
  );
  const total = (inWindow.executed ?? 0) + (inWindow.denied ?? 0) + (inWindow.failed ?? 0);
  const fromOnset = timeline.filter((e) => e.time >= incident.onsetAt);
  return {
    incident,
    actions,
    window: { from, to },
    counts: {
      executed: sinceOnset.executed ?? 0,
      blocked: sinceOnset.denied ?? 0,
      failed: sinceOnset.failed ?? 0,
    },
    timeToDetect: {
      seconds: (incident.detectedAt - incident.onsetAt) / 1000,
      actions: beforeDetect.executed ?? 0,
    },
    timeToContain: {
      seconds: incident.containedAt === null ? null : (incident.containedAt - incident.detectedAt) / 1000,
      actions: afterDetect.executed ?? 0,
    },
    firstEvent: fromOnset[0] ?? null,
    lastEvent: fromOnset[fromOnset.length - 1] ?? null,
    timeline,
    truncated: events.length < total,
  };
}

/** What the counts cannot show, said where they are shown. */
const staleTokenNote =
  'Calls made with the tokens the quarantine ended are refused at authentication (HTTP 401) before any stage runs; the audit log does not record them, so they are not counted here. Calls with a new token are refused by the contain stage and counted as blocked.';

const iso = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString());

function call(e: TimelineEntry): string {
  return e.server === null ? (e.target ?? e.method) : `${e.server}.${e.target ?? ''}`;
}

/** The incident report as Markdown: summary, numbers, actions, notes and the full timeline. */
export function reportMarkdown(s: IncidentSummary): string {
  const i = s.incident;
  const lines: string[] = [];
  lines.push(`# Incident ${i.id}`, '');
  lines.push(`- Status: ${i.status}${i.closedAt ? ` (closed ${iso(i.closedAt)} by ${i.closedBy})` : ''}`);
  lines.push(`- Contained: ${i.scope} ${i.target}`);
  lines.push(`- Trigger: ${i.detector}${i.trigger.detail ? ` (${String(i.trigger.detail)})` : ''}`);
  lines.push(`- Onset: ${iso(i.onsetAt)}`);
  lines.push(`- Detected: ${iso(i.detectedAt)}`);
  lines.push(`- Contained at: ${iso(i.containedAt)}`);
  lines.push(
    `- Time to detect: ${s.timeToDetect.seconds.toFixed(3)} s, ${s.timeToDetect.actions} calls executed`,
  );
  lines.push(
    `- Time to contain: ${s.timeToContain.seconds === null ? '-' : `${s.timeToContain.seconds.toFixed(3)} s`}, ${s.timeToContain.actions} calls executed after detection`,
  );
  lines.push(
    `- Calls since onset: ${s.counts.executed} executed, ${s.counts.blocked} blocked, ${s.counts.failed} failed`,
  );
  if (s.firstEvent) lines.push(`- First event: ${s.firstEvent.id} at ${iso(s.firstEvent.time)}`);
  if (s.lastEvent) lines.push(`- Last event: ${s.lastEvent.id} at ${iso(s.lastEvent.time)}`);
  if (i.scope === 'agent') {
    lines.push(`- Calls refused at authentication with the ended tokens: ${i.refusedTokens}`);
    lines.push('', staleTokenNote);
  }
  lines.push('', '## Actions', '');
  if (s.actions.length === 0) lines.push('(none)');
  else {
    lines.push(
      '| time | action | status | by | playbook | detail |',
      '| --- | --- | --- | --- | --- | --- |',
    );
    for (const a of s.actions)
      lines.push(
        `| ${iso(a.time)} | ${a.kind} | ${a.status} | ${cell(a.actor)} | ${a.playbook ?? '-'} | ${cell(JSON.stringify(a.detail))} |`,
      );
  }
  lines.push('', '## Notes', '');
  if (i.notes.length === 0) lines.push('(none)');
  for (const n of i.notes) lines.push(`- ${iso(n.at)} ${cell(n.by)}: ${cell(n.text)}`);
  lines.push('', `## Timeline (${iso(s.window.from)} to ${iso(s.window.to)})`, '');
  if (s.truncated)
    lines.push(`The window holds more events than shown; the first ${s.timeline.length} are listed.`, '');
  lines.push(
    '| seq | time | phase | call | outcome | code | args hash |',
    '| ---: | --- | --- | --- | --- | --- | --- |',
  );
  for (const e of s.timeline)
    lines.push(
      `| ${e.seq} | ${iso(e.time)} | ${e.phase} | ${cell(call(e))} | ${e.outcome} | ${e.errorCode ?? '-'} | ${e.argsHash?.slice(0, 12) ?? '-'} |`,
    );
  return `${lines.join('\n')}\n`;
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

function esc(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

/** The same report as a standalone HTML page (no scripts, no outside resources). */
export function reportHtml(s: IncidentSummary): string {
  const i = s.incident;
  const facts: Array<[string, string]> = [
    ['Status', `${i.status}${i.closedAt ? ` (closed ${iso(i.closedAt)} by ${i.closedBy})` : ''}`],
    ['Contained', `${i.scope} ${i.target}`],
    ['Trigger', `${i.detector}${i.trigger.detail ? ` (${String(i.trigger.detail)})` : ''}`],
    ['Onset', iso(i.onsetAt)],
    ['Detected', iso(i.detectedAt)],
    ['Contained at', iso(i.containedAt)],
    ['Time to detect', `${s.timeToDetect.seconds.toFixed(3)} s, ${s.timeToDetect.actions} calls executed`],
    [
      'Time to contain',
      `${s.timeToContain.seconds === null ? '-' : `${s.timeToContain.seconds.toFixed(3)} s`}, ${s.timeToContain.actions} calls executed after detection`,
    ],
    [
      'Calls since onset',
      `${s.counts.executed} executed, ${s.counts.blocked} blocked, ${s.counts.failed} failed`,
    ],
    ...(i.scope === 'agent'
      ? [['Refused at authentication (ended tokens)', String(i.refusedTokens)] as [string, string]]
      : []),
  ];
  const row = (cells: string[]) => `<tr>${cells.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Incident ${esc(i.id)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:left}tr.blocked td{color:#a00}tr.before td{color:#666}</style>
</head><body>
<h1>Incident ${esc(i.id)}</h1>
<table>${facts.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>
${i.scope === 'agent' ? `<p>${esc(staleTokenNote)}</p>` : ''}
<h2>Actions</h2>
<table><tr><th>time</th><th>action</th><th>status</th><th>by</th><th>playbook</th><th>detail</th></tr>
${s.actions.map((a) => row([iso(a.time), a.kind, a.status, a.actor, a.playbook ?? '-', JSON.stringify(a.detail)])).join('\n')}</table>
<h2>Notes</h2>
<ul>${i.notes.map((n) => `<li>${esc(iso(n.at))} ${esc(n.by)}: ${esc(n.text)}</li>`).join('')}</ul>
<h2>Timeline</h2>
${s.truncated ? `<p>The window holds more events than shown; the first ${s.timeline.length} are listed.</p>` : ''}
<table><tr><th>seq</th><th>time</th><th>phase</th><th>call</th><th>outcome</th><th>code</th><th>args hash</th></tr>
${s.timeline
  .map(
    (e) =>
      `<tr class="${e.outcome === 'denied' ? 'blocked' : e.phase === 'before' ? 'before' : ''}">${[String(e.seq), iso(e.time), e.phase, call(e), e.outcome, e.errorCode ?? '-', e.argsHash?.slice(0, 12) ?? '-'].map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`,
  )
  .join('\n')}</table>
</body></html>
`;
}
