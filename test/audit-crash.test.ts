import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { openStore } from '../src/store/index.js';
import { bin, type CliRun, ensureBuilt, root, runCli } from './support/cli.js';

const clients = 4;
const inFlightPerClient = 4;

const children = new Set<ChildProcess>();

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => done(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Spawn a node process and resolve once `ready` matches its stdout so far. */
function startProcess(
  args: string[],
  ready: RegExp,
): Promise<{ child: ChildProcess; output: () => string; match: RegExpMatchArray }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, args, {
      cwd: root,
      env: { ...process.env, CUSTOS_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    child.on('exit', () => children.delete(child));
    let output = '';
    const timer = setTimeout(() => fail(new Error(`not ready after 30 s:\n${output}`)), 30_000);
    const onData = (chunk: Buffer) => {
      output += chunk;
      const match = output.match(ready);
      if (match !== null) {
        clearTimeout(timer);
        done({ child, output: () => output, match });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk;
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`exited with ${code} before ready:\n${output}`));
    });
  });
}

/** The one JSON-RPC response in a JSON or SSE body. */
function responseOf(contentType: string | undefined, text: string): { id?: number; result?: unknown } {
  if (contentType?.includes('text/event-stream')) {
    for (const block of text.split('\n\n')) {
      const data = block
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trim())
        .join('\n');
      if (data === '') continue;
      const message = JSON.parse(data) as { id?: number; result?: unknown };
      if (message.id !== undefined) return message;
    }
    throw new Error(`no response in ${text.slice(0, 200)}`);
  }
  return JSON.parse(text) as { id?: number; result?: unknown };
}

/** A Streamable HTTP MCP session over undici (as bench/load.js drives Custos). */
class Session {
  readonly pool: Pool;
  readonly headers: Record<string, string>;
  nextId = 1;

  constructor(
    readonly url: URL,
    token: string,
  ) {
    this.pool = new Pool(url.origin, { connections: inFlightPerClient });
    this.headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
    };
  }

  async post(message: unknown) {
    const res = await this.pool.request({
      path: this.url.pathname,
      method: 'POST',
      headers: this.headers,
      body: JSON.stringify(message),
    });
    const text = await res.body.text();
    const contentType = res.headers['content-type'];
    return {
      status: res.statusCode,
      headers: res.headers,
      contentType: contentType as string | undefined,
      text,
    };
  }

  async initialize(): Promise<void> {
    const init = await this.post({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'crash', version: '1' },
      },
    });
    if (init.status !== 200) throw new Error(`initialize: HTTP ${init.status} ${init.text}`);
    const session = init.headers['mcp-session-id'];
    if (typeof session === 'string') this.headers['mcp-session-id'] = session;
    this.headers['mcp-protocol-version'] = '2025-11-25';
    await this.post({ jsonrpc: '2.0', method: 'notifications/initialized' });
  }
}

interface Answered {
  client: number;
  id: number;
  text: string;
  result: unknown;
}

describe('audit crash safety (custos start as a child process, killed with SIGKILL)', () => {
  let home: string;
  let dataDir: string;
  let config: string;
  let port: number;

  beforeAll(() => {
    ensureBuilt();
    home = mkdtempSync(join(tmpdir(), 'custos-crash-'));
    dataDir = join(home, 'data');
    mkdirSync(join(home, 'policies'));
    writeFileSync(join(home, 'policies', 'all.cedar'), 'permit (principal, action, resource);\n');
  }, 120_000);
  afterAll(() => {
    for (const child of children) child.kill('SIGKILL');
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it('loses no answered call, and the log verifies live and offline after a restart', async () => {
    const echo = await startProcess([join(root, 'bench', 'echo-server.js'), '0'], /\{"url":"([^"]+)"\}/);
    port = await freePort();
    config = join(home, 'custos.yaml');
    writeFileSync(
      config,
      stringify({
        listen: { host: '127.0.0.1', port },
        storage: { url: `sqlite:${join(dataDir, 'custos.db')}` },
        servers: { echo: { url: echo.match[1] } },
        policies: './policies',
        agents: [{ name: 'crash-bot', owner: 'ops@example.com', purpose: 'crash safety test' }],
        // Sustained load from one agent is what the default detectors quarantine; here it is the point.
        detect: { agents: { 'crash-bot': { anomaly: { action: 'alert' }, ceiling: { action: 'alert' } } } },
      }),
    );
    const startArgs = [bin, 'start', '--config', config, '--data', dataDir];
    const first = await startProcess(startArgs, /client_id (\S+) client_secret (\S+)[\s\S]*listening on/);
    const [, clientId, clientSecret] = /client_id (\S+) client_secret (\S+)/.exec(first.output())!;
    const origin = `http://127.0.0.1:${port}`;
    const tokenResponse = await fetch(`${origin}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: clientId!,
        client_secret: clientSecret!,
      }),
    });
    const { access_token: token } = (await tokenResponse.json()) as { access_token: string };

    const sessions = Array.from({ length: clients }, () => new Session(new URL(`${origin}/mcp/echo`), token));
    for (const s of sessions) await s.initialize();

    // Sustained traffic: every client keeps several calls in flight until the kill.
    const answered: Answered[] = [];
    let stopped = false;
    const worker = async (client: number, lane: number) => {
      const s = sessions[client]!;
      for (let n = 0; !stopped; n++) {
        const id = s.nextId++;
        const text = `c${client}-l${lane}-${n}`;
        try {
          const reply = await s.post({
            jsonrpc: '2.0',
            id,
            method: 'tools/call',
            params: { name: 'echo', arguments: { text } },
          });
          if (reply.status !== 200) continue;
          const message = responseOf(reply.contentType, reply.text);
          if (message.id === id && message.result !== undefined)
            answered.push({ client, id, text, result: message.result });
        } catch {
          // The connection died with the process: this call got no answer.
          return;
        }
      }
    };
    const workers = sessions.flatMap((_, client) =>
      Array.from({ length: inFlightPerClient }, (_, lane) => worker(client, lane)),
    );
    const deadline = Date.now() + 20_000;
    while (answered.length < 1500 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    first.child.kill('SIGKILL');
    stopped = true;
    await Promise.all(workers);
    await Promise.all(sessions.map((s) => s.pool.destroy()));
    expect(answered.length).toBeGreaterThan(100);
    for (const a of answered) expect(a.result).toMatchObject({ content: [{ type: 'text', text: a.text }] });

    // Restart on the same data directory; the log resumes and signs a checkpoint over the tail.
    const second = await startProcess(startArgs, /listening on/);
    try {
      const store = await openStore(`sqlite:${join(dataDir, 'custos.db')}`);
      let total = 0;
      let events: { seq: number; outcome: string; target: string | null; arguments: string | null }[];
      try {
        events = await store.db
          .selectFrom('audit_events')
          .leftJoin('audit_content', 'audit_content.event_id', 'audit_events.id')
          .select([
            'audit_events.seq',
            'audit_events.outcome',
            'audit_events.target',
            'audit_content.arguments',
          ])
          .where('audit_events.method', '=', 'tools/call')
          .orderBy('audit_events.seq')
          .execute();
        const leaves = await store.db
          .selectFrom('audit_events')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('leaf_hash', 'is not', null)
          .executeTakeFirstOrThrow();
        const all = await store.db
          .selectFrom('audit_events')
          .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.max('seq').as('max')])
          .executeTakeFirstOrThrow();
        // No gap and no event without its leaf: seqs are 1..n and every one has a leaf.
        expect(Number(all.max)).toBe(Number(all.n));
        expect(Number(leaves.n)).toBe(Number(all.n));
        total = Number(all.n);
      } finally {
        await store.close();
      }
      const recorded = new Set(
        events
          .filter((e) => e.outcome === 'executed' && e.target === 'echo' && e.arguments !== null)
          .map((e) => (JSON.parse(e.arguments!) as { text: string }).text),
      );
      const missing = answered.filter((a) => !recorded.has(a.text));
      expect(missing.map((a) => `client ${a.client} id ${a.id} (${a.text})`)).toEqual([]);

      // The restarted log signs a checkpoint over everything within its interval (1 s).
      let live: CliRun | undefined;
      for (let attempt = 0; attempt < 40; attempt++) {
        live = await runCli(['--config', config, '--data', dataDir, 'audit', 'verify', '--live', '--json'], {
          cwd: tmpdir(),
        });
        const parsed = JSON.parse(live.stdout || '{}') as { ok?: boolean; events?: number };
        if (live.code !== 0 || parsed.events === total) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(live!.code, live!.stdout + live!.stderr).toBe(0);
      expect(JSON.parse(live!.stdout)).toMatchObject({ ok: true });
      expect((JSON.parse(live!.stdout) as { events: number }).events).toBe(total);

      const out = join(home, 'bundle');
      const exported = await runCli(
        ['--config', config, '--data', dataDir, 'audit', 'export', '--out', out, '--json'],
        { cwd: tmpdir() },
      );
      expect(exported.code, exported.stderr).toBe(0);
      const summary = JSON.parse(exported.stdout) as { events: number };
      expect(summary.events).toBeGreaterThanOrEqual(answered.length);
      const verified = await runCli(['audit', 'verify', out, '--json'], { cwd: tmpdir() });
      expect(verified.code, verified.stdout + verified.stderr).toBe(0);
      expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, events: summary.events });
    } finally {
      second.child.kill('SIGTERM');
      echo.child.kill('SIGTERM');
    }
  }, 120_000);
});
