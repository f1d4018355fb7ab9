import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { systemClock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import { IdGenerator } from '../core/ids.js';
import type { Store } from '../store/index.js';
import type { Vault } from '../vault/index.js';
import { type GlobalOptions, readConfig, withAgents, withStore } from './context.js';
import { formatTime, printJson, printTable } from './output.js';

/**
 * `custos secret`: works on the store directly (the server reads the vault on every call, so
 * a change takes effect on its next call). Values come from standard input or --file only.
 */
async function readValue(file: string | undefined): Promise<string> {
  let text: string;
  if (file !== undefined) text = readFileSync(file, 'utf8');
  else {
    if (process.stdin.isTTY) process.stderr.write('secret value (end with Enter, then Ctrl-D): ');
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    text = Buffer.concat(chunks).toString('utf8');
  }
  const value = text.replace(/\r?\n$/, '');
  if (value === '')
    throw new CustosError('usage', 'no secret value: pipe it on standard input or use --file');
  return value;
}

async function withVault<T>(program: Command, work: (vault: Vault, store: Store) => Promise<T>): Promise<T> {
  const config = await readConfig(program.opts<GlobalOptions>());
  const { Vault } = await import('../vault/index.js');
  return withStore(config, async (store) =>
    work(await Vault.open({ store, clock: systemClock, dataDir: config.dataDir }), store),
  );
}

export function registerSecretCommands(program: Command): void {
  const secret = program
    .command('secret')
    .description('upstream secrets in the vault (values never printed)');

  for (const verb of ['set', 'rotate'] as const) {
    secret
      .command(`${verb} <name>`)
      .description(
        verb === 'set'
          ? 'store a secret (value from standard input or --file, never the command line)'
          : 'replace the value of an existing secret; the next call uses the new value',
      )
      .option('--file <file>', 'read the value from this file')
      .option('--kind <kind>', 'what the secret is (api_key, token, ...)')
      .option('--json', 'print JSON')
      .action(async (name: string, o: { file?: string; kind?: string; json?: boolean }) => {
        const value = await readValue(o.file);
        const meta = await withVault(program, (vault) =>
          verb === 'set' ? vault.set(name, value, o.kind ? { kind: o.kind } : {}) : vault.rotate(name, value),
        );
        if (o.json) printJson(meta);
        else console.log(`${verb === 'set' ? 'stored' : 'rotated'} ${meta.name} (version ${meta.version})`);
      });
  }

  secret
    .command('list')
    .description('list secrets: names and metadata only')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const list = await withVault(program, (vault) => vault.list());
      if (o.json) return printJson(list);
      printTable(
        list.map((s) => ({
          name: s.name,
          kind: s.kind,
          version: s.version,
          updated: formatTime(s.updatedAt),
          master_key: s.masterKeyId,
        })),
        ['name', 'kind', 'version', 'updated', 'master_key'],
      );
    });

  secret
    .command('delete <name>')
    .description('delete a secret and every binding that uses it')
    .action(async (name: string) => {
      const deleted = await withVault(program, (vault) => vault.delete(name));
      if (!deleted) throw new CustosError('not_found', `no secret named "${name}"`);
      console.log(`deleted ${name}`);
    });

  secret
    .command('rotate-master-key')
    .description('re-wrap every data key with a new master key, in one transaction (docs/vault.md)')
    .option(
      '--new-key-file <file>',
      'the new key (base64 of 32 bytes); required when CUSTOS_MASTER_KEY is set',
    )
    .option('--json', 'print JSON')
    .action(async (o: { newKeyFile?: string; json?: boolean }) => {
      const { parseMasterKey } = await import('../vault/index.js');
      const key =
        o.newKeyFile === undefined
          ? undefined
          : parseMasterKey(readFileSync(o.newKeyFile, 'utf8'), o.newKeyFile);
      const result = await withVault(program, (vault) => vault.rotateMasterKey(key));
      if (o.json) return printJson(result);
      console.log(
        `re-wrapped ${result.rewrapped} data keys: master key ${result.previousKeyId} -> ${result.keyId}`,
      );
    });

  secret
    .command('bind <name>')
    .description(
      'inject a secret into an upstream: an HTTP header (default Authorization: Bearer) or a stdio env var',
    )
    .option('--server <server>', 'an MCP server from custos.yaml')
    .option('--api <api>', 'an HTTP API from custos.yaml (apis:)')
    .option('--agent <agent>', 'only for this agent (its own upstream identity); default shared')
    .option('--header <template>', 'e.g. "X-Api-Key: {{secret}}"', 'Authorization: Bearer {{secret}}')
    .option('--env <var>', 'environment variable of a stdio server')
    .option('--json', 'print JSON')
    .action(
      async (
        name: string,
        o: { server?: string; api?: string; agent?: string; header: string; env?: string; json?: boolean },
      ) => {
        if ((o.server === undefined) === (o.api === undefined))
          throw new CustosError('usage', 'name exactly one of --server or --api');
        const config = await readConfig(program.opts<GlobalOptions>());
        const { BindingService, parseHeaderTemplate, Vault } = await import('../vault/index.js');
        const binding = await withAgents(config, async (agents, store) => {
          const vault = await Vault.open({ store, clock: systemClock, dataDir: config.dataDir });
          // Binding "oauth:<credential>" checks the credential against custos.yaml (no token is read here).
          const oauth = {
            names: () => Object.keys(config.oauth.credentials),
            accessToken: () => Promise.reject(new CustosError('internal', 'not used when binding')),
          };
          const bindings = new BindingService({
            store,
            vault,
            clock: systemClock,
            ids: new IdGenerator(systemClock),
            oauth,
          });
          let agentId: string | null = null;
          if (o.agent !== undefined) {
            const agent = await agents.get(o.agent);
            if (agent === undefined) throw new CustosError('not_found', `no agent "${o.agent}"`);
            agentId = agent.id;
          }
          const header = parseHeaderTemplate(o.header);
          return bindings.bind({
            secret: name,
            targetKind: o.server === undefined ? 'api' : 'server',
            target: (o.server ?? o.api) as string,
            agentId,
            ...(o.env === undefined
              ? { inject: 'header' as const, field: header.field, template: header.template }
              : { inject: 'env' as const, field: o.env }),
          });
        });
        if (o.json) printJson(binding);
        else console.log(`bound ${name} to ${binding.targetKind} ${binding.target} (${binding.id})`);
      },
    );

  secret
    .command('unbind <id>')
    .description('remove a binding')
    .action(async (id: string) => {
      const config = await readConfig(program.opts<GlobalOptions>());
      const { BindingService, Vault } = await import('../vault/index.js');
      const removed = await withStore(config, async (store) => {
        const vault = await Vault.open({ store, clock: systemClock, dataDir: config.dataDir });
        return new BindingService({
          store,
          vault,
          clock: systemClock,
          ids: new IdGenerator(systemClock),
        }).unbind(id);
      });
      if (!removed) throw new CustosError('not_found', `no binding "${id}"`);
      console.log(`removed ${id}`);
    });

  secret
    .command('bindings')
    .description('list bindings (configuration and store)')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const config = await readConfig(program.opts<GlobalOptions>());
      const { BindingService, configBindings, Vault } = await import('../vault/index.js');
      const list = await withStore(config, async (store) => {
        const vault = await Vault.open({ store, clock: systemClock, dataDir: config.dataDir });
        return new BindingService(
          { store, vault, clock: systemClock, ids: new IdGenerator(systemClock) },
          configBindings(config),
        ).list();
      });
      if (o.json) return printJson(list);
      printTable(
        list.map((b) => ({
          id: b.id,
          secret: b.secret,
          target: `${b.targetKind}:${b.target}`,
          agent: b.agentId ?? 'shared',
          inject: `${b.inject}:${b.field}`,
          source: b.source,
        })),
        ['id', 'secret', 'target', 'agent', 'inject', 'source'],
      );
    });
}
