import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CustosError, isCustosError } from '../core/errors.js';
import type { ClientState, Downstream, Era } from '../gateway/index.js';
import {
  classify,
  metaKeys,
  metaOf,
  modernVersions,
  notification,
  passesLevel,
  type RpcMessage,
  type RpcNotification,
  type RpcRequest,
  type RpcResponse,
  rpcCodes,
  rpcError,
} from '../gateway/index.js';
import type { Principal, TokenPresentation } from '../identity/index.js';
import { authChallenges, readPresentedToken } from './agent-auth.js';

interface Session {
  id: string;
  agentId: string;
  state: ClientState;
  lastSeen: number;
  inflight: Map<string | number, AbortController>;
  /** The GET stream for messages not tied to a request. */
  stream: ServerResponse | null;
  subscriptions: Set<string>;
}

interface Listener {
  agentId: string;
  scope: string | null;
  subscriptionId: string | number;
  filter: {
    toolsListChanged?: boolean;
    promptsListChanged?: boolean;
    resourcesListChanged?: boolean;
    resourceSubscriptions?: string[];
  };
  stream: ServerResponse;
}

export interface McpHttpOptions {
  downstream: Downstream;
  authenticate(token: string, presentation: TokenPresentation): Promise<Principal>;
  /** Custos's public base URL, which DPoP proofs name (htu) with the request's path. */
  publicBase: string;
  /** Whether /mcp/<server> names a configured server. */
  hasServer(name: string): boolean;
  /** URL of the protected resource metadata, for WWW-Authenticate. */
  resourceMetadataUrl: string;
  /** Hosts accepted in the Host header (DNS rebinding protection); empty: any. */
  allowedHosts: readonly string[];
  maxSessions?: number;
  sessionIdleMs?: number;
}

const modern = new Set<string>(modernVersions);
const namedMethods: Record<string, 'name' | 'uri'> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
};

/**
 * MCP over Streamable HTTP at /mcp and /mcp/<server>, for both protocol eras: legacy
 * clients initialize a session (Mcp-Session-Id) and may open a GET stream; modern
 * (2026-07-28) clients send self-describing requests whose headers must match the body.
 * A request's answer is JSON unless something must be said before it (progress, logs),
 * in which case the answer becomes an SSE stream.
 */
export class McpHttp {
  private readonly sessions = new Map<string, Session>();
  private readonly listeners = new Set<Listener>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly options: McpHttpOptions) {
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
  }

  register(app: FastifyInstance): void {
    for (const url of ['/mcp', '/mcp/:server']) {
      app.post(url, (request, reply) => this.post(request, reply));
      app.get(url, (request, reply) => this.get(request, reply));
      app.delete(url, (request, reply) => this.delete(request, reply));
    }
  }

  /** Tell open streams that a list changed behind the servers given (null: all). */
  listChanged(kind: 'tools' | 'prompts' | 'resources', server: string | null): void {
    const message = notification(`notifications/${kind}/list_changed`);
    for (const session of this.sessions.values()) {
      if (session.stream && covers(session.state.scope, server)) writeEvent(session.stream, message);
    }
    const key = `${kind}ListChanged` as const;
    for (const l of this.listeners) {
      if (l.filter[key] && covers(l.scope, server)) writeEvent(l.stream, stamped(message, l.subscriptionId));
    }
  }

  /** Route notifications/resources/updated to the clients that subscribed to the URI. */
  resourceUpdated(server: string, params: Record<string, unknown> | undefined): void {
    const uri = params?.uri;
    if (typeof uri !== 'string') return;
    const message = notification('notifications/resources/updated', params);
    for (const s of this.sessions.values()) {
      if (s.stream && s.subscriptions.has(uri) && covers(s.state.scope, server))
        writeEvent(s.stream, message);
    }
    for (const l of this.listeners) {
      if (l.filter.resourceSubscriptions?.includes(uri) && covers(l.scope, server)) {
        writeEvent(l.stream, stamped(message, l.subscriptionId));
      }
    }
  }

  /**
   * Pass an upstream log message to the legacy sessions that asked for logs at its level.
   * The 2025-11-25 protocol does not say which request a message belongs to, so it goes
   * to the GET streams of every session behind that server, whichever agent: upstream
   * log output is the upstream's, not an agent's.
   */
  logMessage(server: string, params: Record<string, unknown> | undefined): void {
    const message = notification('notifications/message', params);
    for (const s of this.sessions.values()) {
      if (s.stream && covers(s.state.scope, server) && passesLevel(s.state.logLevel, params?.level)) {
        writeEvent(s.stream, message);
      }
    }
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const s of this.sessions.values()) this.endSession(s);
    for (const l of this.listeners) l.stream.end();
    this.listeners.clear();
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  private async post(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const scope = this.scopeOf(request, reply);
    if (scope === undefined) return;
    const principal = await this.principalOf(request, reply);
    if (principal === undefined) return;
    const classified = classify(request.body);
    if (classified.kind === 'invalid') {
      reply.code(400).send(classified.error);
      return;
    }
    const sessionId = header(request, 'mcp-session-id');
    if (sessionId === undefined) {
      // No session: a legacy initialize, or a self-describing 2026-07-28 message (its version
      // travels in params._meta, or at least in the MCP-Protocol-Version header).
      if (classified.kind === 'request' && classified.message.method === 'initialize') {
        return this.initialize(reply, principal, scope, classified.message);
      }
      const headerVersion = header(request, 'mcp-protocol-version');
      const modernEra = headerVersion !== undefined && modern.has(headerVersion);
      if (
        classified.kind === 'request' &&
        (modernEra || metaString(classified.message, metaKeys.protocolVersion))
      ) {
        return this.modernRequest(request, reply, principal, scope, classified.message);
      }
      if (classified.kind !== 'request' && modernEra) {
        reply.code(202).send();
        return;
      }
      reply
        .code(400)
        .send(
          rpcError(null, rpcCodes.invalidRequest, 'Mcp-Session-Id header is required; send initialize first'),
        );
      return;
    }
    const session = this.sessionFor(sessionId, principal, scope);
    if (session === undefined) {
      reply
        .code(404)
        .send(rpcError(null, rpcCodes.invalidRequest, 'session not found; initialize a new one'));
      return;
    }
    if (classified.kind === 'notification') {
      this.clientNotification(session, classified.message);
      reply.code(202).send();
      return;
    }
    if (classified.kind === 'response') {
      // Custos sends no requests to clients yet; an answer to one has nowhere to go.
      reply.code(202).send();
      return;
    }
    const rpc = classified.message;
    const controller = new AbortController();
    session.inflight.set(rpc.id, controller);
    try {
      await this.exchange(request, reply, principal, session.state, rpc, controller);
    } finally {
      session.inflight.delete(rpc.id);
    }
  }

  private async initialize(
    reply: FastifyReply,
    principal: Principal,
    scope: string | null,
    message: RpcRequest,
  ): Promise<void> {
    const { response, state } = this.options.downstream.initialize(message, scope);
    const session: Session = {
      id: randomUUID(),
      agentId: principal.agentId,
      state,
      lastSeen: Date.now(),
      inflight: new Map(),
      stream: null,
      subscriptions: new Set(),
    };
    this.evictIfFull();
    this.sessions.set(session.id, session);
    reply.header('mcp-session-id', session.id).code(200).send(response);
  }

  private async modernRequest(
    request: FastifyRequest,
    reply: FastifyReply,
    principal: Principal,
    scope: string | null,
    message: RpcRequest,
  ): Promise<void> {
    const version = header(request, 'mcp-protocol-version');
    const metaVersion = metaString(message, metaKeys.protocolVersion);
    if (
      version === undefined ||
      metaVersion === undefined ||
      !modern.has(version) ||
      !modern.has(metaVersion)
    ) {
      const asked = metaVersion ?? version;
      if (asked !== undefined && !modern.has(asked)) {
        reply.code(400).send(
          rpcError(message.id, rpcCodes.unsupportedProtocolVersion, `unsupported protocol version ${asked}`, {
            supported: [...modernVersions],
            requested: asked,
          }),
        );
        return;
      }
    }
    const mismatch = headerMismatch(request, message, version, metaVersion);
    if (mismatch !== undefined) {
      reply
        .code(400)
        .send(rpcError(message.id, rpcCodes.headerMismatch, `header mismatch: ${mismatch}`, { mismatch }));
      return;
    }
    if (message.method === 'subscriptions/listen') return this.listen(reply, principal, scope, message);
    const level = metaString(message, metaKeys.logLevel) ?? null;
    const state: ClientState = {
      era: 'modern',
      protocolVersion: metaVersion as string,
      scope,
      logLevel: level,
    };
    await this.exchange(request, reply, principal, state, message, new AbortController());
  }

  /** Answer one request: JSON, or SSE once anything must precede the answer. */
  private async exchange(
    request: FastifyRequest,
    reply: FastifyReply,
    principal: Principal,
    state: ClientState,
    message: RpcRequest,
    controller: AbortController,
  ): Promise<void> {
    const raw = reply.raw;
    // Legacy clients get the framing the SDK servers use (SSE per POST) when they accept it,
    // so Custos is transparent; modern clients get JSON unless something must stream first.
    const sse = state.era === 'legacy' && accepts(request, 'text/event-stream');
    let streaming = false;
    let done = false;
    const onClose = () => {
      if (!done) controller.abort(new CustosError('upstream_unavailable', 'the client went away'));
    };
    raw.on('close', onClose);
    const exchange = {
      signal: controller.signal,
      abort: (reason: unknown) => controller.abort(reason),
      traceparent: header(request, 'traceparent'),
      notify(note: RpcNotification) {
        if (done || raw.destroyed) return;
        if (!streaming) {
          streaming = true;
          reply.hijack();
          raw.writeHead(200, sseHeaders);
        }
        writeEvent(raw, note);
      },
    };
    let response: RpcResponse;
    try {
      response = await this.options.downstream.handle(principal, state, message, exchange);
    } catch (error) {
      // Only an unwritable audit record or a bug lands here: answer nothing the call produced.
      request.log.error({ err: error }, 'request failed');
      const code = isCustosError(error) ? error.code : 'internal';
      response = rpcError(message.id, rpcCodes.internalError, 'Custos could not complete this request', {
        code,
      });
    } finally {
      done = true;
      raw.off('close', onClose);
    }
    if (raw.destroyed) return;
    if (streaming) {
      writeEvent(raw, response);
      raw.end();
    } else if (sse) {
      // Nothing preceded the answer: the whole stream is one event, written at once.
      const body = eventText(response);
      reply.hijack();
      raw.writeHead(200, { ...sseHeaders, 'content-length': Buffer.byteLength(body) });
      raw.end(body);
    } else {
      reply.code(200).send(response);
    }
  }

  private async listen(
    reply: FastifyReply,
    principal: Principal,
    scope: string | null,
    message: RpcRequest,
  ): Promise<void> {
    const filter = (message.params?.notifications ?? {}) as Listener['filter'];
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, sseHeaders);
    const listener: Listener = {
      agentId: principal.agentId,
      scope,
      subscriptionId: message.id,
      filter,
      stream: raw,
    };
    this.listeners.add(listener);
    writeEvent(
      raw,
      stamped(
        notification('notifications/subscriptions/acknowledged', { notifications: filter }),
        message.id,
      ),
    );
    raw.on('close', () => this.listeners.delete(listener));
  }

  private async get(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const scope = this.scopeOf(request, reply);
    if (scope === undefined) return;
    const principal = await this.principalOf(request, reply);
    if (principal === undefined) return;
    const sessionId = header(request, 'mcp-session-id');
    if (sessionId === undefined) {
      reply
        .code(405)
        .header('allow', 'POST')
        .send(rpcError(null, rpcCodes.invalidRequest, 'GET needs an Mcp-Session-Id'));
      return;
    }
    const session = this.sessionFor(sessionId, principal, scope);
    if (session === undefined) {
      reply.code(404).send(rpcError(null, rpcCodes.invalidRequest, 'session not found'));
      return;
    }
    if (session.stream !== null && !session.stream.destroyed) {
      reply.code(409).send(rpcError(null, rpcCodes.invalidRequest, 'this session already has a GET stream'));
      return;
    }
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, sseHeaders);
    raw.write(': custos stream open\n\n');
    session.stream = raw;
    raw.on('close', () => {
      if (session.stream === raw) session.stream = null;
    });
  }

  private async delete(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const scope = this.scopeOf(request, reply);
    if (scope === undefined) return;
    const principal = await this.principalOf(request, reply);
    if (principal === undefined) return;
    const sessionId = header(request, 'mcp-session-id');
    const session = sessionId === undefined ? undefined : this.sessionFor(sessionId, principal, scope);
    if (session === undefined) {
      reply.code(404).send(rpcError(null, rpcCodes.invalidRequest, 'session not found'));
      return;
    }
    this.endSession(session);
    reply.code(200).send();
  }

  private clientNotification(session: Session, message: RpcNotification): void {
    if (message.method === 'notifications/cancelled') {
      const id = message.params?.requestId;
      if (typeof id === 'string' || typeof id === 'number') {
        session.inflight.get(id)?.abort(new CustosError('upstream_unavailable', 'cancelled by the client'));
      }
    }
  }

  /** The endpoint's server, null for /mcp, or undefined after answering 403/404. */
  private scopeOf(request: FastifyRequest, reply: FastifyReply): string | null | undefined {
    const host = request.headers.host ?? '';
    const allowed = this.options.allowedHosts;
    if (allowed.length > 0 && !allowed.includes(host.toLowerCase())) {
      reply
        .code(403)
        .send({ error: { code: 'forbidden_host', message: `Host ${host} is not accepted here` } });
      return undefined;
    }
    const origin = request.headers.origin;
    if (origin !== undefined && allowed.length > 0) {
      let originHost = '';
      try {
        originHost = new URL(origin).host.toLowerCase();
      } catch {}
      if (!allowed.includes(originHost)) {
        reply
          .code(403)
          .send({ error: { code: 'forbidden_origin', message: `Origin ${origin} is not accepted here` } });
        return undefined;
      }
    }
    const server = (request.params as { server?: string }).server;
    if (server === undefined) return null;
    if (!this.options.hasServer(server)) {
      reply.code(404).send({ error: { code: 'unknown_server', message: `no server named "${server}"` } });
      return undefined;
    }
    return server;
  }

  private async principalOf(request: FastifyRequest, reply: FastifyReply): Promise<Principal | undefined> {
    const presented = readPresentedToken(request, this.options.publicBase);
    if (presented === undefined) {
      reply
        .code(401)
        .header('www-authenticate', authChallenges(this.options.resourceMetadataUrl))
        .send({ error: { code: 'invalid_token', message: 'a Bearer or DPoP access token is required' } });
      return undefined;
    }
    try {
      return await this.options.authenticate(presented.token, presented.presentation);
    } catch (error) {
      const code = isCustosError(error) ? error.code : 'internal';
      if (code === 'internal' || code === 'store_unavailable') throw error;
      request.log.info(
        { reason: (error as Error & { cause?: Error }).cause?.message, code },
        'authentication failed',
      );
      reply
        .code(401)
        .header(
          'www-authenticate',
          authChallenges(this.options.resourceMetadataUrl, { code, scheme: presented.presentation.scheme }),
        )
        .send({ error: { code, message: (error as Error).message } });
      return undefined;
    }
  }

  private sessionFor(id: string, principal: Principal, scope: string | null): Session | undefined {
    const session = this.sessions.get(id);
    // Another agent's session id is as good as unknown.
    if (session === undefined || session.agentId !== principal.agentId || session.state.scope !== scope)
      return undefined;
    session.lastSeen = Date.now();
    return session;
  }

  private endSession(session: Session): void {
    for (const c of session.inflight.values())
      c.abort(new CustosError('upstream_unavailable', 'session closed'));
    session.stream?.end();
    this.sessions.delete(session.id);
  }

  private evictIfFull(): void {
    const max = this.options.maxSessions ?? 10_000;
    if (this.sessions.size < max) return;
    let oldest: Session | undefined;
    for (const s of this.sessions.values())
      if (oldest === undefined || s.lastSeen < oldest.lastSeen) oldest = s;
    if (oldest) this.endSession(oldest);
  }

  private sweep(): void {
    const cutoff = Date.now() - (this.options.sessionIdleMs ?? 30 * 60_000);
    for (const s of this.sessions.values()) {
      if (s.lastSeen < cutoff && s.inflight.size === 0) this.endSession(s);
    }
  }
}

const sseHeaders = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
};

function eventText(message: RpcMessage): string {
  return `event: message\ndata: ${JSON.stringify(message)}\n\n`;
}

function writeEvent(stream: ServerResponse, message: RpcMessage): void {
  if (!stream.destroyed) stream.write(eventText(message));
}

function stamped(message: RpcNotification, subscriptionId: string | number): RpcNotification {
  const params = message.params ?? {};
  return {
    ...message,
    params: { ...params, _meta: { ...(metaOf(params) ?? {}), [metaKeys.subscriptionId]: subscriptionId } },
  };
}

function covers(scope: string | null, server: string | null): boolean {
  return scope === null || server === null || scope === server;
}

function accepts(request: FastifyRequest, type: string): boolean {
  return (header(request, 'accept') ?? '').includes(type);
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function metaString(message: RpcRequest, key: string): string | undefined {
  const value = metaOf(message.params)?.[key];
  return typeof value === 'string' ? value : undefined;
}

/** 2026-07-28 requires the routing headers to agree with the body; say which one does not. */
function headerMismatch(
  request: FastifyRequest,
  message: RpcRequest,
  version: string | undefined,
  metaVersion: string | undefined,
): string | undefined {
  if (version !== metaVersion) return 'MCP-Protocol-Version';
  if (header(request, 'mcp-method') !== message.method) return 'Mcp-Method';
  const field = namedMethods[message.method];
  if (field !== undefined) {
    const expected = message.params?.[field];
    const got = decodeHeaderValue(header(request, 'mcp-name'));
    if (typeof expected !== 'string' || got !== expected) return 'Mcp-Name';
  }
  return undefined;
}

/** Header values that are not plain ASCII travel as =?base64?...?= (2026-07-28). */
function decodeHeaderValue(value: string | undefined): string | undefined {
  const match = value?.match(/^=\?base64\?(.*)\?=$/);
  return match ? Buffer.from(match[1] ?? '', 'base64').toString('utf8') : value;
}

export type { Era };
