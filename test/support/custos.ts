import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { type Custos, startCustos } from '../../src/app.js';
import type { Clock } from '../../src/core/clock.js';
import { buildConfig } from '../../src/core/config.js';
import { adminToken } from '../../src/core/runtime-file.js';

/** Entry scripts of the real MCP servers the tests run behind Custos (spawned over stdio). */
export const everythingEntry = resolve('node_modules/@modelcontextprotocol/server-everything/dist/index.js');
export const filesystemEntry = resolve('node_modules/@modelcontextprotocol/server-filesystem/dist/index.js');
/** A small SDK server that echoes each tools/call's params._meta back (test/support/meta-echo-server.mjs). */
export const metaEchoEntry = resolve('test/support/meta-echo-server.mjs');

export const everythingServer = { command: process.execPath, args: [everythingEntry, 'stdio'] };
export function filesystemServer(root: string) {
  return { command: process.execPath, args: [filesystemEntry, root] };
}

export interface TestAgent {
  name: string;
  owner?: string;
  purpose?: string;
}

export interface TestCustosOptions {
  /** The `servers` section of custos.yaml. Use the placeholder SANDBOX in args for the sandbox folder. */
  servers: Record<string, unknown>;
  /** Policy files by name (e.g. {"reader.cedar": "permit ..."}). SANDBOX is replaced with the sandbox path. */
  policies: Record<string, string>;
  agents?: TestAgent[];
  /** Extra configuration keys (limits, tokens, audit). */
  extra?: Record<string, unknown>;
  clock?: Clock;
}

export interface TestCustos {
  readonly custos: Custos;
  readonly url: string;
  readonly dataDir: string;
  /** The SQLite file the store uses. */
  readonly dbFile: string;
  readonly policiesDir: string;
  /** A folder the filesystem server may serve (holds hello.txt). */
  readonly sandbox: string;
  readonly adminToken: string;
  /** Client credentials of the configured agents, by name. */
  readonly agents: ReadonlyMap<string, { clientId: string; clientSecret: string }>;
  /** Log lines Custos wrote (pino JSON objects). */
  readonly logs: Array<Record<string, unknown>>;
  /** A fresh access token for a configured agent (OAuth client credentials at /oauth/token). */
  token(agent: string): Promise<string>;
  /** An RFC 8693 task token exchanged from a subject token. */
  taskToken(subject: string, form: Record<string, string>): Promise<string>;
  /** Stop Custos and start it again on the same data directory, database and port. */
  restart(): Promise<void>;
  /** GET an admin API path (/api/v1...) with the admin token. */
  admin<T = unknown>(path: string, init?: { method?: string; body?: unknown }): Promise<T>;
  close(): Promise<void>;
}

const silentSink = (logs: Array<Record<string, unknown>>) =>
  new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) {
        if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });

/**
 * Start Custos in this process on port 0 with a temp data directory, SQLite file and
 * policy directory, real upstream servers, and the given agents.
 */
export async function startTestCustos(options: TestCustosOptions): Promise<TestCustos> {
  const home = mkdtempSync(join(tmpdir(), 'custos-e2e-'));
  const dataDir = join(home, 'data');
  const policiesDir = join(home, 'policies');
  const sandbox = join(home, 'sandbox');
  mkdirSync(policiesDir, { recursive: true });
  mkdirSync(sandbox, { recursive: true });
  writeFileSync(join(sandbox, 'hello.txt'), 'hello from the sandbox\n');
  for (const [file, text] of Object.entries(options.policies)) {
    writeFileSync(join(policiesDir, file), text.replaceAll('SANDBOX', sandbox));
  }
  const dbFile = join(dataDir, 'custos.db');
  const servers = JSON.parse(JSON.stringify(options.servers).replaceAll('SANDBOX', sandbox));
  const agents = (options.agents ?? []).map((a) => ({
    name: a.name,
    owner: a.owner ?? `${a.name}-owner@example.com`,
    purpose: a.purpose ?? `end-to-end test agent ${a.name}`,
  }));
  const raw = {
    listen: { host: '127.0.0.1', port: 0 },
    storage: { url: `sqlite:${dbFile}` },
    servers,
    policies: policiesDir,
    agents,
    ...options.extra,
  };
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, silentSink(logs));
  const start = (port?: number) =>
    startCustos(buildConfig(raw, home, { dataDir, env: {}, ...(port === undefined ? {} : { port }) }), {
      logger,
      ...(options.clock ? { clock: options.clock } : {}),
    });
  let custos = await start();
  const credentials = new Map(
    custos.createdAgents.map((a) => [a.name, { clientId: a.clientId, clientSecret: a.clientSecret }]),
  );
  const admin = adminToken(dataDir);

  async function postToken(form: Record<string, string>): Promise<string> {
    const res = await fetch(`${custos.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form),
    });
    const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
    if (res.status !== 200 || body.access_token === undefined) {
      throw new Error(`token request failed: ${res.status} ${body.error}: ${body.error_description}`);
    }
    return body.access_token;
  }

  return {
    get custos() {
      return custos;
    },
    url: custos.url,
    dataDir,
    dbFile,
    policiesDir,
    sandbox,
    adminToken: admin,
    agents: credentials,
    logs,
    token(agent) {
      const c = credentials.get(agent);
      if (c === undefined) throw new Error(`no agent ${agent}`);
      return postToken({
        grant_type: 'client_credentials',
        client_id: c.clientId,
        client_secret: c.clientSecret,
      });
    },
    taskToken(subject, form) {
      return postToken({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: subject,
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        ...form,
      });
    },
    async admin<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
      const res = await fetch(`${custos.url}${path}`, {
        method: init.method ?? 'GET',
        headers: {
          authorization: `Bearer ${admin}`,
          ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      });
      const body = (await res.json()) as T;
      if (res.status >= 400) throw new Error(`admin ${path}: ${res.status} ${JSON.stringify(body)}`);
      return body;
    },
    async restart() {
      await custos.close();
      // The same port, so the tokens' audience (the MCP URL) still fits.
      custos = await start(Number(new URL(custos.url).port));
    },
    async close() {
      await custos.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** Poll until the condition holds; fail naming what was awaited once the deadline passes. */
export async function eventually<T>(
  condition: () => T | undefined | false | Promise<T | undefined | false>,
  description: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${description}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
