import type { Command } from 'commander';
import { systemClock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import type { ConnectStart, OAuthBroker, OAuthCredentialStatus } from '../vault/index.js';
import {
  callAdmin,
  type GlobalOptions,
  readConfig,
  refuseUserTokenOffline,
  runningServer,
  withAudit,
  withStore,
} from './context.js';
import { formatTime, printJson, printTable } from './output.js';

/** The URL Custos is reached at, as `custos start` computes it (the provider redirects there). */
function baseUrlOf(config: Config): string {
  if (config.listen.publicUrl) return config.listen.publicUrl.replace(/\/$/, '');
  const { host, port } = config.listen;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Run work on a broker over the store (no server running), recording to the audit log. */
async function offline<T>(config: Config, work: (broker: OAuthBroker) => Promise<T>): Promise<T> {
  refuseUserTokenOffline();
  const { OAuthBroker, Vault } = await import('../vault/index.js');
  return withAudit(config, async ({ store, audit, clock }) => {
    const vault = await Vault.open({ store, clock, dataDir: config.dataDir });
    return work(
      new OAuthBroker({
        store,
        clock,
        secrets: vault,
        config: config.oauth,
        baseUrl: baseUrlOf(config),
        audit,
      }),
    );
  });
}

function row(c: OAuthCredentialStatus) {
  return {
    name: c.name,
    grant: c.grant,
    status: c.status,
    scope: c.scope,
    expires: c.accessExpiresAt === null ? null : formatTime(c.accessExpiresAt),
    refreshes: c.refreshCount,
    connected: c.connectedAt === null ? null : `${formatTime(c.connectedAt)} by ${c.connectedBy ?? '-'}`,
    error: c.lastError,
  };
}

export function registerOAuthCommands(program: Command): void {
  const oauth = program
    .command('oauth')
    .description('upstream OAuth 2 credentials the broker holds (custos.yaml oauth.credentials)');
  const globals = () => program.opts<GlobalOptions>();

  oauth
    .command('list')
    .description('list the OAuth credentials and the state of their tokens (never a token)')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const config = await readConfig(globals());
      const server = await runningServer(config);
      const list = server
        ? (await callAdmin<{ credentials: OAuthCredentialStatus[] }>(server, 'GET', '/oauth/credentials'))
            .credentials
        : await withStore(config, async (store) => {
            const { OAuthBroker, Vault } = await import('../vault/index.js');
            const vault = await Vault.open({ store, clock: systemClock, dataDir: config.dataDir });
            return new OAuthBroker({
              store,
              clock: systemClock,
              secrets: vault,
              config: config.oauth,
              baseUrl: baseUrlOf(config),
            }).list();
          });
      if (o.json) printJson(list);
      else
        printTable(list.map(row), [
          'name',
          'grant',
          'status',
          'scope',
          'expires',
          'refreshes',
          'connected',
          'error',
        ]);
    });

  oauth
    .command('connect <name>')
    .description(
      'connect a credential: prints the URL to open in a browser (authorization code with PKCE); client credentials connect at once',
    )
    .option('--json', 'print JSON')
    .action(async (name: string, o: { json?: boolean }) => {
      const config = await readConfig(globals());
      const server = await runningServer(config);
      const start = server
        ? await callAdmin<ConnectStart>(
            server,
            'POST',
            `/oauth/credentials/${encodeURIComponent(name)}/connect`,
          )
        : await offline(config, (broker) => broker.connect(name, 'admin token'));
      if (o.json) return printJson(start);
      if (start.kind === 'connected') {
        console.log(`${name} connected (client credentials); scope: ${start.credential.scope ?? '-'}`);
        return;
      }
      console.log(
        `Open this URL in a browser and consent; the provider sends you back to Custos:\n\n  ${start.url}\n`,
      );
      console.log(`Redirect URI (register it with the provider): ${start.redirectUri}`);
      console.log(
        `The link works once, until ${formatTime(start.expiresAt)}. Custos must be running to receive it.`,
      );
      if (!server)
        console.log('No Custos server is running for this configuration: start one with custos start.');
    });

  oauth
    .command('disconnect <name>')
    .description(
      "delete a credential's tokens from the vault; agents' calls through it fail until it is connected again",
    )
    .option('--json', 'print JSON')
    .action(async (name: string, o: { json?: boolean }) => {
      const config = await readConfig(globals());
      const server = await runningServer(config);
      const status = server
        ? await callAdmin<OAuthCredentialStatus>(
            server,
            'POST',
            `/oauth/credentials/${encodeURIComponent(name)}/disconnect`,
          )
        : await offline(config, (broker) => broker.disconnect(name, 'admin token'));
      if (o.json) printJson(status);
      else console.log(`${name} disconnected`);
    });
}
