import type { Command } from 'commander';
import { systemClock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import { IdGenerator } from '../core/ids.js';
import type { AccessReview, AgentReach } from '../identity/index.js';
import {
  callAdmin,
  type GlobalOptions,
  offlineActor,
  readConfig,
  runningServer,
  withLifecycle,
} from './context.js';
import { formatTime, printJson } from './output.js';

/**
 * An access review without a server: the policy files and the upstreams of the configuration
 * (started here, for their tool lists, and stopped again), over the store.
 */
async function offlineReview<T>(config: Config, work: (review: AccessReview) => Promise<T>): Promise<T> {
  const { default: pino } = await import('pino');
  const { UpstreamRegistry } = await import('../gateway/upstream/index.js');
  const { AccessReview } = await import('../identity/index.js');
  const { PolicyStore } = await import('../policy/index.js');
  const { reachSources } = await import('../server/admin-lifecycle.js');
  const policy = await PolicyStore.open(config.policies);
  const upstreams = new UpstreamRegistry(config.servers, {
    logger: pino({ level: process.env.CUSTOS_LOG_LEVEL ?? 'silent' }),
    baseDir: config.baseDir,
  });
  try {
    await upstreams.start();
    await upstreams.waitReady(15_000);
    return await withLifecycle(config, (agents, store, audit) =>
      work(
        new AccessReview({
          store,
          clock: systemClock,
          ids: new IdGenerator(systemClock),
          agents,
          audit,
          sources: reachSources({
            policy,
            clock: systemClock,
            servers: () => upstreams.list().map((u) => ({ name: u.name, tools: u.catalog()?.tools ?? null })),
          }),
        }),
      ),
    );
  } finally {
    await upstreams.close();
    policy.close();
  }
}

function printReach(reach: AgentReach): void {
  const a = reach.agent;
  console.log(`${a.name} (${a.id})  owner ${a.owner}  ${a.status}  expires ${formatTime(a.expiresAt)}`);
  console.log(`  purpose   ${a.purpose}`);
  if (reach.servers.length === 0) console.log('  reach     nothing: no tool of any server is permitted');
  for (const s of reach.servers) {
    if (!s.catalogKnown) {
      console.log(`  ${s.server}: tool list unknown (the server did not answer)`);
      continue;
    }
    const tools = s.tools.map((t) =>
      t.access === 'allowed'
        ? t.tool
        : t.access === 'approval'
          ? `${t.tool} (approval: ${t.tier})`
          : `${t.tool} (conditional)`,
    );
    console.log(`  ${s.server}: ${tools.join(', ')}`);
  }
  console.log(
    `  bindings  ${reach.bindings === null ? 'no vault' : reach.bindings.length === 0 ? 'none' : reach.bindings.map((b) => `${b.secret} -> ${b.targetKind} ${b.target} (${b.scope})`).join(', ')}`,
  );
  const last = reach.lastAttestation;
  console.log(
    `  attested  ${last === null ? 'never' : `${formatTime(last.at)} by ${last.reviewer}${last.note ? ` ("${last.note}")` : ''}`}${last !== null && reach.changedSinceAttestation ? '; reach changed since' : ''}`,
  );
  console.log('');
}

export function registerReviewCommands(program: Command): void {
  const review = program
    .command('review')
    .description("access review: each agent's reach (servers, permitted tools, bindings) and attestations")
    .option('--owner <email>', 'only agents of this owner')
    .option('--json', 'print JSON')
    .action(async (o: { owner?: string; json?: boolean }) => {
      const config = await readConfig(program.opts<GlobalOptions>());
      const server = await runningServer(config);
      const agents = server
        ? (
            await callAdmin<{ agents: AgentReach[] }>(
              server,
              'GET',
              `/review${o.owner ? `?owner=${encodeURIComponent(o.owner)}` : ''}`,
            )
          ).agents
        : await offlineReview(config, (r) => r.list(o.owner ? { owner: o.owner } : {}));
      if (o.json) return printJson({ agents });
      if (agents.length === 0) return console.log('no agents to review');
      for (const reach of agents) printReach(reach);
    });

  review
    .command('attest <agents...>')
    .description("record that you reviewed these agents' reach as it is now")
    .option(
      '--reviewer <email>',
      'who reviewed (required with the admin token; a user attests as themselves)',
    )
    .option('--note <text>', 'a note kept with the attestation')
    .option('--json', 'print JSON')
    .action(async (refs: string[], o: { reviewer?: string; note?: string; json?: boolean }) => {
      const config = await readConfig(program.opts<GlobalOptions>());
      const server = await runningServer(config);
      const agents = server
        ? (
            await callAdmin<{ agents: AgentReach[] }>(server, 'POST', '/review/attest', {
              agents: refs,
              ...(o.reviewer ? { reviewer: o.reviewer } : {}),
              ...(o.note ? { note: o.note } : {}),
            })
          ).agents
        : await offlineReview(config, async (r) => {
            const { reviewerOf } = await import('../server/admin-lifecycle.js');
            return r.attest(refs, {
              reviewer: reviewerOf({ kind: 'admin-token', name: offlineActor }, o.reviewer),
              actor: offlineActor,
              ...(o.note ? { note: o.note } : {}),
            });
          });
      if (o.json) return printJson({ agents });
      for (const reach of agents) {
        console.log(
          `${reach.agent.name}: reach attested by ${reach.lastAttestation?.reviewer} (digest ${reach.digest.slice(0, 16)})`,
        );
      }
    });
}
