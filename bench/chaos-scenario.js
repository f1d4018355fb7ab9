// The chaos scenario, shared by the benchmark (bench/chaos.js, on dist/) and the test
// (test/chaos.test.ts, on src/): a real MCP SDK client agent sends normal traffic through
// Custos to a counting echo upstream, then runs away; the upstream counts what reaches it.
//
// Custos's own modules come in as arguments so the same code measures the build and the source.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import pino from 'pino';
import { startEchoServer } from './echo-server.js';

const owner = 'chaos-owner@example.com';

/**
 * Start an echo upstream that timestamps every tools/call, and Custos in this process in
 * front of it with one agent, "runaway", allowed everything.
 */
export async function startChaosRig({ startCustos, buildConfig, detect = {}, playbooks = {} }) {
  const arrivals = [];
  const echo = await startEchoServer({ onToolCall: () => arrivals.push(performance.now()) });
  const home = mkdtempSync(join(tmpdir(), 'custos-chaos-'));
  const dataDir = join(home, 'data');
  const policiesDir = join(home, 'policies');
  const playbooksDir = join(home, 'playbooks');
  mkdirSync(policiesDir, { recursive: true });
  mkdirSync(playbooksDir, { recursive: true });
  writeFileSync(
    join(policiesDir, 'chaos.cedar'),
    `@id("chaos:all")\npermit (principal in Owner::"${owner}", action, resource);\n`,
  );
  for (const [file, text] of Object.entries(playbooks)) writeFileSync(join(playbooksDir, file), text);
  const raw = {
    listen: { host: '127.0.0.1', port: 0 },
    storage: { url: `sqlite:${join(dataDir, 'custos.db')}` },
    servers: { echo: { url: echo.url } },
    policies: policiesDir,
    agents: [{ name: 'runaway', owner, purpose: 'chaos benchmark agent' }],
    detect: { ...(Object.keys(playbooks).length > 0 ? { playbooks: playbooksDir } : {}), ...detect },
  };
  const custos = await startCustos(buildConfig(raw, home, { dataDir, env: {} }), {
    logger: pino({ level: 'silent' }),
  });
  const agent = custos.createdAgents.find((a) => a.name === 'runaway');
  return {
    custos,
    echo,
    arrivals,
    dataDir,
    home,
    async token() {
      const res = await fetch(`${custos.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: agent.clientId,
          client_secret: agent.clientSecret,
        }),
      });
      const body = await res.json();
      if (res.status !== 200) throw new Error(`token: ${res.status} ${JSON.stringify(body)}`);
      return body.access_token;
    },
    async close() {
      await custos.close();
      await echo.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** An MCP SDK client connected to Custos's /mcp/echo endpoint as the agent. */
export async function connectAgent(url, token) {
  const client = new Client({ name: 'chaos-agent', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${url}/mcp/echo`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  return client;
}

/** How one call ended, as the agent saw it. */
async function callOnce(client, text) {
  try {
    const result = await client.callTool({ name: 'echo', arguments: { text } });
    return result.isError ? 'refused' : 'ok';
  } catch {
    return 'error';
  }
}

/**
 * Send calls at `rate` per second for `seconds` (or until `until()` is true and `tail` ms
 * passed), each with different arguments, never more than `maxInFlight` outstanding.
 */
async function paced(client, { rate, seconds, label, until, tailMs = 0, maxInFlight = 256 }) {
  const start = performance.now();
  const outcomes = { ok: 0, refused: 0, error: 0 };
  const inFlight = new Set();
  let sent = 0;
  let stopAt = start + seconds * 1000;
  while (performance.now() < stopAt) {
    const now = performance.now();
    if (until?.() && stopAt > now + tailMs) stopAt = now + tailMs;
    const due = Math.floor(((now - start) / 1000) * rate);
    while (sent < due && inFlight.size < maxInFlight) {
      const p = callOnce(client, `${label}-${sent}`).then((o) => {
        outcomes[o] += 1;
        inFlight.delete(p);
      });
      inFlight.add(p);
      sent += 1;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(inFlight);
  return { sent, outcomes, seconds: (performance.now() - start) / 1000 };
}

/**
 * Normal traffic, then a runaway at `rate` calls per second. Returns the detection time,
 * the calls that reached the upstream after onset and after the detection decision.
 */
export async function runaway(rig, { rate, normalSeconds = 3, maxSeconds = 8, tailMs = 1000 }) {
  let detectedAt;
  const unsubscribe = rig.custos.detect.onContain(() => {
    detectedAt ??= performance.now();
  });
  const client = await connectAgent(rig.custos.url, await rig.token());
  try {
    // Normal work: about 4 calls a second, one at a time.
    const normalStart = performance.now();
    let normal = 0;
    while (performance.now() - normalStart < normalSeconds * 1000) {
      await callOnce(client, `normal-${normal++}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const onset = performance.now();
    const run = await paced(client, {
      rate,
      seconds: maxSeconds,
      label: 'runaway',
      until: () => detectedAt !== undefined,
      tailMs,
    });
    await rig.custos.detect.settle();
    const [incident] = await rig.custos.detect.listIncidents();
    const afterOnset = rig.arrivals.filter((t) => t >= onset).length;
    const afterDetection =
      detectedAt === undefined ? null : rig.arrivals.filter((t) => t > detectedAt).length;
    return {
      rate,
      normalCalls: normal,
      sent: run.sent,
      outcomes: run.outcomes,
      achievedRate: run.sent / run.seconds,
      detected: detectedAt !== undefined,
      detectionMs: detectedAt === undefined ? null : detectedAt - onset,
      upstreamAfterOnset: afterOnset,
      upstreamAfterDetection: afterDetection,
      upstreamTotal: rig.arrivals.length,
      incidentId: incident?.id ?? null,
      detector: incident?.detector ?? null,
    };
  } finally {
    unsubscribe();
    await client.close().catch(() => {});
  }
}

/** Run the CLI as users do (a separate process), resolving when it exits. */
export function runCli(bin, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { ...process.env, CUSTOS_LOG_LEVEL: 'warn' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/**
 * A runaway the detectors are told to ignore, stopped by `custos kill --agent runaway`
 * (the CLI, through the running server's admin API). Counts upstream calls after it returned.
 */
export async function killSwitch(rig, { bin, rate = 200, beforeKillMs = 1000, afterKillMs = 1000 }) {
  const client = await connectAgent(rig.custos.url, await rig.token());
  try {
    let killReturnedAt;
    let kill;
    const killAt = performance.now() + beforeKillMs;
    const run = paced(client, {
      rate,
      seconds: (beforeKillMs + afterKillMs) / 1000 + 10,
      label: 'unchecked',
      until: () => {
        if (kill === undefined && performance.now() >= killAt) {
          kill = runCli(bin, ['--data', rig.dataDir, 'kill', '--agent', 'runaway', '--json']).then((r) => {
            killReturnedAt = performance.now();
            return r;
          });
        }
        return killReturnedAt !== undefined;
      },
      tailMs: afterKillMs,
    });
    const result = await run;
    const cli = await kill;
    return {
      rate,
      sent: result.sent,
      outcomes: result.outcomes,
      cli,
      upstreamBeforeKillReturned: rig.arrivals.filter((t) => t <= killReturnedAt).length,
      upstreamAfterKillReturned: rig.arrivals.filter((t) => t > killReturnedAt).length,
    };
  } finally {
    await client.close().catch(() => {});
  }
}
