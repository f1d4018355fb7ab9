import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify } from 'jose';
import Provider from 'oidc-provider';

/**
 * A real OAuth 2 authorization server (oidc-provider) on loopback, plus a resource API that
 * accepts its JWT access tokens and checks scopes, for the OAuth broker tests. Token grants are
 * counted at the provider, from its own `grant.success` and `grant.error` events.
 */
export interface TestOAuth {
  readonly issuer: string;
  /** The resource API's base URL (also the RFC 8707 resource the tokens are for). */
  readonly apiUrl: string;
  /** Token requests the provider answered, by grant type (successes and refusals). */
  readonly grants: Record<string, number>;
  /** Requests the API answered, by outcome. */
  readonly api: { ok: number; insufficientScope: number; invalidToken: number };
  close(): Promise<void>;
}

export interface TestOAuthClient {
  client_id: string;
  client_secret?: string;
  grant_types: string[];
  redirect_uris?: string[];
  scope?: string;
  token_endpoint_auth_method?: string;
}

export interface TestOAuthOptions {
  clients: TestOAuthClient[];
  /** Seconds the provider's access tokens live. */
  accessTokenTtl?: number;
  /** Clients whose refresh tokens rotate on every use (refresh token rotation). */
  rotatingClients?: string[];
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
}

/** The resource API: GET needs api:read, any other method api:write (RFC 6750 challenges). */
function apiHandler(issuer: () => string, resource: () => string, counts: TestOAuth['api']) {
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  return async (req: IncomingMessage, res: ServerResponse) => {
    const auth = req.headers.authorization ?? '';
    const token = /^Bearer (.+)$/.exec(auth)?.[1];
    const refuse = (status: number, challenge: string) => {
      res.writeHead(status, { 'www-authenticate': challenge, 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: status === 403 ? 'insufficient_scope' : 'invalid_token' }));
    };
    if (token === undefined) {
      counts.invalidToken++;
      return refuse(401, 'Bearer realm="test-api"');
    }
    jwks ??= createRemoteJWKSet(new URL(`${issuer()}/jwks`));
    let scopes: string[];
    let subject: string | undefined;
    try {
      const { payload } = await jwtVerify(token, jwks, { issuer: issuer(), audience: resource() });
      scopes = String(payload.scope ?? '').split(' ');
      subject = String(payload.sub ?? payload.client_id ?? '');
    } catch (error) {
      counts.invalidToken++;
      const expired = error instanceof joseErrors.JWTExpired;
      return refuse(
        401,
        `Bearer realm="test-api", error="invalid_token", error_description="${expired ? 'expired' : 'invalid'}"`,
      );
    }
    const needed = req.method === 'GET' ? 'api:read' : 'api:write';
    if (!scopes.includes(needed)) {
      counts.insufficientScope++;
      return refuse(403, `Bearer realm="test-api", error="insufficient_scope", scope="${needed}"`);
    }
    counts.ok++;
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        ok: true,
        method: req.method,
        path: req.url,
        subject,
        scopes,
        body: Buffer.concat(chunks).toString('utf8'),
      }),
    );
  };
}

export async function startTestOAuth(options: TestOAuthOptions): Promise<TestOAuth> {
  const idp = createServer();
  const apiServer = createServer();
  const issuer = await listen(idp);
  const apiUrl = await listen(apiServer);
  const api = { ok: 0, insufficientScope: 0, invalidToken: 0 };
  apiServer.on(
    'request',
    apiHandler(
      () => issuer,
      () => apiUrl,
      api,
    ),
  );
  const provider = new Provider(issuer, {
    clients: options.clients.map((c) => ({
      response_types: c.grant_types.includes('authorization_code') ? ['code'] : [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      ...c,
    })),
    scopes: ['offline_access', 'api:read', 'api:write'],
    features: {
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => apiUrl,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'api:read api:write',
          accessTokenTTL: options.accessTokenTtl ?? 300,
          accessTokenFormat: 'jwt',
        }),
      },
    },
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) =>
      client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: (ctx: { oidc: { client?: { clientId: string } } }) =>
      (options.rotatingClients ?? []).includes(ctx.oidc.client?.clientId ?? ''),
    pkce: { required: () => true },
    findAccount: async (_ctx: unknown, id: string) => ({ accountId: id, claims: async () => ({ sub: id }) }),
    cookies: { keys: ['test cookie key for the provider'] },
  });
  const grants: Record<string, number> = {};
  const count = (ctx: { oidc?: { params?: { grant_type?: string } } }) => {
    const type = ctx.oidc?.params?.grant_type ?? 'unknown';
    grants[type] = (grants[type] ?? 0) + 1;
  };
  provider.on('grant.success', count);
  provider.on('grant.error', count);
  provider.on('server_error', (_ctx: unknown, error: Error) =>
    console.error('[test provider] server_error', error),
  );
  idp.on('request', provider.callback());
  return {
    issuer,
    apiUrl,
    grants,
    api,
    async close() {
      await Promise.all([
        new Promise((done) => idp.close(done)),
        new Promise((done) => apiServer.close(done)),
      ]);
    },
  };
}

/**
 * Play the human at the provider's (development) login and consent pages over plain HTTP:
 * follow redirects, submit each form, and return the URL the provider finally redirects to
 * under `callbackPrefix` (the Custos callback), without calling it.
 */
export async function consentAtProvider(
  authorizationUrl: string,
  callbackPrefix: string,
  login: string,
): Promise<URL> {
  const cookies = new Map<string, string>();
  const keep = (res: Response) => {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = (pair ?? '').indexOf('=');
      if (eq > 0) cookies.set((pair ?? '').slice(0, eq).trim(), (pair ?? '').slice(eq + 1));
    }
  };
  const cookieHeader = () => [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  let url = authorizationUrl;
  let init: RequestInit = {};
  for (let step = 0; step < 20; step++) {
    if (url.startsWith(callbackPrefix)) return new URL(url);
    const res = await fetch(url, {
      ...init,
      redirect: 'manual',
      headers: { ...init.headers, cookie: cookieHeader() },
    });
    keep(res);
    init = {};
    const location = res.headers.get('location');
    if (location !== null) {
      url = new URL(location, url).href;
      continue;
    }
    const html = await res.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    if (action === undefined)
      throw new Error(`the provider answered ${res.status} without a form: ${html.slice(0, 300)}`);
    const fields = new URLSearchParams();
    for (const m of html.matchAll(/<input([^>]*)>/g)) {
      const attributes = m[1] ?? '';
      const field = /name="([^"]+)"/.exec(attributes)?.[1];
      if (field !== undefined) fields.set(field, /value="([^"]*)"/.exec(attributes)?.[1] ?? '');
    }
    if (fields.has('login')) fields.set('login', login);
    if (fields.has('password')) fields.set('password', 'any password: the development provider accepts it');
    url = new URL(action.replaceAll('&amp;', '&'), url).href;
    init = {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: fields.toString(),
    };
  }
  throw new Error('the provider never redirected to the callback');
}
