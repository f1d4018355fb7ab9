import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Custos } from '../src/app.js';
import { type DemoCredentials, runDemo } from '../src/cli/demo.js';

describe('demo: the agent reaches the tickets API through Custos without holding its key', () => {
  let home = '';
  let custos: (Custos & { demo: DemoCredentials }) | undefined;

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'custos-vault-demo-'));
    custos = await runDemo({ port: 0, dataDir: join(home, 'data'), quiet: true });
  }, 120_000);

  afterAll(async () => {
    await custos?.close();
    rmSync(home, { recursive: true, force: true });
  });

  it('the MCP client configuration and every demo file hold no value the tickets API accepts', async () => {
    const demo = custos?.demo as DemoCredentials;
    const reader = demo.agents.find((a) => a.name === 'demo-reader');
    const token = await (
      await fetch(`${demo.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: reader?.clientId ?? '',
          client_secret: reader?.clientSecret ?? '',
        }),
      })
    ).json();
    const accessToken = (token as { access_token: string }).access_token;
    // Through Custos the agent's call works: the vault's key was injected.
    const viaCustos = await fetch(demo.tickets.proxy, {
      headers: { authorization: `Bearer ${accessToken}` },
    });
    expect(viaCustos.status).toBe(200);
    expect(((await viaCustos.json()) as Array<{ title: string }>).map((t) => t.title)).toContain(
      'Printer on fire',
    );
    // Directly, the agent's own credentials (its token, its client secret) are refused upstream.
    expect(
      (
        await fetch(`${demo.tickets.upstream}/tickets`, {
          headers: { authorization: `Bearer ${accessToken}` },
        })
      ).status,
    ).toBe(401);

    // Every string in the agent's MCP client configuration, and every demo file the agent could be
    // handed, tried as the tickets API key: none works.
    const clientConfig = readFileSync(demo.mcpClientConfig, 'utf8');
    expect(clientConfig).toContain(`${demo.url}/mcp`);
    const demoDir = join(home, 'data', 'demo');
    const candidates = new Set<string>();
    const texts = [
      clientConfig,
      ...readdirSync(demoDir)
        .filter((f) => /\.(json|secret|yaml)$/.test(f))
        .map((f) => readFileSync(join(demoDir, f), 'utf8')),
    ];
    for (const text of texts)
      for (const word of text.split(/[\s"',:{}[\]]+/)) if (word.length >= 16) candidates.add(word);
    expect(candidates.size).toBeGreaterThan(2);
    for (const candidate of candidates) {
      const res = await fetch(`${demo.tickets.upstream}/tickets`, {
        headers: { authorization: `Bearer ${candidate}` },
      });
      expect(res.status, `a demo file holds a working tickets API key`).toBe(401);
    }
    // The vault holds the key, as metadata only.
    const secrets = await custos?.vault.list();
    expect(secrets?.map((s) => s.name)).toContain('tickets-api-key');
  });
});
