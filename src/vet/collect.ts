import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import {
  Client,
  ProtocolError,
  ProtocolErrorCode,
  StreamableHTTPClientTransport,
} from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { z } from 'zod';
import type { ServerConfig } from '../core/config.js';
import { isStdioServer } from '../core/config.js';
import { CustosError } from '../core/errors.js';
import { definitionHash, sections } from './pins.js';
import { ruleById } from './rules.js';
import type { Finding, Json, ServerSnapshot } from './types.js';

/** Where a server to vet comes from. */
export type Source =
  | { kind: 'config'; name: string; server: ServerConfig; baseDir: string }
  | { kind: 'url'; name: string; url: string; headers?: Record<string, string> }
  | { kind: 'command'; name: string; command: string; args: string[]; cwd?: string }
  | { kind: 'static'; name: string; file: string };

export interface Collected {
  snapshot: ServerSnapshot;
  /** Findings from comparing listings (twice, and under another client name). */
  variance: Finding[];
  /** How the snapshot was obtained, for the report. */
  method: string;
}

const anyResult = z.looseObject({});
const maxPages = 200;
/** Client names for the variance probe: ours, then one a server might treat as a real host. */
export const probeClients = [
  { name: 'custos-vet', version: '1.0.0' },
  { name: 'claude-code', version: '2.0.0' },
] as const;

async function listAll(client: Client, method: string, key: string, timeoutMs: number): Promise<Json[]> {
  const items: Json[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < maxPages; page++) {
    const result = await client.request(
      cursor === undefined ? { method } : { method, params: { cursor } },
      anyResult,
      { timeout: timeoutMs },
    );
    const list = result[key];
    if (!Array.isArray(list)) throw new CustosError('upstream_error', `${method} answered without "${key}"`);
    for (const item of list) if (typeof item === 'object' && item !== null) items.push(item as Json);
    if (typeof result.nextCursor !== 'string') return items;
    cursor = result.nextCursor;
  }
  throw new CustosError('upstream_error', `${method} returned more than ${maxPages} pages`);
}

async function optionalList(client: Client, method: string, key: string, timeoutMs: number): Promise<Json[]> {
  try {
    return await listAll(client, method, key, timeoutMs);
  } catch (error) {
    if (ProtocolError.isInstance(error) && error.code === ProtocolErrorCode.MethodNotFound) return [];
    throw error;
  }
}

/** List everything a connected server offers. */
async function listSnapshot(client: Client, name: string, timeoutMs: number): Promise<ServerSnapshot> {
  const caps = client.getServerCapabilities() ?? {};
  const instructions = client.getInstructions();
  return {
    name,
    serverInfo: { ...(client.getServerVersion() ?? {}) },
    ...(instructions === undefined ? {} : { instructions }),
    tools: caps.tools ? await listAll(client, 'tools/list', 'tools', timeoutMs) : [],
    prompts: caps.prompts ? await listAll(client, 'prompts/list', 'prompts', timeoutMs) : [],
    resources: caps.resources ? await listAll(client, 'resources/list', 'resources', timeoutMs) : [],
    resourceTemplates: caps.resources
      ? await optionalList(client, 'resources/templates/list', 'resourceTemplates', timeoutMs)
      : [],
  };
}

function transportFor(source: Exclude<Source, { kind: 'static' }>) {
  if (source.kind === 'url') {
    return new StreamableHTTPClientTransport(new URL(source.url), {
      requestInit: { headers: { ...(source.headers ?? {}) } },
    });
  }
  if (source.kind === 'command') {
    return new StdioClientTransport({
      command: source.command,
      args: source.args,
      ...(source.cwd ? { cwd: source.cwd } : {}),
      stderr: 'ignore',
    });
  }
  const server = source.server;
  if (isStdioServer(server)) {
    const cwd =
      server.cwd === undefined
        ? source.baseDir
        : isAbsolute(server.cwd)
          ? server.cwd
          : resolve(source.baseDir, server.cwd);
    return new StdioClientTransport({
      command: server.command,
      args: [...server.args],
      env: { ...server.env },
      cwd,
      stderr: 'ignore',
    });
  }
  return new StreamableHTTPClientTransport(new URL(server.url), {
    requestInit: { headers: { ...server.headers } },
  });
}

/** Open one session under a client name and list the server `times` times. */
async function session(
  source: Exclude<Source, { kind: 'static' }>,
  clientInfo: { name: string; version: string },
  times: number,
  timeoutMs: number,
): Promise<ServerSnapshot[]> {
  const client = new Client(clientInfo, { capabilities: {} });
  const transport = transportFor(source);
  try {
    await client.connect(transport, { timeout: timeoutMs });
    const out: ServerSnapshot[] = [];
    for (let i = 0; i < times; i++) out.push(await listSnapshot(client, source.name, timeoutMs));
    return out;
  } catch (error) {
    if (error instanceof CustosError) throw error;
    throw new CustosError(
      'upstream_unavailable',
      `could not list server "${source.name}": ${(error as Error).message}`,
    );
  } finally {
    await client.close().catch(() => {});
  }
}

/** Keys of every definition with its hash, to compare listings. */
function fingerprint(s: ServerSnapshot): Map<string, { hash: string; definition: Json }> {
  const out = new Map<string, { hash: string; definition: Json }>();
  if (s.instructions !== undefined)
    out.set('instructions', {
      hash: definitionHash({ instructions: s.instructions }, 'instructions'),
      definition: {},
    });
  for (const { section, kind, key } of sections) {
    for (const d of s[section])
      out.set(`${kind}:${key(d)}`, { hash: definitionHash(d, kind), definition: d });
  }
  return out;
}

/** Findings for every definition that differs between two listings. */
export function compareListings(base: ServerSnapshot, other: ServerSnapshot, how: string): Finding[] {
  const a = fingerprint(base);
  const b = fingerprint(other);
  const rule = ruleById.get('variance.listing');
  const findings: Finding[] = [];
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(key);
    const y = b.get(key);
    if (x?.hash === y?.hash) continue;
    const [kind, ...rest] = key.split(':');
    const name = rest.join(':') || base.name;
    const change = x === undefined ? 'appeared' : y === undefined ? 'disappeared' : 'changed';
    findings.push({
      rule: 'variance.listing',
      severity: 'warn',
      message: `${kind} "${name}" ${change} ${how}`,
      owasp: rule?.owasp ?? [],
      location: { server: base.name, kind: kind as Finding['location']['kind'], name, field: 'definition' },
      evidence: { text: '', start: 0, end: 0 },
      definitionHash: x?.hash ?? y?.hash ?? '',
    });
  }
  return findings;
}

/** A saved tools/list (or a full snapshot) read from a file. */
export function readStatic(name: string, file: string): ServerSnapshot {
  let parsed: Json;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as Json;
  } catch (error) {
    throw new CustosError('usage', `cannot read ${file} as JSON: ${(error as Error).message}`);
  }
  // Accept a bare tools/list result, a JSON-RPC response around one, or a snapshot.
  const body = (typeof parsed.result === 'object' && parsed.result !== null ? parsed.result : parsed) as Json;
  const list = (key: string): Json[] => (Array.isArray(body[key]) ? (body[key] as Json[]) : []);
  if (!Array.isArray(body.tools) && !Array.isArray(body.prompts) && !Array.isArray(body.resources)) {
    throw new CustosError('usage', `${file} holds no "tools", "prompts" or "resources" list`);
  }
  const serverInfo = (
    typeof body.serverInfo === 'object' && body.serverInfo !== null ? body.serverInfo : {}
  ) as Json;
  return {
    name: typeof body.name === 'string' ? body.name : name,
    serverInfo,
    ...(typeof body.instructions === 'string' ? { instructions: body.instructions } : {}),
    tools: list('tools'),
    prompts: list('prompts'),
    resources: list('resources'),
    resourceTemplates: list('resourceTemplates'),
  };
}

/**
 * Collect a server's surface: list it twice in one session and once more under another
 * client name, and report any difference. A static file is read as it is.
 */
export async function collect(
  source: Source,
  options: { timeoutMs?: number; probe?: boolean } = {},
): Promise<Collected> {
  if (source.kind === 'static') {
    return {
      snapshot: readStatic(source.name, source.file),
      variance: [],
      method: `static file ${source.file}`,
    };
  }
  const timeoutMs = options.timeoutMs ?? 30_000;
  const probe = options.probe ?? true;
  const [first, second] = await session(source, probeClients[0], probe ? 2 : 1, timeoutMs);
  if (first === undefined) throw new CustosError('internal', 'no listing');
  const variance: Finding[] = [];
  if (second !== undefined) variance.push(...compareListings(first, second, 'between two listings'));
  if (probe) {
    const [other] = await session(source, probeClients[1], 1, timeoutMs);
    if (other !== undefined)
      variance.push(...compareListings(first, other, `for client name "${probeClients[1].name}"`));
  }
  const method =
    source.kind === 'url'
      ? `Streamable HTTP ${source.url}`
      : source.kind === 'command'
        ? `stdio command ${source.command}`
        : `configured server "${source.name}"`;
  return { snapshot: first, variance, method };
}
