import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { systemClock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import { CustosError } from '../core/errors.js';
import { IdGenerator } from '../core/ids.js';
import { adminToken, type RuntimeFile, runtimeFilePath } from '../core/runtime-file.js';
import type {
  Containment,
  DetectService,
  Incident,
  IncidentAction,
  IncidentSummary,
  ResumeResult,
} from '../detect/index.js';
import type { AgentService } from '../identity/index.js';
import { callAdmin, type GlobalOptions, readConfig, runningServer, withAgents } from './context.js';
import { formatTime, printJson, printTable } from './output.js';

type Json = { json?: boolean };
interface ScopeOptions {
  agent?: string;
  task?: string;
  server?: string;
  tool?: string;
  all?: boolean;
}

/** Exactly one of --agent, --task, --server, --tool, --all. */
function scopeOf(o: ScopeOptions): { scope: string; target?: string } {
  const given = (['agent', 'task', 'server', 'tool', 'all'] as const).filter(
    (k) => o[k] !== undefined && o[k] !== false,
  );
  if (given.length !== 1) {
    throw new CustosError('usage', 'give exactly one of --agent, --task, --server, --tool or --all');
  }
  const scope = given[0] as string;
  return scope === 'all' ? { scope } : { scope, target: String(o[scope as keyof ScopeOptions]) };
}

/**
 * The detect service on the store, for commands run without a server. Commands that change
 * something (`writes`) also get the audit log, so kills, resumes and incident notes are
 * recorded there, and the approvals engine, so a kill cancels the held approvals it covers.
 */
async function offline<T>(
  config: Config,
  work: (detect: DetectService, agents: AgentService) => Promise<T>,
  writes = false,
): Promise<T> {
  const { ApprovalService } = await import('../approvals/index.js');
  const { AuditRecorder, TransparencyLog } = await import('../audit/index.js');
  const { DetectService, loadPlaybooks } = await import('../detect/index.js');
  return withAgents(config, async (agents, store) => {
    const clock = systemClock;
    const ids = new IdGenerator(clock);
    const log = writes ? await TransparencyLog.open(store, { clock }) : undefined;
    const audit = log && new AuditRecorder(store, log, ids, { commitDelayMs: 0 });
    const detect = await DetectService.open({
      store,
      clock,
      ids,
      config: config.detect,
      agents,
      playbooks: config.detect.playbooks
        ? loadPlaybooks(resolve(config.baseDir, config.detect.playbooks))
        : [],
      ...(audit ? { audit } : {}),
    });
    if (audit) {
      const approvals = new ApprovalService({
        store,
        clock,
        ids,
        config: config.approvals,
        audit,
        annotationsOf: () => undefined,
      });
      detect.onContain(async ({ containment }) => ({
        action: 'cancel_approvals',
        detail: { ...(await approvals.cancelContained(containment)) },
      }));
    }
    try {
      return await work(detect, agents);
    } finally {
      await detect.close();
      await audit?.close();
      await log?.close();
    }
  });
}

/**
 * The running server, even when it is too busy to answer its health check in time (a runaway
 * agent may be loading it): a kill must reach the process that forwards the calls, or the
 * gateway would only see it on its next refresh. A runtime file of a dead process is ignored.
 */
async function reachServer(config: Config): Promise<{ url: string; token: string } | undefined> {
  const server = await runningServer(config);
  if (server !== undefined) return server;
  const file = runtimeFilePath(config.dataDir);
  if (!existsSync(file)) return undefined;
  try {
    const runtime = JSON.parse(readFileSync(file, 'utf8')) as RuntimeFile;
    process.kill(runtime.pid, 0);
    return { url: runtime.url, token: adminToken(config.dataDir) };
  } catch {
    return undefined;
  }
}

function whoAmI(by: string | undefined): string {
  return by ?? process.env.CUSTOS_USER ?? userInfo().username;
}

const scopeFlags = (cmd: Command) =>
  cmd
    .option('--agent <agent>', 'an agent (id or name)')
    .option('--task <task>', 'a task id')
    .option('--server <server>', 'an upstream server')
    .option('--tool <server.tool>', 'one tool of one server')
    .option('--all', 'everything (the global kill switch)');

function containmentRow(c: Containment) {
  return {
    id: c.id,
    scope: c.scope,
    target: c.target,
    since: formatTime(c.createdAt),
    by: c.actor,
    reason: c.reason,
    incident: c.incidentId,
    resume: c.resumeVotes.map((v) => v.by).join(', '),
  };
}

function incidentRow(i: Incident) {
  return {
    id: i.id,
    status: i.status,
    contained: `${i.scope} ${i.target}`,
    trigger: i.detector,
    detected: formatTime(i.detectedAt),
    closed: formatTime(i.closedAt),
  };
}

function printSummary(s: IncidentSummary): void {
  const i = s.incident;
  const facts: Record<string, unknown> = {
    id: i.id,
    status: i.status,
    contained: `${i.scope} ${i.target}`,
    trigger: `${i.detector}${i.trigger.detail ? `: ${String(i.trigger.detail)}` : ''}`,
    onset: formatTime(i.onsetAt),
    detected: formatTime(i.detectedAt),
    'time to detect': `${s.timeToDetect.seconds.toFixed(3)} s, ${s.timeToDetect.actions} calls`,
    'time to contain': `${s.timeToContain.seconds === null ? '-' : `${s.timeToContain.seconds.toFixed(3)} s`}, ${s.timeToContain.actions} calls after detection`,
    executed: s.counts.executed,
    blocked: s.counts.blocked,
    failed: s.counts.failed,
    'first event': s.firstEvent ? `${s.firstEvent.id} ${formatTime(s.firstEvent.time)}` : '-',
    'last event': s.lastEvent ? `${s.lastEvent.id} ${formatTime(s.lastEvent.time)}` : '-',
    closed: i.closedAt ? `${formatTime(i.closedAt)} by ${i.closedBy}` : '-',
  };
  for (const [k, v] of Object.entries(facts)) console.log(`${k.padEnd(16)} ${v}`);
  console.log('\nactions');
  printActions(s.actions);
  if (i.notes.length > 0) {
    console.log('\nnotes');
    for (const n of i.notes) console.log(`  ${formatTime(n.at)} ${n.by}: ${n.text}`);
  }
  console.log(`\ntimeline (${s.timeline.length} calls${s.truncated ? ', truncated' : ''})`);
  printTable(
    s.timeline.map((e) => ({
      seq: e.seq,
      time: formatTime(e.time),
      phase: e.phase,
      call: `${e.server ?? ''}.${e.target ?? ''}`,
      outcome: e.outcome,
      code: e.errorCode,
    })),
    ['seq', 'time', 'phase', 'call', 'outcome', 'code'],
  );
}

function printActions(actions: readonly IncidentAction[]): void {
  printTable(
    actions.map((a) => ({
      time: formatTime(a.time),
      action: a.kind,
      status: a.status,
      by: a.actor,
      playbook: a.playbook,
      detail: JSON.stringify(a.detail),
    })),
    ['time', 'action', 'status', 'by', 'playbook', 'detail'],
  );
}

export function registerIncidentCommands(program: Command): void {
  const config = () => readConfig(program.opts<GlobalOptions>());

  scopeFlags(program.command('kill'))
    .description('contain at once: quarantine an agent or task, disable a server or tool, or stop everything')
    .option('--reason <text>', 'why (recorded on the incident)')
    .option('--json', 'print JSON')
    .action(async (o: ScopeOptions & Json & { reason?: string }) => {
      const target = scopeOf(o);
      const c = await config();
      const server = await reachServer(c);
      const body = { ...target, ...(o.reason ? { reason: o.reason } : {}) };
      const containment = server
        ? (await callAdmin<{ containment: Containment }>(server, 'POST', '/containments', body)).containment
        : await offline(c, (detect) => detect.kill({ ...body, actor: whoAmI(undefined) }), true);
      if (o.json) return printJson({ containment });
      console.log(
        `contained ${containment.scope} ${containment.target} (${containment.id}, incident ${containment.incidentId ?? '-'})`,
      );
    });

  scopeFlags(program.command('resume'))
    .description(
      'ask to lift a containment; it lifts once enough different humans asked (detect.resume.approvers)',
    )
    .option('--by <name>', 'who resumes (default $CUSTOS_USER or the login name)')
    .option('--json', 'print JSON')
    .action(async (o: ScopeOptions & Json & { by?: string }) => {
      const target = scopeOf(o);
      const c = await config();
      const server = await reachServer(c);
      const by = whoAmI(o.by);
      const result = server
        ? await callAdmin<ResumeResult>(server, 'POST', '/containments/resume', { ...target, by })
        : await offline(c, (detect) => detect.resume({ ...target, by }), true);
      if (o.json) return printJson(result);
      const what = `${result.containment.scope} ${result.containment.target}`;
      console.log(
        result.lifted
          ? `${what} resumed (${result.votes} of ${result.needed} approvals)`
          : `${what} stays contained: ${result.votes} of ${result.needed} approvals so far`,
      );
    });

  program
    .command('containment')
    .description('containments in force')
    .command('list')
    .description('list the kills and quarantines in force')
    .option('--json', 'print JSON')
    .action(async (o: Json) => {
      const c = await config();
      const server = await runningServer(c);
      const containments = server
        ? (await callAdmin<{ containments: Containment[] }>(server, 'GET', '/containments')).containments
        : await offline(c, async (detect) => detect.containments());
      if (o.json) return printJson({ containments });
      printTable(containments.map(containmentRow), [
        'id',
        'scope',
        'target',
        'since',
        'by',
        'reason',
        'incident',
        'resume',
      ]);
    });

  const incident = program.command('incident').description('incidents: list, show, note, close, report');
  incident
    .command('list')
    .description('list incidents, newest first')
    .option('--status <status>', 'open or closed')
    .option('--json', 'print JSON')
    .action(async (o: Json & { status?: 'open' | 'closed' }) => {
      if (o.status !== undefined && o.status !== 'open' && o.status !== 'closed')
        throw new CustosError('usage', '--status is open or closed');
      const incidents = await offline(await config(), (detect) =>
        detect.listIncidents(o.status ? { status: o.status } : {}),
      );
      if (o.json) return printJson({ incidents });
      printTable(incidents.map(incidentRow), ['id', 'status', 'contained', 'trigger', 'detected', 'closed']);
    });
  incident
    .command('show <id>')
    .description('an incident with its numbers, actions, notes and timeline from the audit log')
    .option('--json', 'print JSON')
    .action(async (id: string, o: Json) => {
      const summary = await offline(await config(), (detect) => detect.summary(id));
      if (o.json) return printJson({ summary });
      printSummary(summary);
    });
  incident
    .command('note <id> <text>')
    .description('add a note to an incident')
    .option('--by <name>', 'who writes (default $CUSTOS_USER or the login name)')
    .option('--json', 'print JSON')
    .action(async (id: string, text: string, o: Json & { by?: string }) => {
      const c = await config();
      const server = await runningServer(c);
      const by = whoAmI(o.by);
      const result = server
        ? (
            await callAdmin<{ incident: Incident }>(
              server,
              'POST',
              `/incidents/${encodeURIComponent(id)}/notes`,
              { text, by },
            )
          ).incident
        : await offline(c, (detect) => detect.addNote(id, by, text), true);
      if (o.json) return printJson({ incident: result });
      console.log(`note added to ${result.id}`);
    });
  incident
    .command('close <id>')
    .description('close an incident with a closing note (containments stay until resumed)')
    .option('--note <text>', 'closing note', '')
    .option('--by <name>', 'who closes (default $CUSTOS_USER or the login name)')
    .option('--json', 'print JSON')
    .action(async (id: string, o: Json & { note: string; by?: string }) => {
      const c = await config();
      const server = await runningServer(c);
      const by = whoAmI(o.by);
      const result = server
        ? (
            await callAdmin<{ incident: Incident }>(
              server,
              'POST',
              `/incidents/${encodeURIComponent(id)}/close`,
              { note: o.note, by },
            )
          ).incident
        : await offline(c, (detect) => detect.closeIncident(id, by, o.note), true);
      if (o.json) return printJson({ incident: result });
      console.log(`incident ${result.id} closed`);
    });
  incident
    .command('report <id>')
    .description('the incident report as Markdown or HTML')
    .option('--format <format>', 'md or html', 'md')
    .option('--out <file>', 'write to a file instead of standard output')
    .action(async (id: string, o: { format: string; out?: string }) => {
      if (o.format !== 'md' && o.format !== 'html') throw new CustosError('usage', '--format is md or html');
      const { reportHtml, reportMarkdown } = await import('../detect/index.js');
      const summary = await offline(await config(), (detect) => detect.summary(id));
      const text = o.format === 'html' ? reportHtml(summary) : reportMarkdown(summary);
      if (o.out) writeFileSync(o.out, text);
      else process.stdout.write(text);
    });

  program
    .command('detection')
    .description('detector findings')
    .command('list')
    .description('detector findings (alerts, throttles, quarantines), newest first')
    .option('--agent <agent>', 'only this agent (id or name)')
    .option('--limit <n>', 'how many', (v) => Number.parseInt(v, 10), 50)
    .option('--json', 'print JSON')
    .action(async (o: Json & { agent?: string; limit: number }) => {
      const detections = await offline(await config(), async (detect, agents) => {
        const agentId = o.agent ? (await agents.require(o.agent)).id : undefined;
        return detect.detections({ ...(agentId ? { agentId } : {}), limit: o.limit });
      });
      if (o.json) return printJson({ detections });
      printTable(
        detections.map((d) => ({
          time: formatTime(d.time),
          agent: d.agentId,
          call: d.server ? `${d.server}.${d.target ?? ''}` : d.target,
          detector: d.detector,
          action: d.action,
          detail: d.detail,
          incident: d.incidentId,
        })),
        ['time', 'agent', 'call', 'detector', 'action', 'detail', 'incident'],
      );
    });

  const playbook = program.command('playbook').description('incident playbooks (YAML in detect.playbooks)');
  playbook
    .command('list')
    .description('list the playbooks and check they are valid')
    .option('--json', 'print JSON')
    .action(async (o: Json) => {
      const c = await config();
      const { loadPlaybooks } = await import('../detect/index.js');
      const playbooks = c.detect.playbooks ? loadPlaybooks(resolve(c.baseDir, c.detect.playbooks)) : [];
      if (o.json) return printJson({ playbooks });
      printTable(
        playbooks.map((p) => ({
          name: p.name,
          trigger: `${p.detectors.length ? p.detectors.join(',') : 'any'} / ${p.actions.join(',')}`,
          steps: p.steps.map((s) => s.kind).join(' > '),
          mode: p.dryRun ? 'dry-run' : 'live',
        })),
        ['name', 'trigger', 'steps', 'mode'],
      );
    });
  playbook
    .command('run <name>')
    .description('run a playbook against an agent now; --dry-run shows what it would do')
    .requiredOption('--agent <agent>', 'the agent (id or name)')
    .option('--incident <id>', 'record the steps on this incident')
    .option('--dry-run', 'record what each step would do, do nothing')
    .option('--json', 'print JSON')
    .action(async (name: string, o: Json & { agent: string; incident?: string; dryRun?: boolean }) => {
      const c = await config();
      const server = await runningServer(c);
      const body = {
        agent: o.agent,
        dryRun: o.dryRun === true,
        ...(o.incident ? { incident: o.incident } : {}),
      };
      const actions = server
        ? (
            await callAdmin<{ actions: IncidentAction[] }>(
              server,
              'POST',
              `/playbooks/${encodeURIComponent(name)}/run`,
              body,
            )
          ).actions
        : await offline(
            c,
            (detect) =>
              detect.runPlaybookByName(name, {
                agent: o.agent,
                dryRun: o.dryRun === true,
                ...(o.incident ? { incidentId: o.incident } : {}),
                actor: whoAmI(undefined),
              }),
            true,
          );
      if (o.json) return printJson({ actions });
      printActions(actions);
    });
}
