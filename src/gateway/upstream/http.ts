import { StreamableHTTPClientTransport, type Transport } from '@modelcontextprotocol/client';
import type { HttpServerConfig } from '../../core/config.js';
import { SupervisedUpstream, type SupervisorOptions } from './supervised-upstream.js';

export type HttpUpstreamOptions = Omit<SupervisorOptions, 'timeoutMs'>;

/**
 * A Streamable HTTP MCP server. Each connection is a new MCP session; `headers` from the
 * configuration go on every HTTP request (POST, GET and DELETE). A request that fails at the
 * HTTP or network level drops the session and reconnects with backoff, since the server may
 * have restarted and forgotten it.
 *
 * Version negotiation is 'auto': probe the 2026-07-28 server/discover and fall back to the
 * 2025-11-25 initialize handshake, which is how servers of either era stay reachable.
 */
export class HttpUpstream extends SupervisedUpstream {
  readonly transport = 'http';
  protected readonly versionNegotiation = 'auto';
  readonly #config: HttpServerConfig;

  constructor(name: string, config: HttpServerConfig, options: HttpUpstreamOptions) {
    super(name, { ...options, timeoutMs: config.timeout * 1000 });
    this.#config = config;
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
    return new StreamableHTTPClientTransport(new URL(this.#config.url), {
      requestInit: { headers: { ...this.#config.headers } },
    });
  }
}
