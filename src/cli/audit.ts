import type { Command } from 'commander';
import type { AuditEvent, LiveVerification, TransparencyLog } from '../audit/index.js';
import type { Config } from '../core/config.js';
import { CustosError } from '../core/errors.js';
import type { AgentService } from '../identity/index.js';
import type { Store } from '../store/index.js';
import { registerAuditTrace } from './audit-trace.js';
import { registerAuditVerify } from './audit-verify.js';
import { type GlobalOptions, readConfig, withAgents, withStore } from './context.js';
import { formatTime, printJson, printTable } from './output.js';

function row(e: AuditEvent) {
  return {
    seq: e.seq,
    time: formatTime(e.time),
    agent: e.agentId,
    method: e.method,
    target: e.server && e.target ? `${e.server}.${e.target}` : (e.target ?? e.server ?? '-'),
    decision: e.effect,
    outcome: e.outcome,
    why: [e.errorCode, ...e.policyIds].filter(Boolean).join(' '),
    ms: (e.latencyUs / 1000).toFixed(1),
    id: e.id,
  };
}

const columns = ['seq', 'time', 'agent', 'method', 'target', 'decision', 'outcome', 'why', 'ms', 'id'];

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('read the audit log');
  registerAuditTrace(audit, program);

  audit
    .command('tail')
    .description('the most recent audit events')
    .option('--agent <agent>', 'only this agent (id or name)')
    .option('--task <task>', 'only this task id')
    .option('--limit <n>', 'how many events', (v) => Number.parseInt(v, 10), 20)
    .option('--follow', 'keep printing new events')
    .option('--json', 'print JSON (one event per line with --follow)')
    .action(async (o: { agent?: string; task?: string; limit: number; follow?: boolean; json?: boolean }) => {
      const config = await readConfig(program.opts<GlobalOptions>());
      const { listEvents } = await import('../audit/index.js');
      await withAgents(config, async (agents, store) => {
        const agentId = o.agent ? (await agents.require(o.agent)).id : undefined;
        const filter = { ...(agentId ? { agentId } : {}), ...(o.task ? { taskId: o.task } : {}) };
        let events = await listEvents(store, { ...filter, limit: o.limit });
        if (o.json && !o.follow) printJson({ events });
        else if (o.json) for (const e of events) console.log(JSON.stringify(e));
        else printTable(events.map(row), columns);
        let last = events.at(-1)?.seq ?? 0;
        while (o.follow) {
          await new Promise((r) => setTimeout(r, 1000));
          events = await listEvents(store, { ...filter, afterSeq: last, limit: 1000 });
          for (const e of events) console.log(o.json ? JSON.stringify(e) : Object.values(row(e)).join('  '));
          last = events.at(-1)?.seq ?? last;
        }
      });
    });

  audit
    .command('show <id>')
    .description('one audit event with its decision, reasoning and arguments')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) => {
      const config = await readConfig(program.opts<GlobalOptions>());
      const { getEvent } = await import('../audit/index.js');
      const event = await withStore(config, (store) => getEvent(store, id));
      if (event === undefined) throw new CustosError('not_found', `no audit event ${id}`);
      if (o.json) return printJson({ event });
      const lines: Array<[string, unknown]> = [
        ['event', `${event.id} (seq ${event.seq})`],
        ['time', formatTime(event.time)],
        ['agent', `${event.agentId} (owner ${event.owner})`],
        ['task', event.taskId],
        ['call', `${event.method} ${event.server ?? ''}${event.target ? ` ${event.target}` : ''}`],
        ['decision', `${event.effect}${event.policyIds.length ? ` by ${event.policyIds.join(', ')}` : ''}`],
        ['reasons', event.reasons.join('; ') || '-'],
        ['outcome', `${event.outcome}${event.errorCode ? ` (${event.errorCode})` : ''}`],
        ['latency', `${(event.latencyUs / 1000).toFixed(2)} ms`],
        ['trace', event.traceId],
        ['args hash', event.argsHash],
        ['policy set', event.policySetHash],
        ['approval', event.approvalId],
        ['arguments', event.erased ? '(erased)' : JSON.stringify(event.arguments)],
        [
          'reasoning',
          event.erased
            ? '(erased)'
            : typeof event.reasoning === 'string'
              ? event.reasoning
              : JSON.stringify(event.reasoning),
        ],
        ['result', event.erased ? '(erased)' : JSON.stringify(event.result)],
      ];
      for (const [k, v] of lines) console.log(`${k.padEnd(10)} ${v ?? '-'}`);
    });

  audit
    .command('key')
    .description("print the verifier key that checks the log's checkpoints and exports (publish it)")
    .action(async () => {
      const config = await readConfig(program.opts<GlobalOptions>());
      const key = await withLog(config, (log) => log.verifierKey);
      console.log(key);
    });

  audit
    .command('export')
    .description('write an export bundle an auditor can verify offline')
    .option('--from <time>', 'earliest event time, ISO 8601 (e.g. 2026-11-01T00:00:00Z), inclusive')
    .option('--to <time>', 'latest event time, ISO 8601, inclusive (default: the last checkpointed event)')
    .requiredOption('--out <dir>', 'directory to write the bundle into')
    .option('--json', 'print the summary as JSON')
    .action(async (o: { from?: string; to?: string; out: string; json?: boolean }) => {
      const config = await readConfig(program.opts<GlobalOptions>());
      const from = o.from === undefined ? undefined : parseTime('--from', o.from);
      const to = o.to === undefined ? undefined : parseTime('--to', o.to);
      const { exportBundle } = await import('../audit/index.js');
      const summary = await withLog(config, (log, store) =>
        exportBundle(store, log, {
          outDir: o.out,
          ...(from === undefined ? {} : { from }),
          ...(to === undefined ? {} : { to }),
        }),
      );
      if (o.json) printJson(summary);
      else
        console.log(
          `exported events ${summary.fromSeq}..${summary.toSeq} (${summary.events} events, ${summary.erased} erased) ` +
            `with ${summary.checkpoints.length} checkpoints, tree size ${summary.treeSize}, to ${o.out}`,
        );
    });

  registerAuditVerify(audit, program);

  audit
    .command('erase-content')
    .description("delete the plaintext (arguments, reasoning, results) of an agent's or a subject's events")
    .option('--agent <agent>', 'every event of this agent (id or name)')
    .option('--subject <subject>', 'every event whose owner is, or whose content mentions, this subject')
    .action(async (o: { agent?: string; subject?: string }) => {
      if ((o.agent === undefined) === (o.subject === undefined))
        throw new CustosError('usage', 'give exactly one of --agent or --subject');
      const config = await readConfig(program.opts<GlobalOptions>());
      const { eraseContent } = await import('../audit/index.js');
      const { erased } = await withAgents(config, async (agents, store) => {
        const agentId = o.agent === undefined ? undefined : await agentIdOf(agents, o.agent);
        return eraseContent(store, {
          ...(agentId === undefined ? {} : { agentId }),
          ...(o.subject === undefined ? {} : { subject: o.subject }),
        });
      });
      console.log(`erased the content of ${erased} events; the log and its proofs still verify`);
    });
}

/** `custos audit verify --live`: the stored log against its latest checkpoint. */
export async function verifyStoredLog(program: Command): Promise<LiveVerification> {
  const config = await readConfig(program.opts<GlobalOptions>());
  const { verifyLive } = await import('../audit/index.js');
  return withLog(config, (log, store) => verifyLive(store, log));
}

/** Open the store and its log read-only: a running server keeps appending and signing. */
async function withLog<T>(
  config: Config,
  work: (log: TransparencyLog, store: Store) => Promise<T> | T,
): Promise<T> {
  const { TransparencyLog } = await import('../audit/index.js');
  return withStore(config, async (store) =>
    work(await TransparencyLog.open(store, { readOnly: true }), store),
  );
}

function parseTime(option: string, text: string): number {
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new CustosError('usage', `${option}: "${text}" is not an ISO 8601 time`);
  return ms;
}

/** An agent's id from its id or name; an offboarded agent's id is accepted as given. */
async function agentIdOf(agents: AgentService, agent: string): Promise<string> {
  try {
    return (await agents.require(agent)).id;
  } catch (error) {
    if (agent.startsWith('agt_')) return agent;
    throw error;
  }
}
