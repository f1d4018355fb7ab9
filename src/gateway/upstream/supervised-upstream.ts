import {
  Client,
  type JSONRPCMessage,
  SdkError,
  SdkErrorCode,
  type Transport,
} from '@modelcontextprotocol/client';
import { type Clock, systemClock } from '../../core/clock.js';
import { errorMessage } from '../../core/errors.js';
import { type BackoffPolicy, backoffDelay, defaultBackoff } from './backoff.js';
import { anyResult, emptyCatalog, isJson, listCatalogParts } from './catalog.js';
import { isConnectionFailure, translateRequestError, unavailable } from './errors.js';
import type { DirectRequests } from './http-session.js';
import { Listeners } from './listeners.js';
import type {
  CatalogChange,
  CatalogPart,
  Json,
  ManagedUpstream,
  Progress,
  StatusChange,
  Unsubscribe,
  UpstreamCatalog,
  UpstreamLogger,
  UpstreamNotification,
  UpstreamRequestOptions,
  UpstreamStatus,
} from './types.js';

export interface SupervisorOptions {
  logger: UpstreamLogger;
  backoff?: Partial<BackoffPolicy>;
  /** Default per-request timeout (the server's configured `timeout`, in milliseconds). */
  timeoutMs: number;
  /** Longest wait for the handshake and for each catalog listing; defaults to timeoutMs. */
  connectTimeoutMs?: number;
  clock?: Clock;
  /** How Custos names itself to upstreams in the initialize handshake. */
  clientInfo?: { name: string; version: string };
}

const allParts: readonly CatalogPart[] = ['tools', 'prompts', 'resources'];
const listChanged: Record<string, CatalogPart> = {
  'notifications/tools/list_changed': 'tools',
  'notifications/prompts/list_changed': 'prompts',
  'notifications/resources/list_changed': 'resources',
};
/** Notifications that belong to the protocol machinery, never forwarded as events. */
const internalNotifications = new Set(['notifications/progress', 'notifications/cancelled']);

interface ProgressRoute {
  onProgress: (progress: Progress) => void;
  callerToken: string | number | undefined;
}

/** One connection (for stdio: one child process) and what belongs to it. */
interface Session {
  readonly client: Client;
  readonly transport: Transport;
  /** Requests that bypass the SDK client on this connection, when the subclass offers them. */
  direct: DirectRequests | undefined;
  closed: boolean;
  /** This connection's catalog; published once the connection is ready. */
  catalog: UpstreamCatalog;
  /** Upstream progress token (ours) to the request that is waiting for it. */
  readonly progress: Map<string, ProgressRoute>;
  readonly pendingParts: Set<CatalogPart>;
  refreshing: Promise<void> | undefined;
}

/**
 * An MCP upstream kept connected: it connects, lists the catalog, serves requests, and on
 * a lost connection reconnects with exponential backoff and lists again. Subclasses say how
 * to build a transport (spawn a process, open an HTTP session).
 *
 * Version negotiation is 'legacy' (the 2025-11-25 initialize handshake) unless a subclass
 * asks for 'auto', which probes the 2026-07-28 server/discover first, or 'legacy-first', which
 * tries the handshake and falls back to 'auto' when the server refuses it.
 */
export abstract class SupervisedUpstream implements ManagedUpstream {
  abstract readonly transport: 'stdio' | 'http';
  protected abstract readonly versionNegotiation: 'legacy' | 'auto' | 'legacy-first';
  /** A fresh, unstarted transport for one connection attempt. */
  protected abstract createTransport(): Transport;
  /**
   * A cheaper way to send requests on a connection the SDK client established, if the
   * subclass has one for what was negotiated; `lost` drops the connection and reconnects.
   */
  protected openDirectRequests(
    _client: Client,
    _transport: Transport,
    _lost: (reason: string) => void,
  ): DirectRequests | undefined {
    return undefined;
  }
  /** Say goodbye to the upstream before close() ends a live connection; must not throw. */
  protected async beforeDeliberateClose(_transport: Transport): Promise<void> {}

  protected readonly logger: UpstreamLogger;
  readonly #policy: BackoffPolicy;
  readonly #timeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #clock: Clock;
  readonly #clientInfo: { name: string; version: string };

  #status: UpstreamStatus = 'starting';
  #catalog: UpstreamCatalog | undefined;
  #lastError: string | undefined;
  /** The ready connection, if any. */
  #session: Session | undefined;
  /** The connection being established, if any. */
  #connecting: Session | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  #readySince = 0;
  #everReady = false;
  #started = false;
  #closed = false;
  #firstAttempt: Promise<void> | undefined;
  #tokens = 0;

  readonly #notifications: Listeners<UpstreamNotification>;
  readonly #catalogChanges: Listeners<CatalogChange>;
  readonly #statusChanges: Listeners<StatusChange>;

  constructor(
    readonly name: string,
    options: SupervisorOptions,
  ) {
    this.logger = options.logger;
    this.#policy = { ...defaultBackoff, ...options.backoff };
    this.#timeoutMs = options.timeoutMs;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? options.timeoutMs;
    this.#clock = options.clock ?? systemClock;
    this.#clientInfo = options.clientInfo ?? { name: 'custos', version: '0.1.0' };
    this.#notifications = new Listeners(this.logger, 'notification');
    this.#catalogChanges = new Listeners(this.logger, 'catalog');
    this.#statusChanges = new Listeners(this.logger, 'status');
  }

  status(): UpstreamStatus {
    return this.#status;
  }

  catalog(): UpstreamCatalog | undefined {
    return this.#catalog;
  }

  lastError(): string | undefined {
    return this.#lastError;
  }

  onNotification(listener: (notification: UpstreamNotification) => void): Unsubscribe {
    return this.#notifications.add(listener);
  }

  onCatalogChanged(listener: (change: CatalogChange) => void): Unsubscribe {
    return this.#catalogChanges.add(listener);
  }

  onStatusChanged(listener: (change: StatusChange) => void): Unsubscribe {
    return this.#statusChanges.add(listener);
  }

  start(): Promise<void> {
    if (!this.#started) {
      this.#started = true;
      this.#firstAttempt = this.#attempt();
    }
    return this.#firstAttempt ?? Promise.resolve();
  }

  waitReady(timeoutMs: number): Promise<boolean> {
    if (this.#status === 'ready') return Promise.resolve(true);
    if (this.#status === 'closed' || this.#status === 'failed') return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(false), timeoutMs);
      const unsubscribe = this.onStatusChanged(({ status }) => {
        if (status === 'ready') finish(true);
        else if (status === 'closed' || status === 'failed') finish(false);
      });
      function finish(ready: boolean) {
        clearTimeout(timer);
        unsubscribe();
        resolve(ready);
      }
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const sessions = [this.#session, this.#connecting].filter((s): s is Session => s !== undefined);
    this.#session = undefined;
    this.#connecting = undefined;
    this.#setStatus('closed');
    await Promise.all(
      sessions.map(async (session) => {
        if (!session.closed) await this.beforeDeliberateClose(session.transport);
        await this.#end(session);
      }),
    );
    // Let a first attempt that was mid-handshake notice the close and finish.
    await this.#firstAttempt;
  }

  async request(
    method: string,
    params: Json | undefined,
    options: UpstreamRequestOptions = {},
  ): Promise<Json> {
    const session = this.#session;
    if (this.#status !== 'ready' || session === undefined) {
      throw unavailable(this.name, this.#status === 'closed' ? 'closed' : `not ready (${this.#status})`);
    }
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const context = { server: this.name, method, timeoutMs, signal: options.signal };
    if (options.signal?.aborted) throw translateRequestError(options.signal.reason, context);

    // Progress tokens are per connection and chosen by the caller; an upstream gets a token of
    // ours, unique on this connection, so two callers using the same token cannot cross.
    const meta = isJson(params?._meta) ? params._meta : undefined;
    const callerToken = meta?.progressToken;
    let token: string | undefined;
    let outbound = params;
    if (options.onProgress !== undefined) {
      token = `custos-${++this.#tokens}`;
      session.progress.set(token, {
        onProgress: options.onProgress,
        callerToken:
          typeof callerToken === 'string' || typeof callerToken === 'number' ? callerToken : undefined,
      });
      outbound = { ...params, _meta: { ...meta, progressToken: token } };
    } else if (meta !== undefined && 'progressToken' in meta) {
      // Nobody would route the notifications back: do not ask for them.
      const { progressToken: _dropped, ...rest } = meta;
      const { _meta: _old, ...others } = params ?? {};
      outbound = Object.keys(rest).length === 0 ? others : { ...others, _meta: rest };
    }

    if (session.direct !== undefined) {
      const onNotification = options.onNotification;
      try {
        return await session.direct.request(method, outbound, {
          context,
          timeoutMs,
          signal: options.signal,
          headers: options.headers,
          onNotification: (name, body) => {
            // Progress and list_changed belong to the machinery; the rest to this request's caller.
            if (
              onNotification === undefined ||
              internalNotifications.has(name) ||
              Object.hasOwn(listChanged, name)
            ) {
              this.#observe(session, {
                jsonrpc: '2.0',
                method: name,
                ...(body === undefined ? {} : { params: body }),
              });
              return;
            }
            try {
              onNotification(name, body);
            } catch (error) {
              this.logger.error({ server: this.name, err: error }, 'notification listener failed');
            }
          },
        });
      } finally {
        if (token !== undefined) session.progress.delete(token);
      }
    }

    try {
      return await session.client.request(
        outbound === undefined ? { method } : { method, params: outbound },
        anyResult,
        {
          timeout: timeoutMs,
          ...(options.signal === undefined ? {} : { signal: options.signal }),
          allowInputRequired: true,
        },
      );
    } catch (error) {
      if (!options.signal?.aborted && isConnectionFailure(error)) {
        this.#lost(session, `request failed: ${errorMessage(error)}`);
      }
      throw translateRequestError(error, context);
    } finally {
      if (token !== undefined) session.progress.delete(token);
    }
  }

  async notify(method: string, params?: Json): Promise<void> {
    const session = this.#session;
    if (session === undefined) return;
    try {
      await session.client.notification(params === undefined ? { method } : { method, params });
    } catch (error) {
      this.logger.warn({ server: this.name, method, err: error }, 'could not notify upstream');
    }
  }

  /** One connection attempt: connect, list everything, go ready; on failure schedule the next. */
  async #attempt(): Promise<void> {
    this.#retryTimer = undefined;
    if (this.#closed) return;
    let current: Session | undefined;
    try {
      if (this.versionNegotiation === 'legacy-first') {
        try {
          current = await this.#connect('legacy');
        } catch (error) {
          if (this.#closed || !refusedHandshake(error)) throw error;
          this.logger.info(
            { server: this.name, err: error },
            'upstream refused the 2025-11-25 handshake; negotiating',
          );
          current = await this.#connect('auto');
        }
      } else {
        current = await this.#connect(this.versionNegotiation);
      }
      if (this.#closed) return;
      const session = current;
      const client = session.client;
      this.#tap(session);
      session.direct = this.openDirectRequests(client, session.transport, (reason) =>
        this.#lost(session, reason),
      );
      session.catalog = emptyCatalog(client);
      await this.#refresh(session, allParts);
      if (this.#closed) return;
      if (session.closed) throw new Error('the connection closed while listing the catalog');

      this.#connecting = undefined;
      this.#session = session;
      this.#readySince = this.#clock.now();
      this.#everReady = true;
      this.#lastError = undefined;
      this.#publish(session, allParts);
      this.#setStatus('ready');
      this.logger.info(
        {
          server: this.name,
          transport: this.transport,
          protocolVersion: client.getNegotiatedProtocolVersion(),
          directRequests: session.direct !== undefined,
        },
        'upstream ready',
      );
    } catch (error) {
      if (current !== undefined && this.#connecting === current) this.#connecting = undefined;
      if (current !== undefined) await this.#end(current);
      if (this.#closed) return;
      this.#lastError = errorMessage(error);
      this.logger.warn({ server: this.name, err: error }, 'upstream connection attempt failed');
      this.#scheduleRetry(this.#lastError);
    }
  }

  /** Build a transport and client and run the handshake; on failure the connection is ended. */
  async #connect(mode: 'legacy' | 'auto'): Promise<Session> {
    const transport = this.createTransport();
    const client = new Client(this.#clientInfo, {
      // Custos relays no server-to-client requests (sampling, elicitation, roots) yet.
      capabilities: {},
      ...(mode === 'auto' ? { versionNegotiation: { mode: 'auto' as const } } : {}),
    });
    const current: Session = {
      client,
      transport,
      direct: undefined,
      closed: false,
      catalog: {
        serverInfo: {},
        capabilities: {},
        tools: [],
        prompts: [],
        resources: [],
        resourceTemplates: [],
      },
      progress: new Map(),
      pendingParts: new Set(),
      refreshing: undefined,
    };
    this.#connecting = current;
    client.onclose = () => this.#lost(current, 'connection closed');
    client.onerror = (error) =>
      this.logger.debug?.({ server: this.name, err: error }, 'upstream protocol error');
    try {
      await client.connect(transport, { timeout: this.#connectTimeoutMs });
    } catch (error) {
      if (this.#connecting === current) this.#connecting = undefined;
      await this.#end(current);
      throw error;
    }
    return current;
  }

  /** The ready connection is gone (exit, close, or a transport failure): reconnect later. */
  #lost(session: Session, reason: string): void {
    session.closed = true;
    if (this.#closed || session !== this.#session) return;
    this.#session = undefined;
    if (this.#clock.now() - this.#readySince >= this.#policy.stableAfterMs) this.#failures = 0;
    this.#lastError = reason;
    this.logger.warn({ server: this.name, reason }, 'upstream connection lost');
    void this.#end(session);
    this.#scheduleRetry(reason);
  }

  #scheduleRetry(reason: string): void {
    if (this.#closed) return;
    if (this.#failures >= this.#policy.maxConsecutiveFailures) {
      this.#setStatus('failed', reason);
      return;
    }
    const delay = backoffDelay(this.#policy, this.#failures);
    this.#failures++;
    this.#setStatus(this.#everReady ? 'restarting' : 'starting', reason);
    this.logger.info({ server: this.name, delayMs: delay }, 'upstream reconnect scheduled');
    this.#retryTimer = setTimeout(() => void this.#attempt(), delay);
    this.#retryTimer.unref();
  }

  /** Close a connection quietly; for stdio this ends (and if need be kills) the child. */
  async #end(session: Session): Promise<void> {
    session.closed = true;
    session.direct?.close();
    try {
      await session.client.close();
    } catch (error) {
      this.logger.debug?.({ server: this.name, err: error }, 'error while closing upstream connection');
    }
  }

  /**
   * Watch raw messages before the SDK dispatches them. Progress is routed here, synchronously
   * and in arrival order, so every notification reaches its caller before the response that
   * ends the request (the SDK runs notification handlers a microtask later than responses).
   */
  #tap(session: Session): void {
    const transport = session.transport;
    const inner = transport.onmessage;
    transport.onmessage = (
      message: JSONRPCMessage,
      extra?: Parameters<NonNullable<Transport['onmessage']>>[1],
    ) => {
      if (this.#observe(session, message)) return;
      inner?.(message, extra);
    };
  }

  /** Returns true when the message was consumed here (progress for one of our tokens). */
  #observe(session: Session, message: JSONRPCMessage): boolean {
    if (!('method' in message) || 'id' in message) return false;
    const method = message.method;
    const params = isJson(message.params) ? message.params : undefined;
    if (method === 'notifications/progress') {
      const token = params?.progressToken;
      const route = typeof token === 'string' ? session.progress.get(token) : undefined;
      if (route === undefined || params === undefined) return false;
      if (typeof params.progress === 'number') {
        const progress: Progress = { progress: params.progress };
        if (typeof params.total === 'number') progress.total = params.total;
        if (typeof params.message === 'string') progress.message = params.message;
        if (route.callerToken !== undefined) progress.progressToken = route.callerToken;
        try {
          route.onProgress(progress);
        } catch (error) {
          this.logger.error({ server: this.name, err: error }, 'progress listener failed');
        }
      }
      return true;
    }
    const part = Object.hasOwn(listChanged, method) ? listChanged[method] : undefined;
    if (part !== undefined) {
      this.#refresh(session, [part]).catch((error) => {
        this.logger.warn({ server: this.name, part, err: error }, 'could not re-list the upstream catalog');
      });
      return false;
    }
    if (!internalNotifications.has(method)) this.#notifications.emit({ server: this.name, method, params });
    return false;
  }

  /**
   * Re-list catalog parts on this connection. Calls coalesce: parts asked for while a listing
   * runs are listed once more after it, so the last list_changed always wins.
   */
  #refresh(session: Session, parts: readonly CatalogPart[]): Promise<void> {
    for (const part of parts) session.pendingParts.add(part);
    if (session.refreshing !== undefined) return session.refreshing;
    const drain = async () => {
      // Never finish synchronously, so `refreshing` is set before the finally below clears it.
      await Promise.resolve();
      try {
        while (session.pendingParts.size > 0 && !session.closed) {
          const batch = allParts.filter((part) => session.pendingParts.has(part));
          session.pendingParts.clear();
          session.catalog = await listCatalogParts(
            {
              client: session.client,
              server: this.name,
              timeoutMs: this.#connectTimeoutMs,
              logger: this.logger,
            },
            session.catalog,
            batch,
          );
          if (session === this.#session) this.#publish(session, batch);
        }
      } finally {
        session.pendingParts.clear();
        session.refreshing = undefined;
      }
    };
    const running = drain();
    session.refreshing = running;
    return running;
  }

  #publish(session: Session, parts: readonly CatalogPart[]): void {
    this.#catalog = session.catalog;
    this.#catalogChanges.emit({ server: this.name, parts, catalog: session.catalog });
  }

  #setStatus(status: UpstreamStatus, reason?: string): void {
    if (this.#status === status) return;
    this.#status = status;
    this.#statusChanges.emit({ server: this.name, status, ...(reason === undefined ? {} : { reason }) });
  }
}

/**
 * Whether a failed 2025-11-25 handshake means the server does not speak that era (it answered,
 * but refused), as opposed to being unreachable or too slow, where negotiating would not help.
 */
function refusedHandshake(error: unknown): boolean {
  if (error instanceof TypeError) return false; // fetch could not reach the server
  if (SdkError.isInstance(error) && error.code === SdkErrorCode.RequestTimeout) return false;
  return true;
}
