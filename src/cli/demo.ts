import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { type Custos, startCustos } from '../app.js';
import { systemClock } from '../core/clock.js';
import { loadConfig } from '../core/config.js';
import { IdGenerator } from '../core/ids.js';
import { UserService } from '../identity/index.js';
import { startDemoTicketsApi } from './demo-tickets.js';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The entry script (its bin) of an installed MCP server package. */
function serverEntry(pkg: string): string {
  const manifestPath = createRequire(join(packageRoot, 'package.json')).resolve(`${pkg}/package.json`);
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { bin: Record<string, string> };
  const bin = Object.values(manifest.bin)[0];
  if (bin === undefined) throw new Error(`${pkg} has no bin entry`);
  return join(dirname(manifestPath), bin);
}

export interface DemoCredentials {
  url: string;
  agents: Array<{ name: string; clientId: string; clientSecret: string; secretFile: string }>;
  /** A console login with every role; its password is renewed on each demo start. */
  console: { email: string; password: string };
  /** The demo tickets API (its key is only in the vault) and its Custos proxy URL. */
  tickets: { upstream: string; proxy: string };
  /** The agent's MCP client configuration file: Custos URL and client credentials, no upstream secret. */
  mcpClientConfig: string;
}

const demoUser = 'demo-admin@example.com';

/**
 * Lay out and start the demo: server-filesystem on a sandbox folder and
 * server-everything over stdio, two agents with different policies, fresh demo
 * credentials printed and saved under the demo folder.
 */
export async function runDemo(options: {
  port: number;
  dataDir?: string | undefined;
  quiet?: boolean;
}): Promise<Custos & { demo: DemoCredentials }> {
  const dataDir = resolve(options.dataDir ?? '.custos');
  const home = join(dataDir, 'demo');
  const sandbox = join(home, 'sandbox');
  const policies = join(home, 'policies');
  mkdirSync(sandbox, { recursive: true });
  mkdirSync(policies, { recursive: true });
  writeFileSync(
    join(sandbox, 'welcome.txt'),
    'Welcome to the Custos demo sandbox.\nAgents reach this folder only through Custos.\n',
  );
  writeFileSync(join(sandbox, 'tickets.csv'), 'id,title,status\n1,Printer on fire,open\n2,VPN slow,closed\n');
  const source = join(packageRoot, 'demo', 'policies');
  for (const file of readdirSync(source).filter((f) => f.endsWith('.cedar'))) {
    writeFileSync(
      join(policies, file),
      readFileSync(join(source, file), 'utf8').replaceAll('SANDBOX', sandbox),
    );
  }
  // The tickets API key is made here, handed to the API and to the vault, and written nowhere else.
  const ticketsKey = randomBytes(24).toString('base64url');
  const ticketsApi = await startDemoTicketsApi(ticketsKey);
  const configFile = join(home, 'custos.yaml');
  writeFileSync(
    configFile,
    stringify({
      listen: { host: '127.0.0.1', port: options.port },
      storage: { url: `sqlite:${join(dataDir, 'custos.db')}` },
      servers: {
        files: {
          command: process.execPath,
          args: [serverEntry('@modelcontextprotocol/server-filesystem'), sandbox],
        },
        everything: {
          command: process.execPath,
          args: [serverEntry('@modelcontextprotocol/server-everything'), 'stdio'],
        },
      },
      apis: { tickets: { url: ticketsApi.url, credential: 'tickets-api-key' } },
      policies: './policies',
      agents: [
        {
          name: 'demo-reader',
          owner: 'alice@example.com',
          purpose: 'answers questions from the files; never writes',
        },
        { name: 'demo-writer', owner: 'bob@example.com', purpose: 'maintains files in the sandbox' },
      ],
    }),
  );
  const config = loadConfig({ file: configFile, dataDir });
  const custos = await startCustos(config).catch(async (error: unknown) => {
    await ticketsApi.close();
    throw error;
  });
  await custos.vault.set('tickets-api-key', ticketsKey, {
    kind: 'api_key',
    metadata: { upstream: 'demo tickets API' },
  });
  const close = custos.close;
  const agents: DemoCredentials['agents'] = [];
  for (const name of ['demo-reader', 'demo-writer']) {
    const agent = await custos.identity.agents.require(name);
    if (!agent.active && agent.status === 'suspended') await custos.identity.agents.resume(name);
    // Demo credentials are renewed on every start so they can be printed; real agents keep theirs.
    const issued = await custos.identity.agents.addCredential(name, { kind: 'client_secret' });
    const secretFile = join(home, `${name}.secret`);
    writeFileSync(secretFile, `${issued.clientSecret}\n`, { mode: 0o600 });
    agents.push({ name, clientId: agent.id, clientSecret: issued.clientSecret ?? '', secretFile });
  }
  const users = new UserService({
    store: custos.store,
    clock: systemClock,
    ids: new IdGenerator(systemClock),
  });
  const password = randomBytes(12).toString('base64url');
  if ((await users.find(demoUser)) === undefined) {
    await users.add({ email: demoUser, roles: ['admin', 'approver', 'auditor'], password });
  } else {
    await users.setPassword(demoUser, password);
  }
  // What an agent's MCP client needs: Custos's URL and its own Custos credential, nothing upstream.
  const mcpClientConfig = join(home, 'mcp-client.json');
  const reader = agents[0];
  writeFileSync(
    mcpClientConfig,
    JSON.stringify(
      {
        mcpServers: {
          custos: {
            command: 'npx',
            args: [
              'custos',
              'connect',
              '--url',
              `${custos.url}/mcp`,
              '--client-id',
              reader?.clientId ?? '',
              '--client-secret-file',
              reader?.secretFile ?? '',
            ],
          },
        },
      },
      null,
      2,
    ),
    { mode: 0o600 },
  );
  const demo: DemoCredentials = {
    url: custos.url,
    agents,
    console: { email: demoUser, password },
    tickets: { upstream: ticketsApi.url, proxy: `${custos.url}/proxy/tickets/tickets` },
    mcpClientConfig,
  };
  writeFileSync(join(home, 'credentials.json'), JSON.stringify(demo, null, 2), { mode: 0o600 });
  if (!options.quiet) printDemo(demo, configFile);
  return Object.assign(custos, {
    demo,
    close: async () => {
      await close();
      await ticketsApi.close();
    },
  });
}

function printDemo(demo: DemoCredentials, configFile: string): void {
  const reader = demo.agents[0];
  const lines = [
    '',
    `Custos demo is running at ${demo.url}`,
    `  MCP endpoint   ${demo.url}/mcp   (or ${demo.url}/mcp/files, ${demo.url}/mcp/everything)`,
    `  configuration  ${configFile}`,
    '',
    'Demo agents (OAuth client credentials; secrets are renewed on each demo start):',
    ...demo.agents.map(
      (a) => `  ${a.name.padEnd(12)} client_id ${a.clientId}  client_secret ${a.clientSecret}`,
    ),
    '',
    `Tickets API through Custos (its API key stays in the vault):  curl -H "Authorization: Bearer <agent token>" ${demo.tickets.proxy}`,
    `Agent MCP client configuration (no upstream secret in it):    ${demo.mcpClientConfig}`,
    '',
    `Console: ${demo.url}/  log in as ${demo.console.email} with password ${demo.console.password}`,
    '',
    'Try it with the official MCP SDK client as an agent:',
    `  node demo/client.js ${reader?.name ?? 'demo-reader'}`,
    '',
    'Or connect any stdio MCP client (Claude Desktop, an IDE) through the bridge:',
    `  npx custos connect --url ${demo.url}/mcp --client-id ${reader?.clientId} --client-secret-file ${reader?.secretFile}`,
    '',
    `Watch the audit log:  npx custos audit tail --follow --data ${resolve(configFile, '..', '..')}`,
    'Stop with Ctrl-C.',
    '',
  ];
  console.log(lines.join('\n'));
}
