import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Custos, startCustos } from '../src/app.js';
import { loadConfig } from '../src/core/config.js';
import { bin, ensureBuilt } from './support/cli.js';
import { startTicketsApi, type TicketsApi } from './support/tickets-api.js';

/**
 * The leak test: a sentinel secret goes into the vault (through the CLI, from stdin), then
 * allowed, denied, failing and unreachable calls, audit exports, an evidence pack, CLI and
 * admin API reads; afterwards every file Custos wrote (database with WAL and SHM, data
 * directory, export directories, the OCSF file), every log line and every response is
 * scanned for the sentinel in plaintext, base64, base64url and hex.
 */
const sentinel = `SENTINEL-${randomBytes(12).toString('hex')}`;
const forms = [
  sentinel,
  Buffer.from(sentinel).toString('base64'),
  Buffer.from(sentinel).toString('base64url'),
  Buffer.from(sentinel).toString('hex'),
  // Inside a header value as sent upstream.
  `Bearer ${sentinel}`,
];

function run(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [bin, ...args],
      { env: { ...process.env, CUSTOS_MASTER_KEY: '' } },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

describe('vault leak test: the sentinel secret appears nowhere in plaintext', () => {
  let home = '';
  let configFile = '';
  let dataDir = '';
  let api: TicketsApi;
  let custos: Custos;
  const logs: string[] = [];
  const responses: string[] = [];
  let token = '';

  beforeAll(async () => {
    ensureBuilt();
    home = mkdtempSync(join(tmpdir(), 'custos-leak-'));
    dataDir = join(home, 'data');
    mkdirSync(join(home, 'policies'));
    mkdirSync(join(home, 'exports'));
    writeFileSync(
      join(home, 'policies', 'tickets.cedar'),
      `@id("read-tickets")
permit(principal, action == Action::"http_request", resource in Server::"tickets")
when { context.arguments has method && context.arguments.method == "GET" };
permit(principal, action == Action::"http_request", resource in Server::"down");
`,
    );
    api = await startTicketsApi([`Bearer ${sentinel}`]);
    configFile = join(home, 'custos.yaml');
    writeFileSync(
      configFile,
      [
        'listen: { host: 127.0.0.1, port: 0 }',
        `storage: { url: "sqlite:${join(dataDir, 'custos.db')}" }`,
        'policies: ./policies',
        'apis:',
        `  tickets: { url: "${api.url}", credential: leak-key }`,
        // Nothing listens on port 9: the unreachable upstream path.
        '  down: { url: "http://127.0.0.1:9/api", credential: leak-key, timeout: 2 }',
        'agents:',
        '  - { name: leaky, owner: owner@example.com, purpose: leak test agent }',
        'exports:',
        '  ocsf: { file: ./exports/ocsf.jsonl, includeContent: true }',
        'audit: { checkpointIntervalMs: 200 }',
      ].join('\n'),
    );
    // The secret arrives through the CLI on stdin, before the server starts.
    const set = await run(
      ['--config', configFile, '--data', dataDir, 'secret', 'set', 'leak-key', '--json'],
      `${sentinel}\n`,
    );
    expect(set.code, set.stderr).toBe(0);
    responses.push(set.stdout, set.stderr);
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logs.push(String(chunk));
        done();
      },
    });
    custos = await startCustos(loadConfig({ file: configFile, dataDir, env: {} }), {
      logger: pino({ level: 'debug' }, sink),
    });
    const agent = custos.createdAgents[0];
    const res = await fetch(`${custos.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: agent?.clientId ?? '',
        client_secret: agent?.clientSecret ?? '',
      }),
    });
    token = ((await res.json()) as { access_token: string }).access_token;
  }, 180_000);

  afterAll(async () => {
    await custos?.close();
    await api?.close();
    rmSync(home, { recursive: true, force: true });
  });

  async function record(res: Response): Promise<number> {
    responses.push(JSON.stringify([...res.headers.entries()]), await res.text());
    return res.status;
  }

  it('drives allowed, denied, failing and unreachable calls, exports and reads, then finds no sentinel anywhere', async () => {
    const proxy = (path: string, method = 'GET', extra: Record<string, string> = {}) =>
      fetch(`${custos.url}/proxy${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...extra },
        ...(method === 'POST' ? { body: '{"a":1}' } : {}),
      });
    expect(await record(await proxy('/tickets/tickets/1'))).toBe(200);
    expect(await record(await proxy('/tickets/tickets', 'POST'))).toBe(403);
    expect(await record(await proxy('/tickets/tickets/500'))).toBe(500);
    expect(await record(await proxy('/down/anything'))).toBe(502);
    expect(await record(await proxy('/nowhere/x'))).toBe(404);
    expect(
      await record(
        await fetch(`${custos.url}/proxy/tickets/x`, { headers: { authorization: 'Bearer not-a-token' } }),
      ),
    ).toBe(401);
    // The upstream did receive the secret: injection really happened.
    expect(api.seen.some((h) => h.authorization === `Bearer ${sentinel}`)).toBe(true);

    // Rotation and deletion through the CLI, with the server running.
    const rotated = await run(
      ['--config', configFile, '--data', dataDir, 'secret', 'rotate', 'leak-key', '--json'],
      `${sentinel}\n`,
    );
    expect(rotated.code, rotated.stderr).toBe(0);
    responses.push(rotated.stdout, rotated.stderr);
    expect(await record(await proxy('/tickets/tickets/2'))).toBe(200);
    const argv = await run(['--config', configFile, '--data', dataDir, 'secret', 'set', 'other', sentinel]);
    expect(argv.code).toBe(2);
    responses.push(argv.stdout, argv.stderr);

    const admin = { authorization: `Bearer ${readFileSync(join(dataDir, 'admin-token'), 'utf8').trim()}` };
    for (const path of [
      '/api/v1/vault/secrets',
      '/api/v1/vault/bindings',
      '/api/v1/audit/events?limit=100',
      '/api/v1/audit/exports',
    ]) {
      expect(await record(await fetch(`${custos.url}${path}`, { headers: admin }))).toBe(200);
    }
    const events = (JSON.parse(responses.at(-3) ?? '{}') as { events?: Array<{ id: string }> }).events ?? [];
    for (const e of events.slice(0, 10))
      await record(await fetch(`${custos.url}/api/v1/audit/events/${e.id}`, { headers: admin }));

    for (const args of [
      ['secret', 'list', '--json'],
      ['secret', 'bindings', '--json'],
      ['audit', 'tail', '--json'],
      ['audit', 'export', '--out', join(home, 'export-bundle')],
      ['evidence', '--framework', 'soc2', '--out', join(home, 'evidence-pack')],
    ]) {
      const out = await run(['--config', configFile, '--data', dataDir, ...args]);
      responses.push(out.stdout, out.stderr);
      expect(out.code, `${args.join(' ')}: ${out.stderr}`).toBe(0);
    }
    const rotatedMaster = await run([
      '--config',
      configFile,
      '--data',
      dataDir,
      'secret',
      'rotate-master-key',
      '--json',
    ]);
    expect(rotatedMaster.code, rotatedMaster.stderr).toBe(0);
    responses.push(rotatedMaster.stdout);
    // The running server picks up the new master key file on the next call.
    expect(await record(await proxy('/tickets/tickets/3'))).toBe(200);

    await custos.close();
    const files = filesUnder(home).filter((f) => !f.startsWith(join(home, 'policies')) && f !== configFile);
    const names = files.map((f) => f.slice(home.length));
    expect(names).toEqual(
      expect.arrayContaining(['/data/custos.db', '/exports/ocsf.jsonl', '/data/master-key']),
    );
    expect(names.some((n) => n.startsWith('/export-bundle/'))).toBe(true);
    expect(names.some((n) => n.startsWith('/evidence-pack/'))).toBe(true);
    const found: string[] = [];
    for (const file of files) {
      const bytes = readFileSync(file);
      for (const form of forms)
        if (bytes.includes(Buffer.from(form)))
          found.push(
            `${file.slice(home.length)} holds ${form === sentinel ? 'the sentinel' : 'an encoding of it'}`,
          );
    }
    for (const [i, line] of logs.entries())
      for (const form of forms) if (line.includes(form)) found.push(`log line ${i}`);
    for (const [i, text] of responses.entries())
      for (const form of forms) if (text.includes(form)) found.push(`response ${i}`);
    expect(logs.length).toBeGreaterThan(0);
    expect(responses.join('').length).toBeGreaterThan(1000);
    expect(statSync(join(dataDir, 'custos.db')).size).toBeGreaterThan(0);
    expect(found).toEqual([]);
  }, 180_000);
});
