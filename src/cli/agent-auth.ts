import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { CustosError } from '../core/errors.js';
import type { Agent, AgentService, CredentialInfo } from '../identity/index.js';
import { callAdmin, type GlobalOptions, readConfig, runningServer, withAgents } from './context.js';
import { formatTime, printJson, printTable } from './output.js';

type Json = { json?: boolean };

/** Run through the running server's admin API when there is one (it takes effect at once), else on the store. */
async function act<T>(
  program: Command,
  viaServer: (server: { url: string; token: string }) => Promise<T>,
  viaStore: (agents: AgentService) => Promise<T>,
): Promise<T> {
  const config = await readConfig(program.opts<GlobalOptions>());
  const server = await runningServer(config);
  return server ? viaServer(server) : withAgents(config, viaStore);
}

/** A new Ed25519 key pair: the private JWK is written to `file` (mode 0600, never overwritten), the public JWK returned. */
function generateKeyFile(file: string): Record<string, unknown> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const privateJwk = { ...privateKey.export({ format: 'jwk' }), alg: 'EdDSA' };
  try {
    writeFileSync(file, `${JSON.stringify(privateJwk, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    throw new CustosError('usage', `cannot write ${file}: ${(error as Error).message}`, { cause: error });
  }
  return { ...publicKey.export({ format: 'jwk' }), alg: 'EdDSA' };
}

/**
 * `custos agent key ...` (public keys for private_key_jwt, RFC 7523) and
 * `custos agent dpop` (DPoP-bound tokens, RFC 9449).
 */
export function registerAgentAuthCommands(agent: Command, program: Command): void {
  const key = agent
    .command('key')
    .description('public keys an agent signs its token requests with (private_key_jwt)');

  key
    .command('add <agent>')
    .description('register a public key for an agent; with --generate, create the key pair too')
    .option('--public-key <file>', 'a public JWK file (Ed25519, P-256 or RSA of 2048 bits or more)')
    .option(
      '--generate <file>',
      'create an Ed25519 key pair, write the private JWK to this new file (mode 0600)',
    )
    .option('--json', 'print JSON')
    .action(async (ref: string, o: Json & { publicKey?: string; generate?: string }) => {
      if ((o.publicKey === undefined) === (o.generate === undefined)) {
        throw new CustosError('usage', 'give exactly one of --public-key FILE and --generate FILE');
      }
      let jwk: unknown;
      if (o.publicKey !== undefined) {
        try {
          jwk = JSON.parse(readFileSync(o.publicKey, 'utf8'));
        } catch (error) {
          throw new CustosError('usage', `${o.publicKey} is not a readable JSON file`, { cause: error });
        }
      } else {
        jwk = generateKeyFile(o.generate as string);
      }
      const { credential } = await act(
        program,
        (server) =>
          callAdmin<{ credential: CredentialInfo }>(
            server,
            'POST',
            `/agents/${encodeURIComponent(ref)}/keys`,
            { jwk },
          ),
        (agents) => agents.addCredential(ref, { kind: 'public_key', jwk }),
      );
      if (o.json) return printJson({ credential, ...(o.generate ? { privateKeyFile: o.generate } : {}) });
      console.log(`public key ${credential.id} registered for ${credential.agentId}`);
      if (o.generate) {
        console.log(`private key    ${o.generate} (keep it with the agent; Custos has only the public half)`);
        console.log(
          `connect with   custos connect --url <custos>/mcp --client-id ${credential.agentId} --key-file ${o.generate}`,
        );
      }
    });

  key
    .command('list <agent>')
    .description("list an agent's credentials (secrets by id only)")
    .option('--json', 'print JSON')
    .action(async (ref: string, o: Json) => {
      const credentials = await act(
        program,
        async (server) =>
          (
            await callAdmin<{ credentials: CredentialInfo[] }>(
              server,
              'GET',
              `/agents/${encodeURIComponent(ref)}/credentials`,
            )
          ).credentials,
        (agents) => agents.listCredentials(ref),
      );
      if (o.json) return printJson({ credentials });
      printTable(
        credentials.map((c) => ({
          id: c.id,
          kind: c.kind,
          alg: (c.publicJwk?.alg as string | undefined) ?? '-',
          created: formatTime(c.createdAt),
          revoked: formatTime(c.revokedAt),
        })),
        ['id', 'kind', 'alg', 'created', 'revoked'],
      );
    });

  key
    .command('revoke <agent> <credential>')
    .description('revoke one credential (a key or a secret) of an agent')
    .option('--json', 'print JSON')
    .action(async (ref: string, id: string, o: Json) => {
      const credential = await act(
        program,
        async (server) =>
          (
            await callAdmin<{ credential: CredentialInfo }>(
              server,
              'POST',
              `/agents/${encodeURIComponent(ref)}/credentials/${encodeURIComponent(id)}/revoke`,
            )
          ).credential,
        async (agents) => {
          if (!(await agents.listCredentials(ref)).some((c) => c.id === id)) {
            throw new CustosError('not_found', `agent "${ref}" has no credential ${id}`);
          }
          return agents.revokeCredential(id);
        },
      );
      if (o.json) return printJson({ credential });
      console.log(`credential ${credential.id} revoked`);
    });

  agent
    .command('dpop <agent>')
    .description('require DPoP-bound tokens for an agent (--require) or allow bearer tokens again (--allow)')
    .option('--require', 'tokens must be DPoP-bound; bearer tokens are refused from the next call')
    .option('--allow', 'bearer tokens are accepted again')
    .option('--json', 'print JSON')
    .action(async (ref: string, o: Json & { require?: boolean; allow?: boolean }) => {
      if (Boolean(o.require) === Boolean(o.allow))
        throw new CustosError('usage', 'give exactly one of --require and --allow');
      const required = Boolean(o.require);
      const updated = await act(
        program,
        async (server) =>
          (
            await callAdmin<{ agent: Agent }>(server, 'POST', `/agents/${encodeURIComponent(ref)}/dpop`, {
              require: required,
            })
          ).agent,
        (agents) => agents.setRequireDpop(ref, required),
      );
      if (o.json) return printJson({ agent: updated });
      console.log(
        `${updated.name} (${updated.id}) ${updated.requireDpop ? 'requires DPoP-bound tokens' : 'accepts bearer tokens'}`,
      );
    });
}
