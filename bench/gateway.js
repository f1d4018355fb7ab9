// Gateway benchmark: tools/call through Custos (authentication, Cedar policy and audit
// on) against the same echo upstream called directly and through a bare undici proxy.
// Every process listens on 127.0.0.1; every scenario has a bounded duration.
// Needs `npm run build` first (bin/custos.js runs dist/).
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { measure } from './load.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');

export const targets = {
  /** Custos throughput as a share of the bare proxy's, closed loop. */
  throughputRatio: 0.5,
  /** Custos tools/call per second, closed loop. */
  custosRps: 3000,
  /** Custos p99 minus direct p99 at the fixed rate, in milliseconds. */
  addedP99Ms: 1,
};

const profiles = {
  full: { warmupSeconds: 2, seconds: 5, connections: 32, rate: 1000, openSeconds: 5, openConnections: 16 },
  quick: { warmupSeconds: 1, seconds: 2, connections: 32, rate: 1000, openSeconds: 2, openConnections: 16 },
};

/**
 * How the benchmark talks to Custos. The CLI is young; if a command or its output
 * changes, adapt it here and nowhere else.
 */
export const custosContract = {
  agent: { name: 'bench-agent', owner: 'bench@example.com', purpose: 'benchmark' },
  /**
   * YAML configuration for `custos start`; `policies` is a directory of *.cedar files.
   * The agent is onboarded with the CLI rather than declared here: `agent add` is what
   * prints a client secret, and it refuses a name the configuration already declares.
   */
  config: ({ port, dataDir, policiesDir, upstreamUrl }) =>
    [
      `listen: { host: 127.0.0.1, port: ${port} }`,
      `storage: { url: ${JSON.stringify(`sqlite:${path.join(dataDir, 'custos.db')}`)} }`,
      'servers:',
      '  echo:',
      `    url: ${JSON.stringify(upstreamUrl)}`,
      `policies: ${JSON.stringify(policiesDir)}`,
      // A load generator is a runaway by design: its detectors run (and cost what they cost)
      // but only alert, so the benchmark measures the gateway rather than the kill switch.
      'detect:',
      '  agents:',
      '    bench-agent:',
      '      ceiling: { action: alert }',
      '      anomaly: { action: alert }',
      '      loop: { action: alert }',
      '      bytes: { action: alert }',
      '',
    ].join('\n'),
  policy: 'permit(principal, action, resource);\n',
  startArgs: ({ configFile, dataDir, port }) => [
    'start',
    '--config',
    configFile,
    '--data',
    dataDir,
    '--port',
    String(port),
  ],
  /** CLI invocations tried in order until one prints a client id and secret as JSON. */
  credentialCommands: ({ configFile, dataDir, agent }) => [
    [
      'agent',
      'add',
      agent.name,
      '--owner',
      agent.owner,
      '--purpose',
      agent.purpose,
      '--config',
      configFile,
      '--data',
      dataDir,
      '--json',
    ],
  ],
  /** Reads `{ agent: { id }, clientSecret }` (or close variants) from the CLI's JSON. */
  parseCredential: (json) => {
    const clientId = json.clientId ?? json.client_id ?? json.agent?.id ?? json.id;
    const clientSecret = json.clientSecret ?? json.client_secret ?? json.secret;
    if (typeof clientId !== 'string' || typeof clientSecret !== 'string') return undefined;
    return { clientId, clientSecret };
  },
  tokenPath: '/oauth/token',
  healthPath: '/healthz',
  mcpPath: '/mcp/echo',
  tool: 'echo',
};

// Children are killed if this process exits early, so no server outlives the benchmark.
const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Starts a bench service script as a child; it prints {"url": ...} once listening. */
function startScript(script, args) {
  const child = track(
    spawn(process.execPath, [path.join(here, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  return new Promise((resolve, reject) => {
    let stdout = '';
    let started = false;
    const timer = setTimeout(() => fail(new Error(`${script} did not start within 10 s`)), 10_000);
    const fail = (error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(error);
    };
    const onExit = (code) => fail(new Error(`${script} exited with code ${code}: ${stderr}`));
    child.once('exit', onExit);
    child.stdout.on('data', (chunk) => {
      if (started) return;
      stdout += chunk;
      const newline = stdout.indexOf('\n');
      if (newline === -1) return;
      started = true;
      clearTimeout(timer);
      child.removeListener('exit', onExit);
      child.stdout.resume();
      try {
        const { url } = JSON.parse(stdout.slice(0, newline));
        resolve({ url, pid: child.pid, stop: () => stopChild(child) });
      } catch (error) {
        fail(error);
      }
    });
  });
}

function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** CPU seconds (user + system) a process has used so far; undefined where /proc is missing. */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return undefined;
  }
}
const clockTicks = 100; // USER_HZ, 100 on every mainstream Linux

/** Busy CPU seconds of the whole machine so far (all cores), from /proc/stat. */
function machineBusySeconds() {
  try {
    const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = ticks; // skips idle and iowait
    return (user + nice + system + irq + softirq + steal) / clockTicks;
  } catch {
    return undefined;
  }
}

/**
 * Runs one load scenario and adds the CPU the serving processes spent per call (unlike
 * wall-clock numbers, this holds up when other work shares the machine) and the share
 * of the machine's CPU that went to processes outside the benchmark while it ran.
 */
async function measureWithCpu(options, servers) {
  const before = servers.map((s) => cpuSeconds(s.pid));
  const busyBefore = machineBusySeconds();
  const wallStart = performance.now();
  const result = await measure(options);
  const wall = (performance.now() - wallStart) / 1000;
  const busy = busyBefore === undefined ? undefined : machineBusySeconds() - busyBefore;
  const calls = result.requests + (result.warmup_requests ?? 0) + 3; // + initialize, initialized, probe
  let ours = result.loader_cpu_seconds;
  for (const [i, s] of servers.entries()) {
    const after = cpuSeconds(s.pid);
    const used = before[i] === undefined || after === undefined ? undefined : after - before[i];
    result[`${s.name}_cpu_us_per_call`] = used === undefined ? null : Math.round((used * 1e6) / calls);
    ours += used ?? 0;
  }
  result.other_cpu_share =
    busy === undefined
      ? null
      : Math.max(0, Math.round(((busy - ours) / (wall * os.cpus().length)) * 100) / 100);
  result.load_average = Math.round(os.loadavg()[0] * 100) / 100;
  return result;
}

/** The line of a child's output that says what went wrong (its first error line, else its last line). */
function headline(output) {
  const lines = output
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  const line = lines.find((l) => /^(\w*Error\b|Error \[)/.test(l)) ?? lines.at(-1) ?? '(no output)';
  return line.slice(0, 300);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function runCli(args, env) {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(repo, 'bin', 'custos.js'), ...args],
      { cwd: repo, env, timeout: 30_000, maxBuffer: 1 << 20 },
      (error, stdout, stderr) => resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Starts Custos in front of `upstreamUrl` and obtains an access token for the bench agent. */
async function startCustos(upstreamUrl, workDir) {
  const contract = custosContract;
  const dataDir = path.join(workDir, 'data');
  const policiesDir = path.join(workDir, 'policies');
  await mkdir(dataDir, { recursive: true });
  await mkdir(policiesDir, { recursive: true });
  await writeFile(path.join(policiesDir, 'permit-all.cedar'), contract.policy);
  const port = await freePort();
  const configFile = path.join(workDir, 'custos.yaml');
  await writeFile(configFile, contract.config({ port, dataDir, policiesDir, upstreamUrl }));
  const env = { ...process.env, NODE_ENV: 'production' };

  const child = track(
    spawn(
      process.execPath,
      [path.join(repo, 'bin', 'custos.js'), ...contract.startArgs({ configFile, dataDir, port })],
      {
        cwd: workDir,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    ),
  );
  let output = '';
  const keep = (chunk) => {
    output = (output + chunk).slice(-4000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const stop = () => stopChild(child);
  const origin = `http://127.0.0.1:${port}`;

  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null)
        throw new Error(`custos start exited with code ${child.exitCode}: ${headline(output)}`, {
          cause: output,
        });
      try {
        const response = await fetch(origin + contract.healthPath);
        if (response.ok) break;
      } catch {}
      if (Date.now() > deadline)
        throw new Error(`custos did not become healthy within 30 s: ${headline(output)}`, { cause: output });
      await sleep(100);
    }

    let credential;
    const attempts = [];
    for (const args of contract.credentialCommands({ configFile, dataDir, agent: contract.agent })) {
      const result = await runCli(args, env);
      if (result.code === 0) {
        try {
          credential = contract.parseCredential(JSON.parse(result.stdout));
        } catch {}
      }
      if (credential !== undefined) break;
      attempts.push(
        `custos ${args.slice(0, 2).join(' ')}: exit ${result.code}: ${(result.stderr || result.stdout).trim().slice(0, 300)}`,
      );
    }
    if (credential === undefined) throw new Error(`no agent credential:\n  ${attempts.join('\n  ')}`);

    const response = await fetch(origin + contract.tokenPath, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: credential.clientId,
        client_secret: credential.clientSecret,
      }),
    });
    const body = await response.text();
    if (!response.ok) throw new Error(`token request: HTTP ${response.status}: ${body.slice(0, 300)}`);
    const token = JSON.parse(body).access_token;
    if (typeof token !== 'string')
      throw new Error(`token response has no access_token: ${body.slice(0, 300)}`);
    return { url: origin + contract.mcpPath, token, pid: child.pid, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Runs the closed-loop and open-loop scenarios against one target. */
async function measureTarget(label, url, token, servers, profile, log) {
  const common = { url, token, tool: label === 'custos' ? custosContract.tool : 'echo' };
  globalThis.gc?.();
  log(`  ${label}: closed loop, ${profile.connections} connections, ${profile.seconds} s`);
  const closed = await measureWithCpu(
    {
      ...common,
      mode: 'closed',
      connections: profile.connections,
      warmupSeconds: profile.warmupSeconds,
      seconds: profile.seconds,
    },
    servers,
  );
  log(`  ${label}: open loop, ${profile.rate}/s, ${profile.openSeconds} s`);
  const open = await measureWithCpu(
    {
      ...common,
      mode: 'open',
      connections: profile.openConnections,
      rate: profile.rate,
      seconds: profile.openSeconds,
    },
    servers,
  );
  return { closed, open };
}

const round = (x, digits = 3) =>
  x === null || x === undefined ? null : Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * Runs the benchmark. Options: quick (shorter durations), log (progress lines).
 * Resolves to { name, profile, results: { direct, bare, custos? }, custos_note?, metrics },
 * each of results' entries holding a closed-loop and an open-loop scenario.
 */
export async function run(options = {}) {
  const profile = options.quick ? profiles.quick : profiles.full;
  const log = options.log ?? ((line) => console.error(line));
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'custos-bench-'));
  const results = {};
  const processes = [];
  let custosNote;
  try {
    const echo = await startScript('echo-server.js', ['0']);
    processes.push(echo);
    log(`echo server on ${echo.url}`);
    const upstream = { name: 'upstream', pid: echo.pid };
    results.direct = await measureTarget('direct', echo.url, undefined, [upstream], profile, log);

    const bare = await startScript('bare-proxy.js', ['0', echo.url]);
    processes.push(bare);
    log(`bare proxy on ${bare.url}`);
    const proxy = { name: 'proxy', pid: bare.pid };
    results.bare = await measureTarget('bare', bare.url, undefined, [proxy, upstream], profile, log);
    await bare.stop();
    processes.pop();

    let custos;
    try {
      custos = await startCustos(echo.url, workDir);
      processes.push(custos);
      log(`custos on ${custos.url}`);
    } catch (error) {
      custosNote = `Custos part could not start: ${error.message}`;
      log(custosNote);
      if (typeof error.cause === 'string') log(`  custos output (tail):\n${error.cause.trimEnd()}`);
    }
    if (custos !== undefined) {
      try {
        const gateway = { name: 'proxy', pid: custos.pid };
        results.custos = await measureTarget(
          'custos',
          custos.url,
          custos.token,
          [gateway, upstream],
          profile,
          log,
        );
      } catch (error) {
        custosNote = `Custos measurement failed: ${error.message}`;
        log(custosNote);
      }
    }
  } finally {
    for (const p of processes.reverse()) await p.stop();
    await rm(workDir, { recursive: true, force: true });
  }

  const bareRps = results.bare?.closed.rps;
  const custosRps = results.custos?.closed.rps;
  const ratio = custosRps !== undefined && bareRps ? custosRps / bareRps : null;
  const addedP99 =
    results.custos !== undefined ? results.custos.open.p99_ms - results.direct.open.p99_ms : null;
  const metrics = [
    {
      metric: 'Custos / bare proxy throughput (closed loop)',
      value: round(ratio),
      unit: 'ratio',
      target: `>= ${targets.throughputRatio}`,
      pass: ratio === null ? null : ratio >= targets.throughputRatio,
    },
    {
      metric: 'Custos tools/call throughput (closed loop)',
      value: custosRps ?? null,
      unit: 'calls/s',
      target: `>= ${targets.custosRps}`,
      pass: custosRps === undefined ? null : custosRps >= targets.custosRps,
    },
    {
      metric: `Custos added p99 latency at ${profile.rate}/s (vs direct)`,
      value: round(addedP99),
      unit: 'ms',
      target: `<= ${targets.addedP99Ms}`,
      pass: addedP99 === null ? null : addedP99 <= targets.addedP99Ms,
    },
  ];
  return {
    name: 'gateway',
    profile,
    results,
    ...(custosNote === undefined ? {} : { custos_note: custosNote }),
    metrics,
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await run({ quick: process.argv.includes('--quick') }), null, 2));
}
