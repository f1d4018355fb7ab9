import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { CustosError } from '../core/errors.js';
import { registerAgentCommands } from './agent.js';
import { registerApprovalCommands } from './approvals.js';
import { registerAuditCommands } from './audit.js';
import { type GlobalOptions, readConfig } from './context.js';
import { registerEvidenceCommands } from './evidence.js';
import { registerIncidentCommands } from './incident.js';
import { registerOAuthCommands } from './oauth.js';
import { registerPolicyCommands } from './policy.js';
import { registerReviewCommands } from './review.js';
import { registerSecretCommands } from './secret.js';
import { registerUserCommands } from './user.js';
import { registerServersCommand, registerVetCommands } from './vet.js';

/** Resolve when the process is asked to stop. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolve(signal));
  });
}

/**
 * The whole CLI. Command definitions are static and cheap; each action imports the modules it
 * needs when it runs, so `custos --help` or a read of the store does not load the server.
 */
export function buildProgram(): Command {
  const program = new Command('custos')
    .description('Custos governs autonomous AI agents: identity, least privilege, approval, audit')
    .option('--config <file>', 'configuration file (default ./custos.yaml)')
    .option('--data <dir>', 'data directory (default ./.custos)')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('start')
    .description('start the gateway, admin API and console on one port')
    .option('--port <port>', 'port to listen on', (v) => Number.parseInt(v, 10))
    .action(async (o: { port?: number }) => {
      const config = await readConfig({
        ...program.opts<GlobalOptions>(),
        ...(o.port !== undefined ? { port: o.port } : {}),
      });
      const { startCustos } = await import('../app.js');
      const custos = await startCustos(config);
      for (const a of custos.createdAgents) {
        console.log(
          `created agent ${a.name}: client_id ${a.clientId} client_secret ${a.clientSecret} (shown once)`,
        );
      }
      console.log(`Custos listening on ${custos.url} (MCP at ${custos.url}/mcp)`);
      await untilSignal();
      await custos.close();
    });

  program
    .command('demo')
    .description('start Custos with a demo configuration proxying real MCP servers (npm start)')
    .option('--port <port>', 'port to listen on', (v) => Number.parseInt(v, 10), 7400)
    .action(async (o: { port: number }) => {
      const { runDemo } = await import('./demo.js');
      const demo = await runDemo({ port: o.port, dataDir: program.opts<GlobalOptions>().data });
      await untilSignal();
      await demo.close();
    });

  program
    .command('connect')
    .description('bridge a stdio-only MCP client to Custos, keeping its token fresh')
    .requiredOption('--url <url>', 'Custos MCP endpoint, e.g. http://127.0.0.1:7400/mcp')
    .requiredOption('--client-id <id>', 'the agent id')
    .option('--key-file <file>', "the agent's private JWK: authenticate with private_key_jwt, no secret")
    .option('--client-secret-file <file>', 'file holding the client secret')
    .option(
      '--client-secret-env <var>',
      'environment variable holding the client secret',
      'CUSTOS_CLIENT_SECRET',
    )
    .option('--dpop', 'bind tokens to a DPoP key held only in this process (RFC 9449)')
    .action(
      async (o: {
        url: string;
        clientId: string;
        keyFile?: string;
        clientSecretFile?: string;
        clientSecretEnv: string;
        dpop?: boolean;
      }) => {
        const dpop = o.dpop === true;
        const { runBridge } = await import('../gateway/connect.js');
        if (o.keyFile !== undefined) {
          if (o.clientSecretFile !== undefined)
            throw new CustosError('usage', 'give --key-file or --client-secret-file, not both');
          let privateKey: Record<string, unknown>;
          try {
            privateKey = JSON.parse(readFileSync(o.keyFile, 'utf8')) as Record<string, unknown>;
          } catch (error) {
            throw new CustosError('usage', `${o.keyFile} is not a readable JWK file`, { cause: error });
          }
          if (typeof privateKey.d !== 'string')
            throw new CustosError('usage', `${o.keyFile} holds no private key (JWK member "d")`);
          await runBridge({ url: o.url, clientId: o.clientId, privateKey, dpop });
          return;
        }
        const secret = o.clientSecretFile
          ? readFileSync(o.clientSecretFile, 'utf8').trim()
          : process.env[o.clientSecretEnv];
        if (!secret)
          throw new CustosError(
            'usage',
            `no credentials: use --key-file, --client-secret-file or set ${o.clientSecretEnv}`,
          );
        await runBridge({ url: o.url, clientId: o.clientId, clientSecret: secret, dpop });
      },
    );

  registerAgentCommands(program);
  registerPolicyCommands(program);
  registerAuditCommands(program);
  registerEvidenceCommands(program);
  registerIncidentCommands(program);
  registerApprovalCommands(program);
  registerUserCommands(program);
  registerSecretCommands(program);
  registerReviewCommands(program);
  registerVetCommands(program);
  registerOAuthCommands(program);
  registerServersCommand(program);
  return program;
}
