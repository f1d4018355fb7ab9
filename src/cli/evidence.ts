import type { Command } from 'commander';
// The evidence module itself, not audit/index.js: help text and checking a pack need no store
// or exporters.
import { FRAMEWORKS, type Framework, type InventoryAgent } from '../audit/evidence.js';
import { CustosError } from '../core/errors.js';
import { readKey } from './audit-verify.js';
import { type GlobalOptions, readConfig, withAgents } from './context.js';
import { printJson } from './output.js';

function parseTime(option: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new CustosError('usage', `${option}: "${text}" is not an ISO 8601 time`);
  return ms;
}

/** `custos evidence`: an evidence pack for one framework and window; `custos evidence verify DIR` checks one. */
export function registerEvidenceCommands(program: Command): void {
  const evidence = program
    .command('evidence')
    .description(
      'write an evidence pack for an auditor (not a certification): controls, evidence files, signed manifest',
    )
    .option('--framework <name>', `one of ${FRAMEWORKS.join(', ')}`)
    .option('--from <time>', 'window start, ISO 8601, inclusive (default: the first event)')
    .option('--to <time>', 'window end, ISO 8601, inclusive (default: now)')
    .option('--out <dir>', 'empty or new directory to write the pack into')
    .option('--json', 'print the summary as JSON')
    .action(async (o: { framework?: string; from?: string; to?: string; out?: string; json?: boolean }) => {
      if (o.framework === undefined || !(FRAMEWORKS as readonly string[]).includes(o.framework))
        throw new CustosError('usage', `--framework must be one of ${FRAMEWORKS.join(', ')}`);
      if (o.out === undefined) throw new CustosError('usage', '--out <dir> is required');
      const from = parseTime('--from', o.from);
      const to = parseTime('--to', o.to);
      if (from !== undefined && to !== undefined && from > to)
        throw new CustosError('usage', '--from is after --to');
      const config = await readConfig(program.opts<GlobalOptions>());
      const { TransparencyLog, writeEvidencePack } = await import('../audit/index.js');
      const { serverInfo } = await import('../gateway/index.js');
      const {
        archivedPolicySetOf,
        archivePolicySet,
        compilePolicySet,
        POLICY_SET_HASH_ALGORITHM,
        policySetArchiveDir,
        readArchivedPolicySet,
        readPolicyDirectory,
      } = await import('../policy/index.js');
      const policies = await readPolicyDirectory(config.policies);
      // Compiling checks the set is the valid one Custos would enforce, and counts its policies.
      const compiled = compilePolicySet(policies);
      // The set in force joins the archive (a server does this when it loads a set).
      const archive = policySetArchiveDir(config.dataDir);
      const inForce = archivedPolicySetOf(compiled, Date.now());
      archivePolicySet(archive, inForce);
      const summary = await withAgents(config, async (agents, store) => {
        const inventory: InventoryAgent[] = [];
        for (const a of await agents.list()) {
          const credentials = await agents.listCredentials(a.id);
          inventory.push({
            id: a.id,
            name: a.name,
            owner: a.owner,
            purpose: a.purpose,
            environment: a.environment,
            status: a.status,
            createdAt: a.createdAt,
            updatedAt: a.updatedAt,
            expiresAt: a.expiresAt,
            credentials: credentials.map((c) => ({
              id: c.id,
              kind: c.kind,
              createdAt: c.createdAt,
              revokedAt: c.revokedAt,
            })),
          });
        }
        // Read-only: a running server keeps appending and signing checkpoints.
        const log = await TransparencyLog.open(store, { readOnly: true });
        return writeEvidencePack(store, log, {
          framework: o.framework as Framework,
          ...(from === undefined ? {} : { from }),
          ...(to === undefined ? {} : { to }),
          outDir: o.out as string,
          agents: inventory,
          policies: {
            directory: config.policies,
            files: [...policies.files, ...(policies.schema === undefined ? [] : [policies.schema])],
            count: compiled.policies.length,
            setHash: { value: inForce.hash, algorithm: POLICY_SET_HASH_ALGORITHM },
            archive: { directory: archive, read: (hash) => readArchivedPolicySet(archive, hash) },
          },
          now: Date.now(),
          version: serverInfo.version,
        });
      });
      if (o.json) return printJson(summary);
      console.log(
        `wrote the ${summary.framework} evidence pack to ${summary.outDir} (${summary.files} files)`,
      );
      for (const c of summary.controls)
        console.log(
          `  ${c.id.padEnd(11)} ${c.support === 'supported' ? 'supported' : 'partial  '}  ${c.title}`,
        );
      console.log(`audit export: ${summary.bundle.detail}`);
      console.log('This is evidence for an auditor, not a certification. See index.md in the pack.');
      if (!summary.bundle.ok) process.exitCode = 1;
    });

  evidence
    .command('verify <dir>')
    .description('check an evidence pack offline: signed manifest and the SHA-256 of every file')
    .option('--key <key>', "the published verifier key, or a file holding it (default: the pack's key.txt)")
    .option('--json', 'print the result as JSON')
    .action(async (dir: string, options: { key?: string; json?: boolean }) => {
      // Commander gives --json to the parent command when both declare it.
      const o = {
        ...options,
        json: options.json === true || evidence.opts<{ json?: boolean }>().json === true,
      };
      const key = o.key === undefined ? undefined : readKey(o.key);
      const { verifyEvidencePack } = await import('../audit/evidence.js');
      const result = await verifyEvidencePack(dir, key === undefined ? {} : { verifierKey: key });
      if (o.json) printJson(result);
      if (!result.ok) {
        if (!o.json) console.error(`custos: evidence check failed: ${result.problem}`);
        process.exitCode = 1;
        return;
      }
      if (!o.json)
        console.log(`ok: ${dir} is complete and unchanged (${result.files} files, ${result.framework})`);
    });
}
