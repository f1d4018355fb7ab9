import type { Command } from 'commander';
import type { Approval, ApprovalService, ApprovalStatus, DecideInput } from '../approvals/index.js';
import { CustosError } from '../core/errors.js';
import { adminTokenActor } from '../server/actor.js';
import {
  callAdmin,
  type GlobalOptions,
  readConfig,
  refuseUserTokenOffline,
  runningServer,
  withAgents,
  withAudit,
} from './context.js';
import { formatTime, printJson, printTable } from './output.js';

const statuses = ['pending', 'approved', 'denied', 'expired', 'cancelled', 'consumed'];

function row(a: Approval) {
  return {
    id: a.id,
    status: a.status,
    tier: a.tier,
    agent: a.agent.name,
    call: `${a.server}.${a.tool}`,
    votes: `${a.quorum.votes.filter((v) => v.decision === 'approve').length}/${a.quorum.required}`,
    created: formatTime(a.createdAt),
    expires: formatTime(a.expiresAt),
  };
}

async function printApproval(a: Approval): Promise<void> {
  const { renderJson } = await import('../approvals/index.js');
  const fields: Array<[string, string]> = [
    ['id', a.id],
    ['status', a.status],
    ['tier', `${a.tier} (${a.quorum.required} approval(s) needed)`],
    ['agent', `${a.agent.name} (${a.agent.id})`],
    ['owner', a.agent.owner],
    ['task', a.task === null ? '-' : `${a.task.purpose} (${a.task.id})`],
    ['call', `${a.server}.${a.tool}`],
    ['policy', a.policyIds.join(', ')],
    ['call hash', a.callHash],
    ['created', formatTime(a.createdAt)],
    ['expires', formatTime(a.expiresAt)],
    ['decided', formatTime(a.decidedAt)],
    ['reason', a.reason ?? '-'],
  ];
  for (const [k, v] of fields) console.log(`${k.padEnd(10)} ${v}`);
  console.log(`\narguments (as Custos received them):\n${renderJson(a.arguments)}`);
  console.log(`\nthe agent's reasoning:\n${renderJson(a.reasoning)}`);
  console.log('\nvotes:');
  for (const v of a.quorum.votes)
    console.log(
      `  ${formatTime(v.at)} ${v.decision} by ${v.by} via ${v.channel}${v.reason ? `: ${v.reason}` : ''}`,
    );
  if (a.quorum.votes.length === 0) console.log('  (none)');
  if (a.recentActivity !== undefined) {
    console.log('\nwhat else the agent did:');
    for (const e of a.recentActivity.slice(-10))
      console.log(
        `  ${formatTime(e.time)} ${e.method} ${e.server ?? ''}${e.target ? `.${e.target}` : ''} ${e.outcome}`,
      );
  }
}

/** Run work on an approvals service over the store (no server running), with a writable audit log. */
async function offline<T>(
  options: GlobalOptions,
  work: (service: ApprovalService) => Promise<T>,
): Promise<T> {
  refuseUserTokenOffline();
  const config = await readConfig(options);
  const { ApprovalService } = await import('../approvals/index.js');
  const { PolicyStore } = await import('../policy/index.js');
  const policy = await PolicyStore.open(config.policies).catch(() => undefined);
  try {
    return await withAudit(config, ({ store, audit, clock, ids }) =>
      work(
        new ApprovalService({
          store,
          clock,
          ids,
          config: config.approvals,
          audit,
          annotationsOf: (id) => policy?.annotationsOf(id),
        }),
      ),
    );
  } finally {
    policy?.close();
  }
}

export function registerApprovalCommands(program: Command): void {
  const approvals = program
    .command('approvals')
    .description('see and decide calls waiting for human approval');
  const globals = () => program.opts<GlobalOptions>();

  approvals
    .command('list')
    .description('list approval requests, newest first')
    .option('--status <status>', statuses.join(', '))
    .option('--agent <agent>', 'agent name or id')
    .option('--limit <n>', 'at most this many', (v) => Number.parseInt(v, 10), 50)
    .option('--json', 'print JSON')
    .action(async (o: { status?: string; agent?: string; limit: number; json?: boolean }) => {
      if (o.status !== undefined && !statuses.includes(o.status))
        throw new CustosError('usage', `--status must be one of ${statuses.join(', ')}`);
      if (!Number.isInteger(o.limit) || o.limit < 1)
        throw new CustosError('usage', '--limit must be a positive integer');
      const config = await readConfig(globals());
      const server = await runningServer(config);
      let list: Approval[];
      if (server) {
        const query = new URLSearchParams({
          limit: String(o.limit),
          ...(o.status ? { status: o.status } : {}),
          ...(o.agent ? { agent: o.agent } : {}),
        });
        list = (await callAdmin<{ approvals: Approval[] }>(server, 'GET', `/approvals?${query}`)).approvals;
      } else {
        const agentId = o.agent
          ? (await withAgents(config, (agents) => agents.require(o.agent as string))).id
          : undefined;
        list = await offline(globals(), (s) =>
          s.list({ status: o.status as ApprovalStatus | undefined, agentId, limit: o.limit }),
        );
      }
      if (o.json) return printJson({ approvals: list });
      printTable(list.map(row), ['id', 'status', 'tier', 'agent', 'call', 'votes', 'created', 'expires']);
    });

  approvals
    .command('show <id>')
    .description(
      'everything an approver needs: agent, owner, task, exact arguments, reasoning, policy, recent activity',
    )
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) => {
      const config = await readConfig(globals());
      const server = await runningServer(config);
      const approval = server
        ? (await callAdmin<{ approval: Approval }>(server, 'GET', `/approvals/${encodeURIComponent(id)}`))
            .approval
        : await offline(globals(), (s) => s.show(id));
      if (o.json) return printJson({ approval });
      await printApproval(approval);
    });

  const decide = async (id: string, input: DecideInput, json: boolean | undefined) => {
    const config = await readConfig(globals());
    const server = await runningServer(config);
    const path = `/approvals/${encodeURIComponent(id)}/${input.decision}`;
    const body = {
      ...(input.reason ? { reason: input.reason } : {}),
      ...(input.grant ? { grant: input.grant } : {}),
      channel: 'cli',
    };
    const approval = server
      ? (await callAdmin<{ approval: Approval }>(server, 'POST', path, body)).approval
      : await offline(globals(), (s) => s.decide(adminTokenActor, id, { ...input, channel: 'cli' }));
    if (json) return printJson({ approval });
    console.log(
      `${approval.id} is now ${approval.status} (${approval.agent.name}: ${approval.server}.${approval.tool})`,
    );
  };

  approvals
    .command('approve <id>')
    .description('approve one exact call (or, with --grant-minutes, this tool for this task for a while)')
    .option('--reason <text>', 'why (recorded)')
    .option(
      '--grant-minutes <n>',
      'also allow matching calls of this agent, task and tool for N minutes',
      (v) => Number.parseInt(v, 10),
    )
    .option('--grant-pattern <json>', 'JSON object: argument name to the regular expression it must match')
    .option('--json', 'print JSON')
    .action(
      async (
        id: string,
        o: { reason?: string; grantMinutes?: number; grantPattern?: string; json?: boolean },
      ) => {
        let argumentsPattern: Record<string, string> | undefined;
        if (o.grantPattern !== undefined) {
          if (o.grantMinutes === undefined)
            throw new CustosError('usage', '--grant-pattern needs --grant-minutes');
          try {
            argumentsPattern = JSON.parse(o.grantPattern) as Record<string, string>;
          } catch {
            throw new CustosError(
              'usage',
              '--grant-pattern must be a JSON object, e.g. {"path":"/srv/reports/.*"}',
            );
          }
        }
        if (o.grantMinutes !== undefined && !Number.isInteger(o.grantMinutes))
          throw new CustosError('usage', '--grant-minutes must be a whole number');
        await decide(
          id,
          {
            decision: 'approve',
            reason: o.reason,
            grant:
              o.grantMinutes === undefined
                ? undefined
                : { minutes: o.grantMinutes, ...(argumentsPattern ? { argumentsPattern } : {}) },
          },
          o.json,
        );
      },
    );

  approvals
    .command('deny <id>')
    .description('deny a call; the agent is told the reason')
    .requiredOption('--reason <text>', 'why (the agent sees it)')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { reason: string; json?: boolean }) => {
      await decide(id, { decision: 'deny', reason: o.reason }, o.json);
    });
}
