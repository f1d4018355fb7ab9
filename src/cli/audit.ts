import type { Command } from 'commander';
import { type AuditEvent, getEvent, listEvents } from '../audit/index.js';
import { CustosError } from '../core/errors.js';
import { agentService, type GlobalOptions, readConfig, withStore } from './context.js';
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

  audit
    .command('tail')
    .description('the most recent audit events')
    .option('--agent <agent>', 'only this agent (id or name)')
    .option('--task <task>', 'only this task id')
    .option('--limit <n>', 'how many events', (v) => Number.parseInt(v, 10), 20)
    .option('--follow', 'keep printing new events')
    .option('--json', 'print JSON (one event per line with --follow)')
    .action(async (o: { agent?: string; task?: string; limit: number; follow?: boolean; json?: boolean }) => {
      const config = readConfig(program.opts<GlobalOptions>());
      await withStore(config, async (store) => {
        const agentId = o.agent ? (await agentService(store).require(o.agent)).id : undefined;
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
      const config = readConfig(program.opts<GlobalOptions>());
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
        ['arguments', JSON.stringify(event.arguments)],
        [
          'reasoning',
          typeof event.reasoning === 'string' ? event.reasoning : JSON.stringify(event.reasoning),
        ],
      ];
      for (const [k, v] of lines) console.log(`${k.padEnd(10)} ${v ?? '-'}`);
    });
}
