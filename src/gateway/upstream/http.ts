import { AsyncLocalStorage } from 'node:async_hooks';
import { type Client, StreamableHTTPClientTransport, type Transport } from '@modelcontextprotocol/client';
import { Pool } from 'undici';
import type { HttpServerConfig } from '../../core/config.js';
import { refusedCredential } from './errors.js';
import { type DirectRequests, HttpSession } from './http-session.js';
import { SupervisedUpstream, type SupervisorOptions } from './supervised-upstream.js';

export type HttpUpstreamOptions = Omit<SupervisorOptions, 'timeoutMs'> & {
  /**
   * The shared credential headers from the vault, looked up on every HTTP request of the
   * connection itself (initialize, listings, the notification stream), so a rotation takes
   * effect on the next request. Calls carry their own (possibly per-agent) headers.
   */
  credentials?: () => Promise<Record<string, string> | undefined>;
};

/** The calling request's credential headers, for the SDK client's fetch (2026-07-28 connections). */
const callHeaders = new AsyncLocalStorage<{ method: string; headers: Readonly<Record<string, string>> }>();

/** Keep-alive connections per upstream origin; enough for a busy gateway on a few cores. */
const poolConnections = 32;

/**
 * A Streamable HTTP MCP server. Each connection is a new MCP session; `headers` from the
 * configuration go on every HTTP request (POST, GET and DELETE). A request that fails at the
 * HTTP or network level drops the session and reconnects with backoff, since the server may
 * have restarted and forgotten it.
 *
 * Version negotiation is 'legacy-first': the 2025-11-25 initialize handshake, and only when
 * the server refuses it, 'auto' (probe the 2026-07-28 server/discover). Servers of either era
 * stay reachable, and on a 2025-era session requests take the direct path (HttpSession: one
 * undici POST each, no SDK client in the way), which costs a small fraction of the SDK's CPU.
 * The SDK client still connects, lists the catalog, holds the GET notification stream and
 * serves 2026-07-28 connections.
 */
export class HttpUpstream extends SupervisedUpstream {
  readonly transport = 'http';
  protected readonly versionNegotiation = 'legacy-first';
  readonly #config: HttpServerConfig;
  readonly #url: URL;
  #pool: Pool | undefined;
  /** Request ids of the direct path; strings, so they never meet the SDK client's numbers. */
  #requests = 0;

  readonly #credentials: HttpUpstreamOptions['credentials'];

  constructor(name: string, config: HttpServerConfig, options: HttpUpstreamOptions) {
    const { credentials, ...rest } = options;
    super(name, { ...rest, timeoutMs: config.timeout * 1000 });
    this.#config = config;
    this.#url = new URL(config.url);
    this.#credentials = credentials;
  }

  override request(
    ...args: Parameters<SupervisedUpstream['request']>
  ): ReturnType<SupervisedUpstream['request']> {
    const headers = args[2]?.headers;
    return headers === undefined
      ? super.request(...args)
      : callHeaders.run({ method: args[0], headers }, () => super.request(...args));
  }

  override async close(): Promise<void> {
    await super.close();
    const pool = this.#pool;
    this.#pool = undefined;
    if (pool === undefined) return;
    // Let fire-and-forget notifications (cancellations) go out, briefly.
    let timer: NodeJS.Timeout | undefined;
    const giveUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 1000);
    });
    try {
      await Promise.race([pool.close(), giveUp]);
    } finally {
      clearTimeout(timer);
    }
    if (!pool.closed) await pool.destroy();
  }

  /** End the MCP session with DELETE (spec: Streamable HTTP, session management), briefly. */
  protected override async beforeDeliberateClose(transport: Transport): Promise<void> {
    if (!(transport instanceof StreamableHTTPClientTransport)) return;
    let timer: NodeJS.Timeout | undefined;
    const giveUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 1000);
    });
    try {
      await Promise.race([transport.terminateSession().catch(() => undefined), giveUp]);
    } finally {
      clearTimeout(timer);
    }
  }

  protected createTransport(): Transport {
    const credentials = this.#credentials;
    return new StreamableHTTPClientTransport(this.#url, {
      requestInit: { headers: { ...this.#config.headers } },
      ...(credentials === undefined
        ? {}
        : {
            fetch: async (url: string | URL, init?: RequestInit) => {
              const call = callHeaders.getStore();
              const extra = call?.headers ?? (await credentials());
              if (extra === undefined) return fetch(url, init);
              const headers = new Headers(init?.headers);
              for (const [name, value] of Object.entries(extra)) headers.set(name, value);
              const response = await fetch(url, { ...init, headers });
              if (call === undefined || (response.status !== 401 && response.status !== 403)) return response;
              // A call's injected credential refused: the same distinct errors as the direct path.
              const refused = refusedCredential(
                this.name,
                call.method,
                response.status,
                response.headers.get('www-authenticate'),
              );
              if (refused === undefined) return response;
              await response.body?.cancel().catch(() => {});
              throw refused;
            },
          }),
    });
  }

  /** Direct requests on a 2025-era session; 2026-07-28 connections keep the SDK client. */
  protected override openDirectRequests(
    client: Client,
    transport: Transport,
    lost: (reason: string) => void,
  ): DirectRequests | undefined {
    if (!(transport instanceof StreamableHTTPClientTransport)) return undefined;
    const protocolVersion = client.getNegotiatedProtocolVersion();
    if (client.getProtocolEra() !== 'legacy' || protocolVersion === undefined) return undefined;
    this.#pool ??= new Pool(this.#url.origin, { connections: poolConnections });
    return new HttpSession({
      pool: this.#pool,
      path: `${this.#url.pathname}${this.#url.search}`,
      headers: this.#config.headers,
      sessionId: transport.sessionId,
      protocolVersion,
      nextId: () => `custos-${++this.#requests}`,
      lost,
      credentials: this.#credentials,
    });
  }
}
