import type { Command } from 'commander';
import { CustosError } from '../core/errors.js';
import type { PolicyProblem } from '../policy/index.js';
import { type GlobalOptions, readConfig, withAgents } from './context.js';
import { printJson } from './output.js';

function printProblems(problems: readonly PolicyProblem[]): void {
  for (const p of problems) {
    const where = [p.file, p.line === undefined ? undefined : `line ${p.line}`, p.policyId]
      .filter(Boolean)
      .join(' ');
    console.error(`${where}: ${p.message}`);
  }
}

function parseJsonOption(name: string, text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new CustosError('usage', `--${name} must be JSON`);
  }
}

export function registerPolicyCommands(program: Command): void {
  const policy = program.command('policy').description('check and try Cedar policies');

  policy
    .command('check')
    .description('validate the policy directory against the schema (exit 1 on problems)')
    .option('--dir <dir>', 'policy directory (default: policies from the configuration)')
    .option('--json', 'print JSON')
    .action(async (o: { dir?: string; json?: boolean }) => {
      const dir = o.dir ?? (await readConfig(program.opts<GlobalOptions>())).policies;
      const { PolicyLoadError, PolicyStore } = await import('../policy/index.js');
      try {
        const store = await PolicyStore.open(dir);
        const { policies, schema } = store.snapshot;
        store.close();
        if (o.json) printJson({ ok: true, directory: dir, schema, policies: policies.map((p) => p.id) });
        else console.log(`${policies.length} policies in ${dir} are valid (schema: ${schema})`);
      } catch (error) {
        if (!(error instanceof PolicyLoadError)) throw error;
        if (o.json) printJson({ ok: false, directory: dir, problems: error.problems });
        else printProblems(error.problems);
        process.exitCode = 1;
      }
    });

  policy
    .command('test')
    .description(
      'would this agent be allowed to call this tool with these arguments, and why? (calls nothing)',
    )
    .requiredOption('--agent <agent>', 'agent id or name')
    .requiredOption('--server <server>', 'upstream server name')
    .requiredOption('--tool <tool>', 'tool name (or prompt name / resource URI with --kind)')
    .option('--kind <kind>', 'tool, prompt or resource', 'tool')
    .option('--args <json>', 'the call arguments as JSON', '{}')
    .option('--annotations <json>', 'the tool annotations as JSON, e.g. {"readOnlyHint":true}')
    .option('--task-purpose <text>', 'evaluate as if within a task with this purpose')
    .option('--at <iso-time>', 'evaluate at this time instead of now')
    .option('--dir <dir>', 'policy directory (default: policies from the configuration)')
    .option('--json', 'print JSON')
    .action(
      async (o: {
        agent: string;
        server: string;
        tool: string;
        kind: 'tool' | 'prompt' | 'resource';
        args: string;
        annotations?: string;
        taskPurpose?: string;
        at?: string;
        dir?: string;
        json?: boolean;
      }) => {
        const config = await readConfig(program.opts<GlobalOptions>());
        const agent = await withAgents(config, (agents) => agents.require(o.agent));
        const { PolicyStore, principalOfAgent } = await import('../policy/index.js');
        const store = await PolicyStore.open(o.dir ?? config.policies);
        const annotations = parseJsonOption('annotations', o.annotations) as
          | Record<string, boolean>
          | undefined;
        const action = { tool: 'call_tool', prompt: 'get_prompt', resource: 'read_resource' }[
          o.kind
        ] as 'call_tool';
        const time = o.at ? Date.parse(o.at) : Date.now();
        if (Number.isNaN(time)) throw new CustosError('usage', '--at must be an ISO 8601 time');
        const explanation = store.explain({
          principal: principalOfAgent(agent),
          ...(o.taskPurpose ? { task: { id: 'task_policy_test', purpose: o.taskPurpose } } : {}),
          action,
          resource: { server: o.server, kind: o.kind, name: o.tool, ...(annotations ? { annotations } : {}) },
          arguments: parseJsonOption('args', o.args),
          time,
        });
        store.close();
        const { decision } = explanation;
        if (o.json) {
          printJson(explanation);
        } else {
          console.log(
            `${decision.effect === 'allow' ? 'ALLOW' : 'DENY'}  ${agent.name} ${action} ${o.server}.${o.tool}`,
          );
          for (const reason of decision.reasons) console.log(`  because ${reason}`);
          for (const error of decision.errors) console.log(`  error: ${error}`);
          for (const p of explanation.policies) {
            console.log(`\n  ${p.id} (${p.file}:${p.line})`);
            for (const line of p.text.split('\n')) console.log(`    ${line}`);
          }
        }
        if (decision.effect !== 'allow') process.exitCode = 1;
      },
    );
}
