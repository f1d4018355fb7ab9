import { randomUUID } from 'node:crypto';
import { DpopSession, StreamableHTTPClientTransport, withDpop } from '@modelcontextprotocol/client';
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import { type CryptoKey, importJWK, type JWK, SignJWT } from 'jose';
import { request } from 'undici';
import { CustosError } from '../core/errors.js';

export interface BridgeOptions {
  /** The MCP endpoint, e.g. http://127.0.0.1:7400/mcp. */
  url: string;
  clientId: string;
  /** A client secret (client_secret_post), or: */
  clientSecret?: string;
  /** the agent's private JWK, to sign client assertions (private_key_jwt, RFC 7523). */
  privateKey?: JWK;
  /**
   * Bind tokens to a DPoP key (RFC 9449): a key pair made in memory for this bridge, never
   * written anywhere, so a token copied out of the bridge is useless elsewhere.
   */
  dpop?: boolean;
  /** Token endpoint; defaults to <origin>/oauth/token. */
  tokenUrl?: string;
  log?: (line: string) => void;
}

/** The JWS algorithm of a private JWK: its alg member, or the one its key type implies. */
export function signingAlgorithmOf(jwk: JWK): string {
  if (typeof jwk.alg === 'string') return jwk.alg === 'Ed25519' ? 'EdDSA' : jwk.alg;
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  if (jwk.kty === 'RSA') return 'RS256';
  throw new CustosError('usage', 'the key file holds no usable private JWK (Ed25519, P-256 or RSA)');
}

/** A client assertion for private_key_jwt (RFC 7523 §3): one minute, one use, one audience. */
async function clientAssertion(
  clientId: string,
  key: CryptoKey,
  alg: string,
  audience: string,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg, typ: 'JWT' })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(audience)
    .setIssuedAt(now)
    .setExpirationTime(now + 60)
    .setJti(randomUUID())
    .sign(key);
}

/** Keeps one access token fresh: renewed when 80% of its life has passed, never shared. */
class TokenKeeper {
  private token: string | undefined;
  private renewAt = 0;
  private pending: Promise<string> | undefined;

  private signer: { key: CryptoKey; alg: string } | undefined;

  constructor(
    private readonly options: BridgeOptions & { tokenUrl: string },
    private readonly dpop: DpopSession | undefined,
  ) {}

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
    const { clientId, clientSecret, privateKey, tokenUrl } = this.options;
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId });
    if (privateKey !== undefined) {
      if (this.signer === undefined) {
        const alg = signingAlgorithmOf(privateKey);
        this.signer = { key: (await importJWK(privateKey, alg)) as CryptoKey, alg };
      }
      form.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
      form.set(
        'client_assertion',
        await clientAssertion(clientId, this.signer.key, this.signer.alg, tokenUrl),
      );
    } else if (clientSecret !== undefined) {
      form.set('client_secret', clientSecret);
    }
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (this.dpop !== undefined) headers.dpop = await this.dpop.buildProof({ htm: 'POST', htu: tokenUrl });
    const res = await request(tokenUrl, { method: 'POST', headers, body: form.toString() });
    const json = (await res.body.json()) as {
      access_token?: string;
      token_type?: string;
      expires_in?: number;
      error_description?: string;
    };
    if (res.statusCode !== 200 || json.access_token === undefined) {
      throw new CustosError(
        'invalid_client',
        `token request failed: ${json.error_description ?? res.statusCode}`,
      );
    }
    if (this.dpop !== undefined && json.token_type?.toLowerCase() !== 'dpop') {
      throw new CustosError(
        'invalid_client',
        'token request failed: the server did not bind the token to the DPoP key',
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
  if ((options.clientSecret === undefined) === (options.privateKey === undefined)) {
    throw new CustosError('usage', 'give the bridge a client secret or a private key, not both');
  }
  const dpop = options.dpop ? await DpopSession.create({ alg: 'ES256' }) : undefined;
  const tokens = new TokenKeeper({ ...options, tokenUrl }, dpop);
  await tokens.get(); // fail early on bad credentials
  const remote = new StreamableHTTPClientTransport(new URL(options.url), {
    authProvider: {
      token: () => tokens.get(),
      onUnauthorized: async () => tokens.invalidate(),
    },
    // With DPoP every request carries `Authorization: DPoP <token>` and a fresh proof (RFC 9449 §7.1).
    ...(dpop === undefined ? {} : { fetch: withDpop(dpop, () => tokens.get())(fetch) }),
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
