import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { AddedAgent, Agent } from '../identity/index.js';
import { registerAgentAuthCommands } from './agent-auth.js';
import {
  agentService,
  callAdmin,
  type GlobalOptions,
  readConfig,
  runningServer,
  withStore,
} from './context.js';
import { formatTime, printJson, printTable } from './output.js';

type Json = { json?: boolean };

function row(a: Agent) {
  return {
    id: a.id,
    name: a.name,
    owner: a.owner,
    status: a.active || a.status !== 'active' ? a.status : 'expired',
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
  action: 'suspend' | 'resume' | 'offboard',
  ref: string,
  options: GlobalOptions & Json,
) {
  const config = readConfig(options);
  const server = await runningServer(config);
  const agent = server
    ? (await callAdmin<{ agent: Agent }>(server, 'POST', `/agents/${encodeURIComponent(ref)}/${action}`))
        .agent
    : await withStore(config, (store) => agentService(store)[action](ref));
  if (options.json) printJson({ agent });
  else console.log(`${agent.name} (${agent.id}) is now ${agent.status}`);
}

export function registerAgentCommands(program: Command): void {
  const agent = program.command('agent').description('onboard, inspect and offboard agents');

  agent
    .command('add <name>')
    .description('onboard an agent; prints its client secret once')
    .requiredOption('--owner <email>', 'email of the accountable human')
    .requiredOption('--purpose <text>', 'what the agent is for')
    .option('--environment <env>', 'environment (development, staging, production)')
    .option('--expires-days <days>', 'days until the agent expires', (v) => Number.parseInt(v, 10))
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
        const config = readConfig(program.opts<GlobalOptions>());
        const input = {
          name,
          owner: o.owner,
          purpose: o.purpose,
          ...(o.environment ? { environment: o.environment } : {}),
          ...(o.expiresDays ? { expiresAt: Date.now() + o.expiresDays * 86_400_000 } : {}),
        };
        const server = o.publicKey ? undefined : await runningServer(config);
        const added = server
          ? await callAdmin<AddedAgent>(server, 'POST', '/agents', input)
          : await withStore(config, (store) =>
              agentService(store).add({
                ...input,
                credential: o.publicKey
                  ? { kind: 'public_key', jwk: JSON.parse(readFileSync(o.publicKey, 'utf8')) }
                  : { kind: 'client_secret' },
              }),
            );
        if (o.json) return printJson(added);
        console.log(`agent ${added.agent.name} onboarded`);
        console.log(`client_id      ${added.clientId}`);
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
      const config = readConfig(program.opts<GlobalOptions>());
      const agents = await withStore(config, (store) =>
        agentService(store).list({
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
      const config = readConfig(program.opts<GlobalOptions>());
      printAgent(await withStore(config, (store) => agentService(store).require(ref)), o.json);
    });

  for (const [action, help] of [
    ['suspend', 'suspend an agent: its next call fails, even with an unexpired token'],
    ['resume', 'resume a suspended agent (it needs a new token)'],
    ['offboard', 'offboard an agent for good: credentials revoked, access ended'],
  ] as const) {
    agent
      .command(`${action} <agent>`)
      .description(help)
      .option('--json', 'print JSON')
      .action((ref: string, o: Json) => lifecycle(action, ref, { ...program.opts<GlobalOptions>(), ...o }));
  }
  registerAgentAuthCommands(agent, program);
}
