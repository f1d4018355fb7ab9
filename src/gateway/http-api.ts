import { Pool } from 'undici';
import { classifyRefusal } from '../core/bearer-challenge.js';
import { canonicalJson, sha256Hex } from '../core/canonical.js';
import type { ApiConfig } from '../core/config.js';
import { CustosError } from '../core/errors.js';
import type { Principal } from '../identity/index.js';
import type { CallContext, CallOutcome } from './context.js';
import type { Pipeline } from './pipeline.js';
import type { Json, Upstream, UpstreamCatalog, UpstreamRequestOptions } from './upstream/types.js';

/** Request headers an agent may send through /proxy; everything else (Authorization, cookies) stays behind. */
const forwardedRequestHeaders = new Set([
  'accept',
  'accept-language',
  'content-type',
  'if-match',
  'if-none-match',
  'if-modified-since',
  'idempotency-key',
  'user-agent',
  'traceparent',
  'tracestate',
]);
/** Response headers that describe the connection, not the answer. */
const droppedResponseHeaders = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'set-cookie',
  'upgrade',
]);

export interface ApiRequest {
  readonly method: string;
  /** The path after /proxy/<api>, starting with "/". */
  readonly path: string;
  /** The query string without "?", or "". */
  readonly query: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer | undefined;
}

export interface ApiResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

/**
 * An HTTP API behind /proxy/<api>/<path>, as an upstream of the pipeline: forward sends the
 * agent's request (method, path, query, body and a short list of content headers) to the
 * configured base URL with undici, the vault's credential headers attached last.
 */
export class ApiUpstream implements Upstream {
  readonly transport = 'http';
  readonly #base: URL;
  readonly #pool: Pool;

  constructor(
    readonly name: string,
    private readonly config: ApiConfig,
  ) {
    this.#base = new URL(config.url);
    this.#pool = new Pool(this.#base.origin, { connections: 16 });
  }

  status() {
    return 'ready' as const;
  }

  catalog(): UpstreamCatalog | undefined {
    return undefined;
  }

  async notify(): Promise<void> {}

  async request(
    _method: string,
    params: Json | undefined,
    options: UpstreamRequestOptions = {},
  ): Promise<Json> {
    const p = params as unknown as {
      method: string;
      path: string;
      query: string;
      headers: Record<string, string>;
      body?: string;
    };
    const basePath = this.#base.pathname.replace(/\/$/, '');
    const headers: Record<string, string> = { ...p.headers };
    for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value;
    try {
      const res = await this.#pool.request({
        path: `${basePath}${p.path}${p.query ? `?${p.query}` : ''}`,
        method: p.method as 'GET',
        headers,
        ...(p.body === undefined ? {} : { body: Buffer.from(p.body, 'base64') }),
        headersTimeout: this.config.timeout * 1000,
        bodyTimeout: this.config.timeout * 1000,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      const body = Buffer.from(await res.body.arrayBuffer());
      const outHeaders: Record<string, string> = {};
      for (const [name, value] of Object.entries(res.headers)) {
        if (value === undefined || droppedResponseHeaders.has(name)) continue;
        outHeaders[name] = Array.isArray(value) ? value.join(', ') : value;
      }
      if (options.headers !== undefined && (res.statusCode === 401 || res.statusCode === 403)) {
        refuseInjected(this.name, res.statusCode, outHeaders['www-authenticate']);
      }
      return { status: res.statusCode, headers: outHeaders, body: body.toString('base64') };
    } catch (error) {
      if (error instanceof CustosError) throw error;
      // The message names the API only: undici errors may carry the request (and its headers).
      throw new CustosError('upstream_unavailable', `the API ${this.name} could not be reached`, {
        detail: { reason: error instanceof Error ? error.name : 'error' },
      });
    }
  }

  async close(): Promise<void> {
    if (this.#pool.closed || this.#pool.destroyed) return;
    await this.#pool.close();
  }
}

/**
 * The API refused a credential Custos injected (the agent never held it). Its Bearer challenge
 * (RFC 6750 section 3) concerns Custos's credential, not the agent's token, so it is not passed
 * on as is: missing scope and a rejected token become two distinct errors the agent can act on.
 */
function refuseInjected(api: string, status: number, challenge: string | undefined): void {
  const refusal = classifyRefusal(status, challenge);
  if (refusal.kind === 'insufficient_scope') {
    throw new CustosError(
      'upstream_insufficient_scope',
      `the API ${api} refused the call: Custos's credential lacks the scope it needs${refusal.scope ? ` (${refusal.scope})` : ''}; ask its owner to grant it and reconnect`,
      { detail: { api, ...(refusal.scope ? { scope: refusal.scope } : {}) } },
    );
  }
  if (refusal.kind === 'invalid_token') {
    throw new CustosError(
      'upstream_token_rejected',
      `the API ${api} rejected Custos's credential as invalid or expired; the next call uses a fresh one`,
      { detail: { api } },
    );
  }
}

/**
 * Run one /proxy call through the pipeline: the resource is "<METHOD> <path>" of the API,
 * Cedar's context carries method and path. Returns the upstream's answer, or the outcome
 * the protocol layer turns into an error.
 */
export async function runApiCall(
  pipeline: Pipeline,
  principal: Principal,
  upstream: ApiUpstream,
  request: ApiRequest,
  now: number,
): Promise<{ response?: ApiResponse; outcome: CallOutcome }> {
  const method = request.method.toUpperCase();
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value !== undefined && forwardedRequestHeaders.has(name.toLowerCase())) {
      headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
    }
  }
  const args = { method, path: request.path };
  const hashed = canonicalJson({
    ...args,
    query: request.query,
    body: request.body === undefined ? null : sha256Hex(request.body),
  });
  const ctx: CallContext = {
    principal,
    method: 'http/request',
    scope: upstream.name,
    target: { kind: 'resource', name: `${method} ${request.path}` },
    params: {
      method,
      path: request.path,
      query: request.query,
      headers,
      ...(request.body === undefined || request.body.length === 0
        ? {}
        : { body: request.body.toString('base64') }),
    },
    arguments: args,
    argsHash: sha256Hex(hashed),
    argsBytes: request.body?.length ?? 0,
    reasoning: undefined,
    traceId: null,
    time: now,
    started: process.hrtime.bigint(),
    signal: undefined,
    onProgress: undefined,
    onNotification: undefined,
    upstream,
    upstreamName: `${method} ${request.path}`,
  };
  const outcome = await pipeline.run(ctx);
  if (outcome.kind !== 'executed') return { outcome };
  const r = outcome.result as { status: number; headers: Record<string, string>; body: string };
  return { outcome, response: { status: r.status, headers: r.headers, body: Buffer.from(r.body, 'base64') } };
}
