// The chaos scenario, shared by the benchmark (bench/chaos.js, on dist/) and the test
// (test/chaos.test.ts, on src/): a real MCP SDK client agent sends normal traffic through
// Custos to a counting echo upstream, then runs away; the upstream counts what reaches it.
//
// Custos's own modules come in as arguments so the same code measures the build and the source.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { connectAgent, misbehave, now, paced } from './chaos-agent.js';
import { startEchoServer } from './echo-server.js';

const agentScript = fileURLToPath(new URL('./chaos-agent.js', import.meta.url));
const echoScript = fileURLToPath(new URL('./echo-server.js', import.meta.url));

const owner = 'chaos-owner@example.com';

/**
 * The echo upstream in its own process, timestamping every tools/call that reaches it, so
 * the count does not wait on Custos's event loop.
 */
async function startEchoProcess(arrivals) {
  const child = spawn(process.execPath, [echoScript, '0', '--log-calls'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let buffer = '';
  const url = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      buffer += d;
      let newline = buffer.indexOf('\n');
      while (newline >= 0) {
        const line = JSON.parse(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
        if (line.url !== undefined) resolve(line.url);
        else arrivals.push(line.call);
        newline = buffer.indexOf('\n');
      }
    });
    child.on('error', reject);
  });
  return {
    url,
    close: () =>
      new Promise((resolve) => {
        child.once('exit', resolve);
        child.kill('SIGTERM');
      }),
  };
}

/**
 * Start an echo upstream that timestamps every tools/call (in this process, or in its own
 * with `upstreamProcess`), and Custos in this process in front of it with one agent,
 * "runaway", allowed everything.
 */
export async function startChaosRig({
  startCustos,
  buildConfig,
  detect = {},
  playbooks = {},
  upstreamProcess = false,
}) {
  const arrivals = [];
  const echo = upstreamProcess
    ? await startEchoProcess(arrivals)
    : await startEchoServer({ onToolCall: () => arrivals.push(now()) });
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

/**
 * Normal traffic, then a runaway at `rate` calls per second, the agent in this process or
 * (`ownProcess`) in its own. Returns the detection time and the calls that reached the
 * upstream after onset and after the detection decision.
 */
export async function runaway(
  rig,
  { rate, normalSeconds = 3, maxSeconds = 8, tailMs = 1000, ownProcess = false },
) {
  let detectedAt;
  let onset;
  let stop = false;
  const unsubscribe = rig.custos.detect.onContain(() => {
    detectedAt ??= now();
    setTimeout(() => {
      stop = true;
      child?.stdin.write('stop\n');
    }, tailMs).unref();
  });
  const token = await rig.token();
  let child;
  try {
    let run;
    if (ownProcess) {
      child = spawn(
        process.execPath,
        [agentScript, rig.custos.url, token, String(rate), String(normalSeconds), String(maxSeconds)],
        {
          stdio: ['pipe', 'pipe', 'inherit'],
        },
      );
      run = await new Promise((resolve, reject) => {
        let buffer = '';
        child.stdout.on('data', (d) => {
          buffer += d;
          let newline = buffer.indexOf('\n');
          while (newline >= 0) {
            const line = JSON.parse(buffer.slice(0, newline));
            buffer = buffer.slice(newline + 1);
            if (line.onset !== undefined) onset = line.onset;
            else resolve(line);
            newline = buffer.indexOf('\n');
          }
        });
        child.on('error', reject);
        child.on('exit', (code) => code !== 0 && reject(new Error(`chaos agent exited with ${code}`)));
      });
    } else {
      const client = await connectAgent(rig.custos.url, token);
      try {
        run = await misbehave(client, {
          rate,
          normalSeconds,
          maxSeconds,
          onOnset: (t) => {
            onset = t;
          },
          stopped: () => stop,
        });
      } finally {
        await client.close().catch(() => {});
      }
    }
    await rig.custos.detect.settle();
    // Let the upstream's last arrival lines come in.
    await new Promise((r) => setTimeout(r, 200));
    const [incident] = await rig.custos.detect.listIncidents();
    return {
      rate,
      ownProcess,
      normalCalls: run.normal,
      sent: run.sent,
      outcomes: run.outcomes,
      achievedRate: run.sent / run.seconds,
      detected: detectedAt !== undefined,
      detectionMs: detectedAt === undefined ? null : detectedAt - onset,
      upstreamAfterOnset: rig.arrivals.filter((t) => t >= onset).length,
      upstreamAfterDetection:
        detectedAt === undefined ? null : rig.arrivals.filter((t) => t > detectedAt).length,
      upstreamTotal: rig.arrivals.length,
      incidentId: incident?.id ?? null,
      detector: incident?.detector ?? null,
      refusedTokens: incident?.refusedTokens ?? null,
    };
  } finally {
    unsubscribe();
    child?.kill();
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
    const run = paced(client, {
      rate,
      seconds: 30,
      label: 'unchecked',
      stopped: () => killReturnedAt !== undefined && now() > killReturnedAt + afterKillMs,
    });
    await new Promise((r) => setTimeout(r, beforeKillMs));
    const cli = await runCli(bin, ['--data', rig.dataDir, 'kill', '--agent', 'runaway', '--json']);
    killReturnedAt = now();
    const result = await run;
    await new Promise((r) => setTimeout(r, 200));
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
