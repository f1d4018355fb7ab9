import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Client,
  createPrivateKeyJwtAuth,
  DpopSession,
  type FetchLike,
  StreamableHTTPClientTransport,
  withDpop,
} from '@modelcontextprotocol/client';
import { decodeJwt, exportJWK, generateKeyPair, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAgent } from './support/agents.js';
import { connectThroughBridge } from './support/cli.js';
import { everythingServer, startTestCustos, type TestCustos } from './support/custos.js';

/**
 * The agent the issue asks for: it authenticates with private_key_jwt (no secret anywhere),
 * its tokens are DPoP-bound, and it uses the official MCP SDK's own pieces: the
 * private_key_jwt helper, DpopSession for proofs and withDpop on the transport's fetch.
 * (The SDK's OAuthClientProvider flow cannot be used: its metadata schema insists on an
 * authorization_endpoint, which Custos, having none, rightly omits per RFC 8414 §2.)
 */
async function secretlessToken(
  url: string,
  clientId: string,
  privateJwk: JWK,
  session: DpopSession,
): Promise<{ access_token: string; token_type: string }> {
  const tokenUrl = `${url}/oauth/token`;
  const params = new URLSearchParams({ grant_type: 'client_credentials' });
  const addClientAuth = createPrivateKeyJwtAuth({
    issuer: clientId,
    subject: clientId,
    privateKey: privateJwk as Record<string, unknown>,
    alg: 'ES256',
    audience: url,
    lifetimeSeconds: 60,
  });
  await addClientAuth(new Headers(), params, tokenUrl, undefined);
  const res = await fetch(tokenUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      dpop: await session.buildProof({ htm: 'POST', htu: tokenUrl }),
    },
    body: params,
  });
  const body = (await res.json()) as { access_token: string; token_type: string };
  if (res.status !== 200) throw new Error(`token request failed: ${JSON.stringify(body)}`);
  return body;
}

/** What crossed the wire on /mcp requests: the Authorization and DPoP headers, per request. */
interface Captured {
  authorization: string | null;
  dpop: string | null;
  body: string | undefined;
}

describe('secretless agents: private_key_jwt and DPoP end to end', () => {
  let t: TestCustos;
  let agentId: string;
  let privateJwk: JWK;
  const captured: Captured[] = [];

  beforeAll(async () => {
    t = await startTestCustos({
      servers: { everything: everythingServer },
      policies: { 'all.cedar': '@id("dpop:all")\npermit (principal, action, resource);\n' },
      agents: [{ name: 'keyed' }],
    });
    agentId = (t.agents.get('keyed') as { clientId: string }).clientId;
    const pair = await generateKeyPair('ES256', { extractable: true });
    privateJwk = { ...(await exportJWK(pair.privateKey)), alg: 'ES256' };
    await t.admin(`/api/v1/agents/keyed/keys`, {
      method: 'POST',
      body: { jwk: await exportJWK(pair.publicKey) },
    });
    const { agent } = await t.admin<{ agent: { requireDpop: boolean } }>('/api/v1/agents/keyed/dpop', {
      method: 'POST',
      body: { require: true },
    });
    expect(agent.requireDpop).toBe(true);
  });
  afterAll(() => t?.close());

  function recordingFetch(): FetchLike {
    return async (input, init) => {
      const headers = new Headers(init?.headers);
      if (String(input).includes('/mcp')) {
        captured.push({
          authorization: headers.get('authorization'),
          dpop: headers.get('dpop'),
          body: typeof init?.body === 'string' ? init.body : undefined,
        });
      }
      return fetch(input, init);
    };
  }

  it('the SDK client gets a DPoP-bound token with private_key_jwt and calls tools; a stolen token is useless', async () => {
    const session = await DpopSession.create({ alg: 'ES256' });
    const tokens = await secretlessToken(t.url, agentId, privateJwk, session);
    const client = new Client({ name: 'secretless-agent', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${t.url}/mcp`), {
        authProvider: { token: async () => tokens.access_token },
        fetch: withDpop(session, () => tokens.access_token)(recordingFetch()),
      }),
    );
    const result = await client.callTool({ name: 'echo', arguments: { message: 'bound' } });
    expect(result.content).toEqual([{ type: 'text', text: 'Echo: bound' }]);

    expect(tokens.token_type).toBe('DPoP');
    const stolen = tokens.access_token;
    expect(decodeJwt(stolen).cnf).toEqual({ jkt: session.thumbprint });
    const last = captured.at(-1) as Captured;
    expect(last.authorization).toBe(`DPoP ${stolen}`);
    expect(last.dpop).toMatch(/^ey/);

    // 1. The thief presents the token as a Bearer token from another client.
    await expect(connectAgent('sdk2-legacy', `${t.url}/mcp`, stolen)).rejects.toThrow();
    // 2. The thief signs its own proofs: the key is not the one the token is bound to.
    const thief = await DpopSession.create({ alg: 'ES256' });
    const thiefClient = new Client({ name: 'thief', version: '1.0.0' });
    await expect(
      thiefClient.connect(
        new StreamableHTTPClientTransport(new URL(`${t.url}/mcp`), {
          authProvider: { token: async () => stolen },
          fetch: withDpop(thief, () => stolen)(fetch),
        }),
      ),
    ).rejects.toThrow();
    // 3. The thief replays a request exactly as captured, proof included.
    const replay = await fetch(`${t.url}/mcp`, {
      method: 'POST',
      headers: {
        authorization: last.authorization as string,
        dpop: last.dpop as string,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: last.body ?? '{}',
    });
    expect(replay.status).toBe(401);
    expect(replay.headers.get('www-authenticate')).toContain('DPoP error="invalid_dpop_proof"');
    // 4. The bearer attempt got the answer RFC 9449 §7.1 asks for.
    const asBearer = await fetch(`${t.url}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stolen}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(asBearer.status).toBe(401);
    expect(asBearer.headers.get('www-authenticate')).toMatch(
      /Bearer resource_metadata="[^"]+", error="invalid_token"/,
    );

    // The agent itself carries on.
    const again = await client.callTool({ name: 'echo', arguments: { message: 'still mine' } });
    expect(again.content).toEqual([{ type: 'text', text: 'Echo: still mine' }]);
    await client.close();
  });

  it('the token endpoint refuses the agent a bearer token while it requires DPoP', async () => {
    const secret = (t.agents.get('keyed') as { clientSecret: string }).clientSecret;
    const res = await fetch(`${t.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: agentId,
        client_secret: secret,
      }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_dpop_proof' });
    const metadata = (await (await fetch(`${t.url}/.well-known/oauth-authorization-server`)).json()) as {
      dpop_signing_alg_values_supported: string[];
    };
    expect(metadata.dpop_signing_alg_values_supported).toContain('ES256');
  });

  it('custos connect --key-file --dpop carries a stdio client with no secret', async () => {
    const keyFile = join(mkdtempSync(join(tmpdir(), 'custos-dpop-')), 'agent.jwk');
    writeFileSync(keyFile, JSON.stringify(privateJwk), { mode: 0o600 });
    const client = await connectThroughBridge(
      'stdio-secretless',
      ['--url', `${t.url}/mcp`, '--client-id', agentId, '--key-file', keyFile, '--dpop'],
      { CUSTOS_CLIENT_SECRET: '' },
    );
    const result = await client.callTool({ name: 'echo', arguments: { message: 'bridged and bound' } });
    expect(result.content).toEqual([{ type: 'text', text: 'Echo: bridged and bound' }]);
    await client.close();
  }, 60_000);
});
