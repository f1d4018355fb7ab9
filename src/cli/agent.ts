import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { systemClock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import type { AddedAgent, Agent, OffboardReport, Orphan } from '../identity/index.js';
import { registerAgentAuthCommands } from './agent-auth.js';
import {
  callAdmin,
  type GlobalOptions,
  offlineActor,
  readConfig,
  runningServer,
  withAgents,
  withLifecycle,
  withStore,
} from './context.js';
import { formatTime, printJson, printTable } from './output.js';

type Json = { json?: boolean };

function row(a: Agent) {
  return {
    id: a.id,
    name: a.name,
    owner: a.owner,
    status:
      a.active || a.status !== 'active'
        ? a.status === 'suspended' && a.statusReason === 'expired'
          ? 'expired'
          : a.status
        : 'expired',
    environment: a.environment,
    expires: formatTime(a.expiresAt),
  };
}

function printAgent(agent: Agent, json: boolean | undefined): void {
  if (json) {
    printJson({ agent });
    return;
  }
  for (const [k, v] of Object.entries({
    ...row(agent),
    purpose: agent.purpose,
    epoch: agent.epoch,
    dpop: agent.requireDpop ? 'required' : 'optional',
    created: formatTime(agent.createdAt),
  })) {
    console.log(`${k.padEnd(12)} ${v}`);
  }
}

/** A lifecycle change goes through the running server when there is one, so it takes effect at once. */
async function lifecycle(
  action: 'suspend' | 'resume' | 'offboard' | 'renew',
  ref: string,
  options: GlobalOptions & Json & { days?: number },
) {
  const config = await readConfig(options);
  const server = await runningServer(config);
  const path = `/agents/${encodeURIComponent(ref)}/${action}`;
  const body = action === 'renew' && options.days !== undefined ? { days: options.days } : undefined;
  let result: { agent: Agent } & Partial<OffboardReport>;
  if (server)
    result = await callAdmin<{ agent: Agent } & Partial<OffboardReport>>(server, 'POST', path, body);
  else
    result = await withLifecycle(config, async (agents) => {
      const by = { by: offlineActor };
      if (action === 'offboard') return agents.offboardWithReport(ref, by);
      if (action === 'renew')
        return {
          agent: await agents.renew(ref, {
            ...by,
            ...(options.days === undefined ? {} : { days: options.days }),
          }),
        };
      return { agent: await agents[action](ref, by) };
    });
  if (options.json) return printJson(result);
  const { agent } = result;
  if (action === 'renew')
    console.log(`${agent.name} (${agent.id}) renewed until ${formatTime(agent.expiresAt)}; ${agent.status}`);
  else console.log(`${agent.name} (${agent.id}) is now ${agent.status}`);
  if (action === 'offboard' && result.changed) {
    console.log(`  credentials erased  ${result.credentialsErased}`);
    for (const [name, step] of Object.entries(result.steps ?? {}))
      console.log(`  ${name.padEnd(20)} ${JSON.stringify(step)}`);
  }
}

function orphanRow(o: Orphan) {
  return {
    id: o.id,
    name: o.name,
    owner: o.owner,
    status: o.status,
    expires: formatTime(o.expiresAt),
    lastActivity: formatTime(o.lastActivity),
    reasons: o.reasons.join(', '),
  };
}

export function registerAgentCommands(program: Command): void {
  const agent = program.command('agent').description('onboard, inspect and offboard agents');

  agent
    .command('add <name>')
    .description('onboard an agent; prints its client secret once')
    .requiredOption('--owner <email>', 'email of the accountable human')
    .requiredOption('--purpose <text>', 'what the agent is for')
    .option('--environment <env>', 'environment (development, staging, production)')
    .option(
      '--expires-days <days>',
      'days until the agent expires (default lifecycle.defaultExpiryDays, at most maxExpiryDays)',
      (v) => Number(v),
    )
    .option('--public-key <file>', 'a public JWK file for private_key_jwt instead of a client secret')
    .option('--json', 'print JSON')
    .action(
      async (
        name: string,
        o: GlobalOptions &
          Json & {
            owner: string;
            purpose: string;
            environment?: string;
            expiresDays?: number;
            publicKey?: string;
          },
      ) => {
        const config = await readConfig(program.opts<GlobalOptions>());
        const input = {
          name,
          owner: o.owner,
          purpose: o.purpose,
          ...(o.environment ? { environment: o.environment } : {}),
          ...(o.expiresDays !== undefined ? { expiresInDays: o.expiresDays } : {}),
        };
        if (o.expiresDays !== undefined && !(Number.isInteger(o.expiresDays) && o.expiresDays > 0))
          throw new CustosError('usage', '--expires-days must be a positive whole number');
        const server = o.publicKey ? undefined : await runningServer(config);
        const added = server
          ? await callAdmin<AddedAgent>(server, 'POST', '/agents', input)
          : await withLifecycle(config, (agents) =>
              agents.add(
                {
                  ...input,
                  credential: o.publicKey
                    ? { kind: 'public_key', jwk: JSON.parse(readFileSync(o.publicKey, 'utf8')) }
                    : { kind: 'client_secret' },
                },
                { by: offlineActor },
              ),
            );
        if (o.json) return printJson(added);
        console.log(`agent ${added.agent.name} onboarded`);
        console.log(`client_id      ${added.clientId}`);
        console.log(`expires        ${formatTime(added.agent.expiresAt)}`);
        if (added.clientSecret) {
          console.log(`client_secret  ${added.clientSecret}`);
          console.log("The secret is shown once. Store it in the agent platform's secret store now.");
        }
      },
    );

  agent
    .command('list')
    .description('list agents')
    .option('--status <status>', 'active, suspended or offboarded')
    .option('--owner <email>', 'only agents of this owner')
    .option('--json', 'print JSON')
    .action(async (o: Json & { status?: 'active'; owner?: string }) => {
      const config = await readConfig(program.opts<GlobalOptions>());
      const agents = await withAgents(config, (agents) =>
        agents.list({
          ...(o.status ? { status: o.status } : {}),
          ...(o.owner ? { owner: o.owner } : {}),
        }),
      );
      if (o.json) return printJson({ agents });
      printTable(agents.map(row), ['id', 'name', 'owner', 'status', 'environment', 'expires']);
    });

  agent
    .command('show <agent>')
    .description('show one agent by id or name')
    .option('--json', 'print JSON')
    .action(async (ref: string, o: Json) => {
      const config = await readConfig(program.opts<GlobalOptions>());
      printAgent(await withAgents(config, (agents) => agents.require(ref)), o.json);
    });

  agent
    .command('renew <agent>')
    .description("extend an agent's expiry; an agent suspended for expiry works again")
    .option('--days <days>', 'days from now (default lifecycle.defaultExpiryDays)', (v) => Number(v))
    .option('--json', 'print JSON')
    .action((ref: string, o: Json & { days?: number }) => {
      if (o.days !== undefined && !(Number.isInteger(o.days) && o.days > 0))
        throw new CustosError('usage', '--days must be a positive whole number');
      return lifecycle('renew', ref, { ...program.opts<GlobalOptions>(), ...o });
    });

  agent
    .command('orphans')
    .description('agents whose owner is unknown or disabled, who are expired, or idle for N days')
    .option(
      '--idle-days <days>',
      'idle after this many days without activity (default lifecycle.idleDays)',
      (v) => Number(v),
    )
    .option('--json', 'print JSON')
    .action(async (o: Json & { idleDays?: number }) => {
      const config = await readConfig(program.opts<GlobalOptions>());
      const idleDays = o.idleDays ?? config.lifecycle.idleDays;
      if (!(Number.isInteger(idleDays) && idleDays > 0))
        throw new CustosError('usage', '--idle-days must be a positive whole number');
      const server = await runningServer(config);
      const orphans = server
        ? (await callAdmin<{ orphans: Orphan[] }>(server, 'GET', `/lifecycle/orphans?idleDays=${idleDays}`))
            .orphans
        : await withStore(config, async (store) => {
            const { findOrphans } = await import('../identity/index.js');
            return findOrphans(store, systemClock, { idleDays });
          });
      if (o.json) return printJson({ idleDays, orphans });
      if (orphans.length === 0) return console.log(`no orphans (idle threshold ${idleDays} days)`);
      printTable(orphans.map(orphanRow), [
        'id',
        'name',
        'owner',
        'status',
        'expires',
        'lastActivity',
        'reasons',
      ]);
    });

  for (const [action, help] of [
    ['suspend', 'suspend an agent: its next call fails, even with an unexpired token'],
    ['resume', 'resume a suspended agent (it needs a new token)'],
    [
      'offboard',
      'offboard an agent for good, in one transaction: tokens ended, credentials erased, approvals cancelled, bindings deleted',
    ],
  ] as const) {
    agent
      .command(`${action} <agent>`)
      .description(help)
      .option('--json', 'print JSON')
      .action((ref: string, o: Json) => lifecycle(action, ref, { ...program.opts<GlobalOptions>(), ...o }));
  }
  registerAgentAuthCommands(agent, program);
}
