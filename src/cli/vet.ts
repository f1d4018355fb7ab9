import { writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { canonicalHash } from '../core/canonical.js';
import type { Config } from '../core/config.js';
import { CustosError } from '../core/errors.js';
import type { Drift, Judge, Lockfile, ServerPins, ServerSnapshot, Source, VetReport } from '../vet/index.js';
import {
  callAdmin,
  type GlobalOptions,
  readConfig,
  runningServer,
  withAgents,
  withStore,
} from './context.js';
import { formatTime, printJson, printTable } from './output.js';

/** The pinned definitions of every other server, as snapshots: neighbours without spawning them. */
function neighboursFromPins(lock: Lockfile, except: string): Map<string, ServerSnapshot> {
  const out = new Map<string, ServerSnapshot>();
  for (const [name, pins] of Object.entries(lock.servers)) {
    if (name === except) continue;
    out.set(name, snapshotFromPins(name, pins));
  }
  return out;
}

function snapshotFromPins(name: string, pins: ServerPins): ServerSnapshot {
  return {
    name,
    serverInfo: pins.serverInfo,
    ...(pins.instructions ? { instructions: String(pins.instructions.definition.instructions ?? '') } : {}),
    tools: Object.values(pins.tools).map((p) => p.definition),
    prompts: Object.values(pins.prompts).map((p) => p.definition),
    resources: Object.values(pins.resources).map((p) => p.definition),
    resourceTemplates: Object.values(pins.resourceTemplates).map((p) => p.definition),
  };
}

interface SourceOptions {
  url?: string;
  command?: string;
  allowStdio?: boolean;
  static?: string;
  name?: string;
}

/** Which server to collect, from the positional name or one of --url, --command, --static. */
function sourceOf(config: Config, name: string | undefined, o: SourceOptions): Source {
  const given = [o.url, o.command, o.static].filter((x) => x !== undefined).length;
  if (given > 1) throw new CustosError('usage', 'give only one of --url, --command and --static');
  if (given === 1 && name !== undefined)
    throw new CustosError(
      'usage',
      'give either a configured server name or --url/--command/--static, not both',
    );
  if (o.static) return { kind: 'static', name: o.name ?? 'static', file: resolve(o.static) };
  if (o.url) {
    try {
      new URL(o.url);
    } catch {
      throw new CustosError('usage', `--url ${o.url} is not a URL`);
    }
    return { kind: 'url', name: o.name ?? new URL(o.url).hostname, url: o.url };
  }
  if (o.command) {
    if (!o.allowStdio)
      throw new CustosError(
        'usage',
        `--command starts a local process ("${o.command}"); add --allow-stdio to consent to running it`,
      );
    const [command, ...args] = o.command.split(/\s+/).filter((p) => p !== '');
    if (command === undefined) throw new CustosError('usage', '--command is empty');
    return { kind: 'command', name: o.name ?? 'command', command, args };
  }
  if (name === undefined)
    throw new CustosError(
      'usage',
      'name a server from the configuration, or use --url, --command or --static',
    );
  const server = config.servers[name];
  if (server === undefined)
    throw new CustosError('usage', `no server "${name}" in the configuration`, {
      detail: { fix: `configured servers: ${Object.keys(config.servers).join(', ') || '(none)'}` },
    });
  return { kind: 'config', name, server, baseDir: config.baseDir };
}

/** Record the run through the running server, or in the store directly. */
async function record(config: Config, report: VetReport): Promise<void> {
  const server = await runningServer(config);
  if (server) await callAdmin(server, 'POST', '/vet/runs', { report });
  else {
    const { recordRun } = await import('../vet/index.js');
    await withStore(config, (store) => recordRun(store, report, Date.now()));
  }
}

const formats = ['terminal', 'json', 'html', 'sarif'] as const;

interface VetCommandOptions extends SourceOptions, GlobalOptions {
  answers?: string;
  format: string;
  output?: string;
  json?: boolean;
  probe: boolean;
  judge?: string;
  suppressions?: string;
  failOn: string;
  lockfile?: string;
  record: boolean;
}

async function drifts(pins: ServerPins | undefined, snapshot: ServerSnapshot): Promise<Drift[] | undefined> {
  const { diffSnapshot } = await import('../vet/index.js');
  return pins === undefined ? undefined : diffSnapshot(pins, snapshot);
}

/** A digest of a diff: approval names it, so what is pinned is exactly what the human saw. */
function diffDigest(server: string, drift: readonly Drift[]): string {
  return canonicalHash({
    server,
    drift: drift.map((d) => ({ kind: d.kind, key: d.key, change: d.change, now: d.current?.hash ?? null })),
  }).slice(0, 16);
}

async function printDrift(drift: readonly Drift[]): Promise<void> {
  const { visible } = await import('../vet/index.js');
  for (const d of drift) {
    console.log(`${d.change.toUpperCase()} ${d.kind} ${d.key}`);
    const was = d.pinned?.definition ?? {};
    const now = d.current?.definition ?? {};
    for (const key of new Set([...Object.keys(was), ...Object.keys(now)])) {
      const a = JSON.stringify(was[key]);
      const b = JSON.stringify(now[key]);
      if (a === b) continue;
      if (a !== undefined) console.log(`  - ${key}: ${visible(a)}`);
      if (b !== undefined) console.log(`  + ${key}: ${visible(b)}`);
    }
  }
}

async function collectNamed(config: Config, name: string): Promise<ServerSnapshot> {
  const server = config.servers[name];
  if (server === undefined) throw new CustosError('usage', `no server "${name}" in the configuration`);
  const { collect } = await import('../vet/index.js');
  const collected = await collect(
    { kind: 'config', name, server, baseDir: config.baseDir },
    { probe: false },
  );
  return collected.snapshot;
}

function by(options: { by?: string }): string {
  if (options.by) return options.by;
  try {
    return `${userInfo().username} (cli)`;
  } catch {
    return 'cli';
  }
}

export function registerVetCommands(program: Command): void {
  // "vet" has --json and --lockfile of its own; commander gives options to the parent when
  // both define them, so subcommands read them from either.
  const shared = <T extends { json?: boolean; lockfile?: string }>(o: T): T => {
    const parent = vet.opts<{ json?: boolean; lockfile?: string }>();
    return { ...o, json: o.json ?? parent.json, lockfile: o.lockfile ?? parent.lockfile };
  };
  const vet = program
    .command('vet')
    .description('vet an MCP server: poisoning, shadowing, drift, capabilities and a risk tier')
    .argument('[server]', 'a server from the configuration')
    .option('--url <url>', 'vet a Streamable HTTP server at this URL')
    .option('--command <cmd>', 'vet a stdio server started with this command (needs --allow-stdio)')
    .option('--allow-stdio', 'consent to starting the --command process')
    .option('--static <file>', 'vet a saved tools/list result (or a snapshot) without a live server')
    .option('--name <name>', 'the server name to report for --url, --command or --static')
    .option('--answers <file>', "the vendor's questionnaire answers (YAML)")
    .option('--format <format>', `output: ${formats.join(', ')}`, 'terminal')
    .option('--output <file>', 'write the report to a file instead of standard output')
    .option('--json', 'same as --format json')
    .option('--no-probe', 'list once, without the variance probe')
    .option('--judge <module>', 'an optional judge module (default export { name, judge() }); off by default')
    .option('--suppressions <file>', 'suppressions file (default: vet.suppressions from the configuration)')
    .option(
      '--fail-on <severity>',
      'exit 1 when a finding is at least this severe: block, warn or never',
      'block',
    )
    .option('--lockfile <file>', 'pin lockfile to take the other servers from (shadowing, toxic flows)')
    .option('--no-record', 'do not record this vetting for the inventory')
    .action(async (name: string | undefined, o: VetCommandOptions) => {
      const format = o.json ? 'json' : o.format;
      if (!(formats as readonly string[]).includes(format))
        throw new CustosError('usage', `--format must be one of ${formats.join(', ')}`);
      if (!['block', 'warn', 'never'].includes(o.failOn))
        throw new CustosError('usage', '--fail-on must be block, warn or never');
      const config = await readConfig(program.opts<GlobalOptions>());
      const source = sourceOf(config, name, o);
      const {
        collect,
        loadJudge,
        lockfilePath,
        readAnswers,
        readLockfile,
        readSuppressions,
        renderHtml,
        renderSarif,
        renderTerminal,
        vetSnapshot,
      } = await import('../vet/index.js');
      const answersFile = o.answers ?? (name ? config.vet.servers[name]?.answers : undefined);
      const answers = answersFile ? readAnswers(resolve(config.baseDir, answersFile)) : undefined;
      const suppressionsFile =
        o.suppressions ??
        (config.vet.suppressions ? resolve(config.baseDir, config.vet.suppressions) : undefined);
      const suppressions = readSuppressions(suppressionsFile);
      const judge: Judge | undefined = o.judge ? await loadJudge(o.judge) : undefined;
      const lock = readLockfile(lockfilePath(config, o.lockfile));
      const collected = await collect(source, { probe: o.probe });
      const report = await vetSnapshot(collected.snapshot, collected.method, collected.variance, {
        neighbours: neighboursFromPins(lock, collected.snapshot.name),
        suppressions,
        ...(answers ? { answers } : {}),
        ...(judge ? { judge } : {}),
      });
      if (o.record && source.kind === 'config') await record(config, report);
      const text =
        format === 'json'
          ? JSON.stringify(report, null, 2)
          : format === 'sarif'
            ? JSON.stringify(renderSarif(report, source.kind === 'static' ? source.file : undefined), null, 2)
            : format === 'html'
              ? renderHtml(report)
              : renderTerminal(report, o.output === undefined && process.stdout.isTTY === true);
      if (o.output) writeFileSync(o.output, `${text}\n`);
      else console.log(text);
      const failing =
        o.failOn === 'never'
          ? false
          : o.failOn === 'warn'
            ? report.verdict !== 'pass'
            : report.verdict === 'block';
      if (failing) process.exitCode = 1;
    });

  vet
    .command('pin')
    .description('write the pin lockfile: the canonical SHA-256 of every definition of the servers')
    .argument('[servers...]', 'servers from the configuration (default: all)')
    .option('--lockfile <file>', 'lockfile path (default: vet.lockfile, else custos.lock.json)')
    .option('--by <who>', 'who pins (recorded in the lockfile)')
    .option('--json', 'print the result as JSON')
    .action(async (names: string[], options: { lockfile?: string; by?: string; json?: boolean }) => {
      const o = shared(options);
      const config = await readConfig(program.opts<GlobalOptions>());
      const list = names.length > 0 ? names : Object.keys(config.servers);
      if (list.length === 0) throw new CustosError('usage', 'no servers to pin: the configuration has none');
      const { lockfilePath, pinSnapshot, readLockfile, writeLockfile } = await import('../vet/index.js');
      const path = lockfilePath(config, o.lockfile);
      const lock = readLockfile(path);
      const pinned: Array<Record<string, unknown>> = [];
      for (const name of list) {
        const snapshot = await collectNamed(config, name);
        const pins = pinSnapshot(snapshot, new Date(), by(o));
        lock.servers[name] = pins;
        pinned.push({
          server: name,
          tools: Object.keys(pins.tools).length,
          prompts: Object.keys(pins.prompts).length,
          resources: Object.keys(pins.resources).length + Object.keys(pins.resourceTemplates).length,
          instructions: pins.instructions ? 'pinned' : 'none',
        });
      }
      writeLockfile(path, lock);
      if (o.json) printJson({ lockfile: path, pinned });
      else {
        printTable(pinned, ['server', 'tools', 'prompts', 'resources', 'instructions']);
        console.log(`wrote ${path}`);
        if (config.vet.lockfile === undefined)
          console.log('note: set vet.lockfile in custos.yaml so the gateway enforces these pins');
      }
    });

  vet
    .command('diff')
    .description("show how a server's live definitions differ from its pins (exit 1 on drift)")
    .argument('<server>', 'a server from the configuration')
    .option('--lockfile <file>', 'lockfile path')
    .option('--json', 'print the drift as JSON')
    .action(async (name: string, options: { lockfile?: string; json?: boolean }) => {
      const o = shared(options);
      const config = await readConfig(program.opts<GlobalOptions>());
      const { lockfilePath, readLockfile } = await import('../vet/index.js');
      const lock = readLockfile(lockfilePath(config, o.lockfile));
      const snapshot = await collectNamed(config, name);
      const drift = await drifts(lock.servers[name], snapshot);
      const digest = drift === undefined ? undefined : diffDigest(name, drift);
      if (o.json) printJson({ server: name, pinned: drift !== undefined, drift: drift ?? [], digest });
      else if (drift === undefined) console.log(`${name} has no pins: run custos vet pin ${name}`);
      else if (drift.length === 0) console.log(`${name} matches its pins`);
      else {
        await printDrift(drift);
        console.log(`\napprove exactly this change with: custos vet approve ${name} --digest ${digest}`);
      }
      if (drift === undefined || drift.length > 0) process.exitCode = 1;
    });

  vet
    .command('approve')
    .description("approve a server's current definitions (after custos vet diff) and re-pin them")
    .argument('<server>', 'a server from the configuration')
    .requiredOption('--digest <digest>', 'the digest custos vet diff printed for the change you reviewed')
    .option('--lockfile <file>', 'lockfile path')
    .option('--by <who>', 'who approves (recorded in the lockfile)')
    .option('--json', 'print the result as JSON')
    .action(
      async (name: string, options: { digest: string; lockfile?: string; by?: string; json?: boolean }) => {
        const o = shared(options);
        const config = await readConfig(program.opts<GlobalOptions>());
        const { lockfilePath, pinSnapshot, readLockfile, writeLockfile } = await import('../vet/index.js');
        const path = lockfilePath(config, o.lockfile);
        const lock = readLockfile(path);
        const snapshot = await collectNamed(config, name);
        const drift = (await drifts(lock.servers[name], snapshot)) ?? [];
        const digest = diffDigest(name, drift);
        if (digest !== o.digest) {
          if (!o.json) await printDrift(drift);
          throw new CustosError(
            'conflict',
            `the server's definitions changed since the diff you reviewed (digest now ${digest}); review again with custos vet diff ${name}`,
          );
        }
        lock.servers[name] = pinSnapshot(snapshot, new Date(), by(o));
        writeLockfile(path, lock);
        if (o.json) printJson({ server: name, approved: drift.length, lockfile: path });
        else console.log(`approved ${drift.length} change(s) to ${name}; pins written to ${path}`);
      },
    );

  vet
    .command('flows')
    .description('classify every pinned tool and report dangerous combinations an agent can reach')
    .option('--agent <name>', 'only the tools this agent may see under the current policies')
    .option('--lockfile <file>', 'lockfile path')
    .option('--json', 'print as JSON')
    .action(async (options: { agent?: string; lockfile?: string; json?: boolean }) => {
      const o = shared(options);
      const config = await readConfig(program.opts<GlobalOptions>());
      const { lockfilePath, readLockfile, toxicFlows } = await import('../vet/index.js');
      const lock = readLockfile(lockfilePath(config, o.lockfile));
      let snapshots = Object.entries(lock.servers)
        .filter(([name]) => config.servers[name] !== undefined)
        .map(([name, pins]) => snapshotFromPins(name, pins));
      if (o.agent) {
        const agent = await withAgents(config, (agents) => agents.get(String(o.agent)));
        if (agent === undefined) throw new CustosError('usage', `no agent "${o.agent}"`);
        const { PolicyStore, principalOfAgent } = await import('../policy/index.js');
        const policy = await PolicyStore.open(config.policies);
        const principal = principalOfAgent(agent);
        try {
          snapshots = snapshots.map((s) => ({
            ...s,
            tools: s.tools.filter((t) =>
              policy.canSee(principal, undefined, {
                server: s.name,
                kind: 'tool',
                name: String(t.name),
                ...(t.annotations ? { annotations: t.annotations as Record<string, boolean> } : {}),
              }),
            ),
          }));
        } finally {
          await policy.close();
        }
      }
      const result = toxicFlows(snapshots);
      if (o.json) {
        printJson({ agent: o.agent ?? null, ...result });
        return;
      }
      printTable(
        result.tools.map((t) => ({
          tool: `${t.server}.${t.tool}`,
          capabilities: t.capabilities.join(', ') || '-',
        })),
        ['tool', 'capabilities'],
      );
      if (result.flows.length === 0) console.log('\nno dangerous combinations');
      for (const flow of result.flows) {
        console.log(
          `\n${flow.severity.toUpperCase()} ${flow.id}${flow.singleServer ? ' (within one server)' : ''}: ${flow.message}`,
        );
        for (const [leg, tools] of Object.entries(flow.legs)) console.log(`  ${leg}: ${tools.join(', ')}`);
      }
    });

  vet
    .command('schema')
    .description('print the JSON Schema of the JSON report')
    .action(async () => {
      const { vetReportSchema } = await import('../vet/index.js');
      const { z } = await import('zod');
      printJson(z.toJSONSchema(vetReportSchema));
    });

  vet
    .command('questionnaire')
    .description('print the MCP server security questionnaire (YAML) to send to a vendor')
    .option('--json', 'print as JSON')
    .action(async (options: { json?: boolean }) => {
      const o = shared(options);
      const { loadQuestionnaire } = await import('../vet/index.js');
      const { stringify } = await import('yaml');
      const questions = loadQuestionnaire();
      if (o.json) printJson({ version: 1, questions });
      else console.log(stringify({ version: 1, questions }));
    });
}

interface InventoryRow {
  server: string;
  transport: string;
  owner: string | null;
  tier: string | null;
  verdict: string | null;
  lastVetted: number | null;
  pins: string;
}

/** Every upstream with its risk tier, owner, last vetting and pin status. */
export async function inventory(config: Config): Promise<InventoryRow[]> {
  const server = await runningServer(config);
  if (server) return (await callAdmin<{ servers: InventoryRow[] }>(server, 'GET', '/vet/servers')).servers;
  const { latestRuns, lockfilePath, readLockfile } = await import('../vet/index.js');
  const { isStdioServer } = await import('../core/config.js');
  const lock = readLockfile(lockfilePath(config));
  const runs = await withStore(config, (store) => latestRuns(store));
  return Object.entries(config.servers).map(([name, s]) => {
    const run = runs.get(name);
    const pins = lock.servers[name];
    return {
      server: name,
      transport: isStdioServer(s) ? 'stdio' : 'http',
      owner: config.vet.servers[name]?.owner ?? null,
      tier: run?.tier ?? null,
      verdict: run?.verdict ?? null,
      lastVetted: run?.vettedAt ?? null,
      pins: pins
        ? `pinned ${pins.pinnedAt.slice(0, 10)} (live state not checked: Custos is not running)`
        : 'not pinned',
    };
  });
}

export function registerServersCommand(program: Command): void {
  program
    .command('servers')
    .description('list every upstream MCP server with its risk tier, owner, last vetting and pin status')
    .option('--json', 'print as JSON')
    .action(async (o: { json?: boolean }) => {
      const config = await readConfig(program.opts<GlobalOptions>());
      const rows = await inventory(config);
      if (o.json) printJson({ servers: rows });
      else
        printTable(
          rows.map((r) => ({ ...r, lastVetted: formatTime(r.lastVetted), tier: r.tier ?? 'not vetted' })),
          ['server', 'transport', 'owner', 'tier', 'verdict', 'lastVetted', 'pins'],
        );
    });
}
