// Approve-to-execute latency: an agent's tools/call is held by Custos for human approval;
// the benchmark approves it through the admin API and measures from sending the approval
// to the agent receiving the executed result (the upstream ran it in between). Custos, the
// agent (official MCP SDK client) and the approver share this process; the upstream is a
// real stdio MCP server. Needs `npm run build` first.
//
//   node bench/approvals.js            (or: node bench/run.js --only approvals)
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import pino from 'pino';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');

export const targets = { approveToExecuteP95Ms: 100 };

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const round = (x) => (x === null ? null : Math.round(x * 100) / 100);

export async function run({ quick = false } = {}) {
  const iterations = quick ? 30 : 200;
  const { startCustos } = await import(pathToFileURL(path.join(repo, 'dist/app.js')).href);
  const { adminToken } = await import(pathToFileURL(path.join(repo, 'dist/core/runtime-file.js')).href);
  const { buildConfig } = await import(pathToFileURL(path.join(repo, 'dist/core/config.js')).href);
  const home = await mkdtemp(path.join(os.tmpdir(), 'custos-bench-approvals-'));
  const countFile = path.join(home, 'executed.jsonl');
  await mkdir(path.join(home, 'policies'));
  await writeFile(
    path.join(home, 'policies', 'bench.cedar'),
    `permit (principal, action == Action::"list_tools", resource);
@id("bench:transfer")
@approval("bench")
permit (principal, action == Action::"call_tool", resource);
`,
  );
  const config = buildConfig(
    {
      listen: { host: '127.0.0.1', port: 0 },
      storage: { url: `sqlite:${path.join(home, 'data', 'custos.db')}` },
      policies: './policies',
      servers: {
        bank: {
          command: process.execPath,
          args: [path.join(repo, 'test/support/counting-server.mjs')],
          env: { COUNT_FILE: countFile },
        },
      },
      agents: [{ name: 'bench-agent', owner: 'bench@example.com', purpose: 'benchmark' }],
      approvals: { holdSeconds: 30, tiers: { bench: {} } },
      // Approved calls back to back reach ~30/s on a quiet machine, which the rate anomaly
      // detector rightly quarantines; this benchmark measures approvals, not detection.
      detect: { anomaly: { action: 'off' }, ceiling: { action: 'off' } },
    },
    home,
    { dataDir: path.join(home, 'data'), env: {} },
  );
  const custos = await startCustos(config, { logger: pino({ level: 'warn' }) });
  const client = new Client({ name: 'bench-agent', version: '1.0.0' });
  try {
    const credentials = custos.createdAgents[0];
    const tokenResponse = await fetch(`${custos.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: credentials.clientId,
        client_secret: credentials.clientSecret,
      }),
    });
    const { access_token: token } = await tokenResponse.json();
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${custos.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    const admin = adminToken(config.dataDir);
    const approveToExecute = [];
    const approveCall = [];
    for (let i = 0; i < iterations + 3; i++) {
      const call = client.callTool({ name: 'transfer', arguments: { amount: i, to: `acct-${i}` } });
      // A call answered before it is held (denied, contained) would leave nothing to approve.
      let answered;
      call.then(
        (result) => {
          answered = result;
        },
        (error) => {
          answered = { isError: true, error: String(error) };
        },
      );
      let pending;
      while (pending === undefined) {
        [pending] = await custos.approvals.list({ status: 'pending', limit: 1 });
        if (pending !== undefined) break;
        if (answered !== undefined) throw new Error(`call ${i} was not held: ${JSON.stringify(answered)}`);
        await new Promise((r) => setTimeout(r, 2));
      }
      const t0 = performance.now();
      const res = await fetch(`${custos.url}/api/v1/approvals/${pending.id}/approve`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: '{}',
      });
      await res.json();
      const t1 = performance.now();
      const result = await call;
      const t2 = performance.now();
      if (result.isError) throw new Error(`call ${i} did not execute: ${JSON.stringify(result)}`);
      if (i < 3) continue; // warm-up
      approveCall.push(t1 - t0);
      approveToExecute.push(t2 - t0);
    }
    const executed = existsSync(countFile)
      ? readFileSync(countFile, 'utf8').split('\n').filter(Boolean).length
      : 0;
    approveToExecute.sort((a, b) => a - b);
    approveCall.sort((a, b) => a - b);
    const p95 = percentile(approveToExecute, 95);
    return {
      metrics: [
        { metric: 'held calls measured (after 3 warm-up)', value: iterations, unit: 'calls' },
        { metric: 'upstream executions (all calls, once each)', value: executed, unit: 'calls' },
        { metric: 'approve-to-execute p50', value: round(percentile(approveToExecute, 50)), unit: 'ms' },
        {
          metric: 'approve-to-execute p95',
          value: round(p95),
          unit: 'ms',
          target: `< ${targets.approveToExecuteP95Ms}`,
          pass: p95 < targets.approveToExecuteP95Ms,
        },
        { metric: 'approve-to-execute p99', value: round(percentile(approveToExecute, 99)), unit: 'ms' },
        { metric: 'approve-to-execute max', value: round(approveToExecute.at(-1)), unit: 'ms' },
        { metric: 'approve API round trip p50', value: round(percentile(approveCall, 50)), unit: 'ms' },
      ],
    };
  } finally {
    await client.close().catch(() => {});
    await custos.close();
    await rm(home, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = await run({ quick: process.argv.includes('--quick') });
  console.table(result.metrics);
}
