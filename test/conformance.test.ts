import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Custos, startCustos } from '../src/app.js';
import { buildConfig } from '../src/core/config.js';

/**
 * The public MCP conformance suite (server scenarios) run twice against
 * @modelcontextprotocol/server-everything: once directly and once through Custos.
 * Custos must give the same result for every check, except where it is stricter on
 * purpose (listed in `stricterThroughCustos`, and then the check must pass).
 */
const runnerDir = resolve('test/conformance');
const node22 = join(runnerDir, 'node_modules', 'node', 'bin', 'node');
const cli = join(runnerDir, 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js');
const everything = resolve('node_modules/@modelcontextprotocol/server-everything/dist/index.js');

/** server-everything accepts any Host header; Custos refuses non-loopback hosts (DNS rebinding). */
const stricterThroughCustos = new Set(['dns-rebinding-protection/localhost-host-rebinding-rejected']);

type Summary = Record<string, Record<string, string>>;

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

async function waitFor(url: string, deadline = Date.now() + 20_000): Promise<void> {
  while (Date.now() < deadline) {
    try {
      const res = await request(url, { method: 'GET' });
      await res.body.dump();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${url} did not come up`);
}

/** Run every server scenario against a URL and keep each check's status. */
async function runSuite(url: string, outDir: string): Promise<Summary> {
  // Asynchronous on purpose: Custos runs in this process and must keep answering.
  const runner = spawn(node22, [cli, 'server', '--url', url, '--suite', 'all', '-o', outDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  runner.stdout?.on('data', (d) => (output += d));
  runner.stderr?.on('data', (d) => (output += d));
  const timer = setTimeout(() => runner.kill(), 180_000);
  const code = await new Promise<number | null>((r) => runner.on('close', r));
  clearTimeout(timer);
  // The runner exits 1 when any check fails; the checks files are what we compare.
  if (code !== 0 && code !== 1) throw new Error(`conformance runner exited ${code}:\n${output.slice(-2000)}`);
  const summary: Summary = {};
  for (const dir of readdirSync(outDir)) {
    const scenario = dir.match(/^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$/)?.[1];
    if (scenario === undefined) continue;
    const checks = JSON.parse(readFileSync(join(outDir, dir, 'checks.json'), 'utf8')) as Array<{
      id: string;
      status: string;
    }>;
    summary[scenario] = Object.fromEntries(
      checks.filter((c) => c.status !== 'INFO').map((c) => [c.id, c.status]),
    );
  }
  return summary;
}

/**
 * The conformance client cannot send an Authorization header, so a loopback proxy adds the
 * agent's token. It maps its own Host to Custos's and passes any other Host through, so
 * the DNS rebinding scenario still reaches Custos with the foreign Host it sent.
 */
function authProxy(port: number, target: number, token: string): Promise<Server> {
  const server = createServer((req, res) => {
    const headers = { ...req.headers, authorization: `Bearer ${token}` };
    if (headers.host === `localhost:${port}` || headers.host === `127.0.0.1:${port}`)
      headers.host = `127.0.0.1:${target}`;
    if (headers.origin === `http://localhost:${port}`) headers.origin = `http://127.0.0.1:${target}`;
    const upstream = httpRequest(
      { host: '127.0.0.1', port: target, method: req.method, path: req.url, headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        res.flushHeaders();
        r.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  return new Promise((r) => server.listen(port, '127.0.0.1', () => r(server)));
}

describe('MCP conformance suite through Custos', () => {
  let upstream: ChildProcess;
  let custos: Custos;
  let proxy: Server;
  let upstreamUrl: string;
  let proxyUrl: string;
  const work = mkdtempSync(join(tmpdir(), 'custos-conformance-'));

  beforeAll(async () => {
    if (!existsSync(cli) || !existsSync(node22)) {
      // The runner needs Node 22; it lives in its own folder so it never shadows the project's Node.
      execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--prefix', runnerDir], {
        stdio: 'inherit',
        timeout: 300_000,
      });
    }
    const upstreamPort = await freePort();
    upstreamUrl = `http://localhost:${upstreamPort}/mcp`;
    upstream = spawn(process.execPath, [everything, 'streamableHttp'], {
      env: { ...process.env, PORT: String(upstreamPort) },
      stdio: 'ignore',
    });
    await waitFor(`http://127.0.0.1:${upstreamPort}/mcp`);

    const policies = join(work, 'policies');
    mkdirSync(policies);
    writeFileSync(
      join(policies, 'all.cedar'),
      '@id("conformance:all")\npermit (principal, action, resource);\n',
    );
    const config = buildConfig(
      {
        listen: { host: '127.0.0.1', port: 0 },
        servers: { everything: { url: upstreamUrl } },
        policies,
        agents: [{ name: 'conformance', owner: 'qa@example.com', purpose: 'runs the MCP conformance suite' }],
        // The suite probes error cases quickly through one token; detectors may alert, never quarantine.
        detect: {
          agents: {
            conformance: Object.fromEntries(
              ['ceiling', 'anomaly', 'denials', 'loop', 'bytes'].map((d) => [d, { action: 'alert' }]),
            ),
          },
        },
      },
      work,
      { env: {} },
    );
    custos = await startCustos(config);
    const agent = custos.createdAgents[0];
    if (agent === undefined) throw new Error('agent not created');
    const res = await request(`${custos.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: agent.clientId,
        client_secret: agent.clientSecret,
      }).toString(),
    });
    const { access_token: token } = (await res.body.json()) as { access_token: string };
    const proxyPort = await freePort();
    proxy = await authProxy(proxyPort, Number(new URL(custos.url).port), token);
    proxyUrl = `http://localhost:${proxyPort}/mcp/everything`;
  }, 400_000);

  afterAll(async () => {
    proxy?.close();
    await custos?.close();
    upstream?.kill();
  });

  it('gives the same result for every check as server-everything reached directly', async () => {
    const direct = await runSuite(upstreamUrl, join(work, 'direct'));
    const through = await runSuite(proxyUrl, join(work, 'through'));
    expect(Object.keys(direct).length).toBeGreaterThan(25);
    const differences: string[] = [];
    for (const scenario of new Set([...Object.keys(direct), ...Object.keys(through)])) {
      const a = direct[scenario] ?? {};
      const b = through[scenario] ?? {};
      for (const check of new Set([...Object.keys(a), ...Object.keys(b)])) {
        const key = `${scenario}/${check}`;
        if (stricterThroughCustos.has(key)) {
          expect(b[check], key).toBe('SUCCESS');
        } else if (a[check] !== b[check]) {
          differences.push(`${key}: direct ${a[check] ?? 'absent'}, through Custos ${b[check] ?? 'absent'}`);
        }
      }
    }
    expect(differences).toEqual([]);
    const passed = Object.values(through)
      .flatMap((checks) => Object.values(checks))
      .filter((s) => s === 'SUCCESS');
    console.log(
      `conformance: ${passed.length} checks pass through Custos; identical to direct except ${[...stricterThroughCustos].join(', ')}`,
    );
  }, 400_000);
});
