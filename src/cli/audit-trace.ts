import type { Command } from 'commander';
import type { DecisionChain } from '../audit/index.js';
import { CustosError } from '../core/errors.js';
import { callAdmin, type GlobalOptions, readConfig, runningServer, withAgents } from './context.js';
import { printJson } from './output.js';

/** `custos audit trace <id>`: the decision chain of a task or trace, for a human or as JSON. */
export function registerAuditTrace(audit: Command, program: Command): void {
  audit
    .command('trace <id>')
    .description(
      "a task's or trace's decision chain: reasoning, call, policy decision, approval and result, in order",
    )
    .option('--limit <n>', 'most events shown', (v) => Number.parseInt(v, 10), 1000)
    .option('--json', 'print JSON (the same as GET /api/v1/audit/trace/<id>)')
    .action(async (id: string, o: { limit: number; json?: boolean }) => {
      if (!Number.isInteger(o.limit) || o.limit < 1 || o.limit > 10_000)
        throw new CustosError('usage', '--limit must be an integer from 1 to 10000');
      const config = await readConfig(program.opts<GlobalOptions>());
      const server = await runningServer(config);
      const { loadDecisionChain, renderChain } = await import('../audit/index.js');
      const chain =
        server === undefined
          ? await withAgents(config, (agents, store) =>
              loadDecisionChain(store, id, {
                limit: o.limit,
                agentName: async (agentId) => (await agents.get(agentId))?.name,
              }),
            )
          : await callAdmin<DecisionChain>(
              server,
              'GET',
              `/audit/trace/${encodeURIComponent(id)}?limit=${o.limit}`,
            );
      if (chain.steps.length === 0)
        throw new CustosError('not_found', `no audit events for task or trace ${id}`);
      if (o.json) return printJson(chain);
      const first = chain.steps[0]!;
      const kind = first.taskId === id ? 'task' : 'trace';
      process.stdout.write(renderChain(chain.steps, `Decision chain for ${kind} ${id}`));
      if (chain.truncated) console.log(`(only the first ${o.limit} events are shown; use --limit)`);
    });
}
