// The chaos benchmark's agent: an MCP SDK client that works normally, then runs away.
// Used in-process by test/chaos.test.ts and as its own process by bench/chaos.js:
//
//   node bench/chaos-agent.js URL TOKEN RATE NORMAL_SECONDS MAX_SECONDS
//     prints {"onset": ms} when it starts running away, stops on a "stop" line on stdin
//     (or after MAX_SECONDS), then prints {"sent", "outcomes", "seconds"} and exits.
//
// Times are absolute milliseconds with sub-millisecond precision (performance.timeOrigin +
// performance.now()), so they compare across processes on one machine.
import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

export const now = () => performance.timeOrigin + performance.now();

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
export async function callOnce(client, text) {
  try {
    const result = await client.callTool({ name: 'echo', arguments: { text } });
    return result.isError ? 'refused' : 'ok';
  } catch {
    return 'error';
  }
}

/**
 * Send calls at `rate` per second for `seconds` or until `stopped()`, each with different
 * arguments, never more than `maxInFlight` outstanding.
 */
export async function paced(client, { rate, seconds, label, stopped, maxInFlight = 256 }) {
  const start = now();
  const outcomes = { ok: 0, refused: 0, error: 0 };
  const inFlight = new Set();
  let sent = 0;
  while (now() < start + seconds * 1000 && !stopped?.()) {
    const due = Math.floor(((now() - start) / 1000) * rate);
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
  return { sent, outcomes, seconds: (now() - start) / 1000 };
}

/** Normal work (about 4 calls a second, one at a time), then the runaway. */
export async function misbehave(client, { rate, normalSeconds, maxSeconds, onOnset, stopped }) {
  const normalStart = now();
  let normal = 0;
  while (now() - normalStart < normalSeconds * 1000) {
    await callOnce(client, `normal-${normal++}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  onOnset(now());
  const run = await paced(client, { rate, seconds: maxSeconds, label: 'runaway', stopped });
  return { normal, ...run };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [url, token, rate, normalSeconds, maxSeconds] = process.argv.slice(2);
  // The SDK client listens on one abort signal per outstanding request; hundreds are expected here.
  setMaxListeners(0);
  let stop = false;
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => {
    if (String(d).includes('stop')) stop = true;
  });
  const client = await connectAgent(url, token);
  const result = await misbehave(client, {
    rate: Number(rate),
    normalSeconds: Number(normalSeconds),
    maxSeconds: Number(maxSeconds),
    onOnset: (onset) => console.log(JSON.stringify({ onset })),
    stopped: () => stop,
  });
  console.log(JSON.stringify(result));
  await client.close().catch(() => {});
  process.exit(0);
}
