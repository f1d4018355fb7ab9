// Load generator for MCP tools/call over Streamable HTTP. It runs in its own process
// (see `measure`), so it never shares an event loop with the server it measures.
//
// Two modes, both with bounded counts and durations:
// - closed loop: `connections` workers each send the next call when the last one
//   answers, for `seconds` after `warmupSeconds` (maximum throughput);
// - open loop: calls are scheduled at a fixed `rate` for `seconds`, and latency is
//   measured from the scheduled send time, so a slow server cannot hide its queueing
//   delay by slowing the load down (coordinated omission).
import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Pool } from 'undici';

const maxSeconds = 60;
const maxRate = 20_000;
const maxConnections = 256;
/** A call that takes longer than this counts as an error. */
const callTimeoutMs = 10_000;
/** After the open loop's last send, calls still pending this much later count as errors. */
const drainTimeoutMs = 10_000;

/** Latencies in milliseconds, kept exactly (a growing Float64Array) and sorted once at the end. */
class Latencies {
  constructor(capacity = 1 << 16) {
    this.values = new Float64Array(capacity);
    this.count = 0;
  }
  add(ms) {
    if (this.count === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.count++] = ms;
  }
  summary() {
    const sorted = this.values.subarray(0, this.count).sort();
    const at = (q) =>
      this.count === 0 ? null : sorted[Math.min(this.count - 1, Math.ceil(this.count * q) - 1)];
    const round = (x) => (x === null ? null : Math.round(x * 1000) / 1000);
    return {
      p50_ms: round(at(0.5)),
      p90_ms: round(at(0.9)),
      p99_ms: round(at(0.99)),
      max_ms: round(this.count === 0 ? null : sorted[this.count - 1]),
    };
  }
}

/** Extracts the JSON-RPC message from a JSON or a text/event-stream response body. */
function parseMessage(contentType, text) {
  if (contentType?.includes('text/event-stream')) {
    let last;
    for (const event of text.split(/\r?\n\r?\n/)) {
      const data = event
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n');
      if (data === '') continue;
      const message = JSON.parse(data);
      if (message.id !== undefined && (message.result !== undefined || message.error !== undefined))
        last = message;
    }
    return last;
  }
  return text === '' ? undefined : JSON.parse(text);
}

/** An MCP client session over one undici Pool: initialize once, then tools/call. */
class McpSession {
  constructor({ url, token, connections }) {
    const target = new URL(url);
    this.path = target.pathname + target.search;
    this.pool = new Pool(target.origin, {
      connections,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      headersTimeout: callTimeoutMs,
      bodyTimeout: callTimeoutMs,
      connect: { noDelay: true },
    });
    this.headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    };
    if (token) this.headers.authorization = `Bearer ${token}`;
    this.nextId = 1;
  }

  async post(message) {
    const { statusCode, headers, body } = await this.pool.request({
      path: this.path,
      method: 'POST',
      headers: this.headers,
      body: JSON.stringify(message),
    });
    const text = await body.text();
    return { statusCode, headers, text };
  }

  async initialize() {
    const init = await this.post({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'custos-bench-load', version: '1.0.0' },
      },
    });
    if (init.statusCode !== 200)
      throw new Error(`initialize: HTTP ${init.statusCode}: ${init.text.slice(0, 500)}`);
    const reply = parseMessage(init.headers['content-type'], init.text);
    if (reply?.result?.protocolVersion === undefined)
      throw new Error(`initialize: unexpected reply: ${init.text.slice(0, 500)}`);
    const sessionId = init.headers['mcp-session-id'];
    if (typeof sessionId === 'string') this.headers['mcp-session-id'] = sessionId;
    this.headers['mcp-protocol-version'] = reply.result.protocolVersion;
    const initialized = await this.post({ jsonrpc: '2.0', method: 'notifications/initialized' });
    if (initialized.statusCode < 200 || initialized.statusCode > 299)
      throw new Error(
        `notifications/initialized: HTTP ${initialized.statusCode}: ${initialized.text.slice(0, 500)}`,
      );
    return { protocolVersion: reply.result.protocolVersion, sessionId };
  }

  /** One tools/call; resolves to undefined on success or an error description. */
  async call(tool, text) {
    const id = this.nextId++;
    const body = `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":${JSON.stringify(tool)},"arguments":{"text":${JSON.stringify(text)}}}}`;
    const {
      statusCode,
      headers,
      body: stream,
    } = await this.pool.request({
      path: this.path,
      method: 'POST',
      headers: this.headers,
      body,
    });
    const reply = await stream.text();
    if (statusCode < 200 || statusCode > 299) return `HTTP ${statusCode}: ${reply.slice(0, 500)}`;
    let message;
    try {
      message = parseMessage(headers['content-type'], reply);
    } catch {
      return `unparseable reply: ${reply.slice(0, 500)}`;
    }
    if (message?.error !== undefined) return `JSON-RPC error: ${reply.slice(0, 500)}`;
    if (message?.result?.isError === true) return `tool error: ${reply.slice(0, 500)}`;
    if (message?.result?.content?.[0]?.text !== text) return `unexpected reply: ${reply.slice(0, 500)}`;
    return undefined;
  }

  /** Closes the pool; calls still pending (an overloaded target) are aborted. */
  close() {
    return this.pool.destroy();
  }
}

function cpuPerCall({ user, system }, calls) {
  return calls === 0 ? null : Math.round((user + system) / calls);
}

function cpuSecondsOf({ user, system }) {
  return (user + system) / 1e6;
}

function clamp(value, low, high, name) {
  const n = Number(value);
  if (!Number.isFinite(n) || n < low || n > high) throw new Error(`${name} must be in [${low}, ${high}]`);
  return n;
}

/**
 * Runs one scenario in this process. Options: url, token?, tool ('echo'), mode
 * ('closed' | 'open'), connections, seconds, warmupSeconds (closed), rate (open).
 */
export async function runLoad(options) {
  const mode = options.mode ?? 'closed';
  const seconds = clamp(options.seconds ?? 5, 0.1, maxSeconds, 'seconds');
  const warmupSeconds = clamp(options.warmupSeconds ?? 0, 0, maxSeconds, 'warmupSeconds');
  const connections = clamp(options.connections ?? 32, 1, maxConnections, 'connections');
  const tool = options.tool ?? 'echo';
  const text = options.text ?? 'hello from custos bench';
  if (!/^http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(options.url))
    throw new Error(`load targets loopback only, not ${options.url}`);

  const session = new McpSession({ url: options.url, token: options.token, connections });
  try {
    const handshake = await session.initialize();
    const probe = await session.call(tool, text);
    if (probe !== undefined) throw new Error(`first tools/call failed: ${probe}`);

    const latencies = new Latencies();
    const cpuStart = process.cpuUsage();
    let errors = 0;
    let firstError;
    const fail = (description) => {
      errors++;
      firstError ??= description;
    };
    let requests = 0;
    let warmupRequests = 0;
    let elapsed;
    let sendLag;

    if (mode === 'closed') {
      // Warm-up (unrecorded), then the measured window; a call counts if it started in the window.
      const warmupEnd = performance.now() + warmupSeconds * 1000;
      const measureEnd = warmupEnd + seconds * 1000;
      const worker = async () => {
        for (;;) {
          const start = performance.now();
          if (start >= measureEnd) return;
          let error;
          try {
            error = await session.call(tool, text);
          } catch (e) {
            error = `transport: ${e.message}`;
          }
          if (start < warmupEnd) {
            warmupRequests++;
            continue;
          }
          requests++;
          latencies.add(performance.now() - start);
          if (error !== undefined) fail(error);
        }
      };
      await Promise.all(Array.from({ length: connections }, worker));
      elapsed = (performance.now() - warmupEnd) / 1000;
    } else if (mode === 'open') {
      const rate = clamp(options.rate ?? 1000, 1, maxRate, 'rate');
      const total = Math.round(rate * seconds);
      const interval = 1000 / rate;
      const lags = new Latencies(total);
      const begin = performance.now() + 10;
      const inFlight = [];
      const answered = new Uint8Array(total);
      let drainEnded = false;
      let sent = 0;
      await new Promise((resolve) => {
        const fire = (index, scheduled) => {
          lags.add(performance.now() - scheduled);
          const settle = (error) => {
            if (drainEnded) return;
            answered[index] = 1;
            requests++;
            latencies.add(performance.now() - scheduled);
            if (error !== undefined) fail(error);
          };
          inFlight.push(session.call(tool, text).then(settle, (e) => settle(`transport: ${e.message}`)));
        };
        const tick = () => {
          const now = performance.now();
          while (sent < total && begin + sent * interval <= now) {
            fire(sent, begin + sent * interval);
            sent++;
          }
          if (sent >= total) return resolve();
          setTimeout(tick, Math.max(0, begin + sent * interval - performance.now()));
        };
        setTimeout(tick, 10);
      });
      // An overloaded target leaves a backlog; wait for it only so long.
      let drainTimer;
      const drained = await Promise.race([
        Promise.all(inFlight).then(() => true),
        new Promise((resolve) => {
          drainTimer = setTimeout(() => resolve(false), drainTimeoutMs);
        }),
      ]);
      clearTimeout(drainTimer);
      const drainEnd = performance.now();
      drainEnded = true;
      if (!drained) {
        // Each pending call gets its latency so far (a lower bound) and counts as an error.
        for (let i = 0; i < total; i++) {
          if (answered[i] === 1) continue;
          requests++;
          latencies.add(drainEnd - (begin + i * interval));
          fail(`no reply within ${drainTimeoutMs / 1000} s after the last send (target overloaded)`);
        }
      }
      elapsed = (drainEnd - begin) / 1000;
      const lag = lags.summary();
      sendLag = { p50_ms: lag.p50_ms, p99_ms: lag.p99_ms, max_ms: lag.max_ms };
    } else {
      throw new Error(`unknown mode ${mode}`);
    }

    return {
      mode,
      connections,
      ...(mode === 'open' ? { rate: options.rate ?? 1000 } : { warmup_seconds: warmupSeconds }),
      protocol_version: handshake.protocolVersion,
      requests,
      ...(mode === 'closed' ? { warmup_requests: warmupRequests } : {}),
      errors,
      seconds: Math.round(elapsed * 1000) / 1000,
      rps: Math.round((requests - errors) / elapsed), // successful calls per second
      ...latencies.summary(),
      loader_cpu_us_per_call: cpuPerCall(process.cpuUsage(cpuStart), requests + warmupRequests),
      loader_cpu_seconds: cpuSecondsOf(process.cpuUsage(cpuStart)),
      ...(sendLag === undefined ? {} : { send_lag: sendLag }),
      ...(firstError === undefined ? {} : { first_error: firstError }),
    };
  } finally {
    await session.close();
  }
}

/** Runs one scenario in a forked child process and resolves to its result. */
export function measure(options) {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let settled = false;
    const limit = ((options.seconds ?? 5) + (options.warmupSeconds ?? 0) + 30) * 1000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      if (!settled) reject(new Error(`load generator did not finish within ${limit / 1000} s`));
      settled = true;
    }, limit);
    child.once('message', (message) => {
      settled = true;
      clearTimeout(timer);
      child.disconnect();
      if (message.error !== undefined) reject(new Error(message.error));
      else resolve(message.result);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (!settled) reject(new Error(`load generator exited with code ${code}`));
      settled = true;
    });
    child.send(options);
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.send === undefined) {
    // Manual use: node bench/load.js URL [closed|open] [seconds] [connections|rate]
    const [url, mode = 'closed', seconds = '5', n] = process.argv.slice(2);
    const options = { url, mode, seconds: Number(seconds), token: process.env.CUSTOS_BENCH_TOKEN };
    if (mode === 'open') options.rate = Number(n ?? 1000);
    else options.connections = Number(n ?? 32);
    console.log(JSON.stringify(await runLoad(options), null, 2));
  } else {
    process.once('message', async (options) => {
      try {
        process.send({ result: await runLoad(options) }, () => process.exit(0));
      } catch (error) {
        process.send({ error: error.message }, () => process.exit(0));
      }
    });
  }
}
