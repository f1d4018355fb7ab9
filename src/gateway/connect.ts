import { StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import { request } from 'undici';
import { CustosError } from '../core/errors.js';

export interface BridgeOptions {
  /** The MCP endpoint, e.g. http://127.0.0.1:7400/mcp. */
  url: string;
  clientId: string;
  clientSecret: string;
  /** Token endpoint; defaults to <origin>/oauth/token. */
  tokenUrl?: string;
  log?: (line: string) => void;
}

/** Keeps one access token fresh: renewed when 80% of its life has passed, never shared. */
class TokenKeeper {
  private token: string | undefined;
  private renewAt = 0;
  private pending: Promise<string> | undefined;

  constructor(private readonly options: BridgeOptions & { tokenUrl: string }) {}

  async get(): Promise<string> {
    if (this.token !== undefined && Date.now() < this.renewAt) return this.token;
    this.pending ??= this.fetch().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  invalidate(): void {
    this.renewAt = 0;
  }

  private async fetch(): Promise<string> {
    const body = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: this.options.clientId,
      client_secret: this.options.clientSecret,
    }).toString();
    const res = await request(this.options.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    const json = (await res.body.json()) as {
      access_token?: string;
      expires_in?: number;
      error_description?: string;
    };
    if (res.statusCode !== 200 || json.access_token === undefined) {
      throw new CustosError(
        'invalid_client',
        `token request failed: ${json.error_description ?? res.statusCode}`,
      );
    }
    this.token = json.access_token;
    this.renewAt = Date.now() + (json.expires_in ?? 600) * 800;
    return this.token;
  }
}

/**
 * `custos connect`: a stdio MCP server on one side, Custos over Streamable HTTP on the
 * other. Messages pass through unchanged; the bridge only adds a fresh bearer token.
 * Resolves when either side closes.
 */
export async function runBridge(options: BridgeOptions): Promise<void> {
  const tokenUrl = options.tokenUrl ?? new URL('/oauth/token', options.url).toString();
  const tokens = new TokenKeeper({ ...options, tokenUrl });
  await tokens.get(); // fail early on bad credentials
  const remote = new StreamableHTTPClientTransport(new URL(options.url), {
    authProvider: {
      token: () => tokens.get(),
      onUnauthorized: async () => tokens.invalidate(),
    },
  });
  const local = new StdioServerTransport();
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  await new Promise<void>((resolve) => {
    let closed = false;
    const finish = () => {
      if (closed) return;
      closed = true;
      void remote.close();
      void local.close();
      resolve();
    };
    local.onmessage = (message) => {
      remote.send(message).catch((error: unknown) => log(`custos connect: ${(error as Error).message}`));
    };
    remote.onmessage = (message) => {
      local.send(message).catch(() => finish());
    };
    remote.onerror = (error) => log(`custos connect: ${error.message}`);
    local.onclose = finish;
    remote.onclose = finish;
    void remote.start().then(() => local.start());
  });
}
