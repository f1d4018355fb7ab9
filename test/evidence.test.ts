import { appendFileSync, cpSync, existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateSignerKey } from '../src/audit/note.js';
import { policySetHash } from '../src/policy/index.js';
import { connectAgent, textOf } from './support/agents.js';
import { type CliRun, ensureBuilt, runCli } from './support/cli.js';
import { everythingServer, startTestCustos, type TestCustos } from './support/custos.js';

const policies = {
  'analyst.cedar': `
@id("analyst:everything")
permit (principal, action, resource)
when { principal.name == "analyst" };

@id("analyst:no-env")
forbid (principal, action == Action::"call_tool", resource in Server::"everything")
when { principal.name == "analyst" && resource.name == "get-env" };
`,
};

interface Index {
  framework: string;
  disclaimer: string;
  controls: Array<{
    id: string;
    title: string;
    support: string;
    shows: string[];
    evidence: string[];
    gaps: string[];
  }>;
  facts: {
    events: number;
    denied: number;
    agents: number;
    suspendedAgents: number;
    offboardedAgents: number;
  };
}

// Every test spawns the CLI several times: under load each run takes seconds.
describe('custos evidence: packs from real traffic, with a signed manifest', { timeout: 240_000 }, () => {
  let t: TestCustos;
  let home: string;
  let configFile: string;
  let analystId: string;
  const run = (...args: string[]): Promise<CliRun> =>
    runCli(['--config', configFile, '--data', t.dataDir, ...args], { cwd: home });

  beforeAll(async () => {
    ensureBuilt();
    t = await startTestCustos({
      servers: { everything: everythingServer },
      policies,
      agents: [
        { name: 'analyst', owner: 'dana@example.com' },
        { name: 'intern', owner: 'erin@example.com' },
        { name: 'retired', owner: 'frank@example.com' },
      ],
    });
    home = join(t.dataDir, '..');
    analystId = t.agents.get('analyst')?.clientId ?? '';
    const agent = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('analyst'));
    try {
      expect(textOf(await agent.callTool('echo', { message: 'for the auditor' }))).toContain(
        'for the auditor',
      );
      expect((await agent.callTool('get-env', {})).isError).toBe(true);
    } finally {
      await agent.close();
    }
    await t.admin('/api/v1/agents/intern/suspend', { method: 'POST' });
    await t.admin('/api/v1/agents/retired/offboard', { method: 'POST' });
    configFile = join(home, 'custos.yaml');
    writeFileSync(
      configFile,
      stringify({ storage: { url: `sqlite:${t.dbFile}` }, policies: t.policiesDir, servers: {} }),
    );
    // A pack can be made while the server runs (read-only next to it).
    const live = await run('evidence', '--framework', 'iso42001', '--out', join(home, 'live'));
    expect(live.code, live.stderr).toBe(0);
    expect((await run('evidence', 'verify', join(home, 'live'))).code).toBe(0);
    // Stop the server: its final checkpoint covers every event.
    await t.custos.close();
  }, 120_000);
  afterAll(async () => {
    await t?.restart();
    await t?.close();
  });

  it('writes a SOC 2 pack: index, evidence from the store, a verified audit export, and a manifest that verifies', async () => {
    const out = join(home, 'soc2');
    const made = await run('evidence', '--framework', 'soc2', '--out', out, '--json');
    expect(made.code, made.stderr).toBe(0);
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as Index;
    expect(index.controls.map((c) => c.id)).toEqual([
      'CC6.1',
      'CC6.2',
      'CC6.3',
      'CC7.2',
      'CC7.3',
      'CC7.4',
      'CC8.1',
    ]);
    expect(index.disclaimer).toContain('not a certification');
    expect(readFileSync(join(out, 'index.md'), 'utf8')).toContain('partly supported');
    expect(readFileSync(join(out, 'README.md'), 'utf8')).toContain('not a certification');
    for (const c of index.controls) {
      for (const file of c.evidence) expect(existsSync(join(out, file)), `${c.id}: ${file}`).toBe(true);
      if (c.support === 'partial') expect(c.gaps.length, c.id).toBeGreaterThan(0);
    }

    const agents = JSON.parse(readFileSync(join(out, 'evidence/agents.json'), 'utf8')) as {
      agents: Array<{ name: string; owner: string; status: string; credentials: unknown[] }>;
    };
    expect(agents.agents.map((a) => [a.name, a.owner, a.status])).toEqual([
      ['analyst', 'dana@example.com', 'active'],
      ['intern', 'erin@example.com', 'suspended'],
      ['retired', 'frank@example.com', 'offboarded'],
    ]);
    expect(JSON.stringify(agents)).not.toMatch(/secret_hash|\$scrypt/);

    const denials = readFileSync(join(out, 'evidence/denials.jsonl'), 'utf8').trim().split('\n');
    expect(denials).toHaveLength(1);
    expect(JSON.parse(denials[0] ?? '{}')).toMatchObject({
      agentId: analystId,
      target: 'get-env',
      effect: 'deny',
      errorCode: 'policy_denied',
    });
    expect(JSON.parse(denials[0] ?? '{}').policyIds).toContain('analyst:no-env');

    const lifecycle = JSON.parse(readFileSync(join(out, 'evidence/lifecycle.json'), 'utf8')) as {
      suspendedOrOffboarded: Array<{ name: string; status: string; inWindow: boolean }>;
      revokedCredentials: Array<{ name: string }>;
    };
    expect(lifecycle.suspendedOrOffboarded.map((a) => [a.name, a.status, a.inWindow])).toEqual([
      ['intern', 'suspended', true],
      ['retired', 'offboarded', true],
    ]);
    expect(lifecycle.revokedCredentials.map((c) => c.name)).toEqual(['retired']);

    const policySet = JSON.parse(readFileSync(join(out, 'evidence/policy-set.json'), 'utf8')) as {
      setHash: string;
      files: Array<{ name: string }>;
      sets: unknown[];
    };
    expect(policySet.setHash).toMatch(/^[0-9a-f]{64}$/);
    expect(readFileSync(join(out, 'evidence/policies/analyst.cedar'), 'utf8')).toBe(
      policies['analyst.cedar'],
    );
    // The hash in the pack is the one the log leaves commit to, and the exact set behind it is
    // in the pack (archived by the server when it loaded the set) and hashes to its name.
    const recorded = new Set(
      readFileSync(join(out, 'evidence/audit-export/events.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { leaf: { policySetHash: string | null } }).leaf.policySetHash)
        .filter((hash) => hash !== null),
    );
    expect([...recorded]).toEqual([policySet.setHash]);
    expect(policySet.sets).toEqual([
      {
        hash: policySet.setHash,
        inForce: true,
        recorded: true,
        file: `evidence/policy-sets/${policySet.setHash}.json`,
      },
    ]);
    expect(existsSync(join(t.dataDir, 'policy-sets', `${policySet.setHash}.json`))).toBe(true);
    const archived = JSON.parse(
      readFileSync(join(out, `evidence/policy-sets/${policySet.setHash}.json`), 'utf8'),
    ) as { schema: { text: string }; policies: Array<{ id: string; text: string }> };
    expect(policySetHash(archived.schema.text, archived.policies)).toBe(policySet.setHash);
    expect(archived.policies.map((p) => p.id)).toEqual(['analyst:everything', 'analyst:no-env']);

    const verification = JSON.parse(readFileSync(join(out, 'evidence/audit-verification.json'), 'utf8')) as {
      result: { ok: boolean; events: number };
    };
    expect(verification.result.ok).toBe(true);
    expect(index.facts).toMatchObject({ denied: 1, agents: 3, suspendedAgents: 1, offboardedAgents: 1 });
    expect(index.facts.events).toBeGreaterThanOrEqual(2);
    expect(readFileSync(join(out, 'evidence/checkpoints.txt'), 'utf8')).toMatch(/^custos\.local\//);

    // The bundle inside verifies on its own, and the pack verifies with the published key.
    const bundle = await run('audit', 'verify', join(out, 'evidence/audit-export'));
    expect(bundle.code, bundle.stderr).toBe(0);
    const key = (await run('audit', 'key')).stdout.trim();
    const checked = await run('evidence', 'verify', out, '--key', key);
    expect(checked.code, checked.stderr).toBe(0);
    expect(checked.stdout).toContain('complete and unchanged');
  });

  it('fails the check, naming the file, for a modified, removed or added file, an altered manifest or another key', async () => {
    const out = join(home, 'soc2-tamper');
    expect((await run('evidence', '--framework', 'soc2', '--out', out)).code).toBe(0);
    const key = (await run('audit', 'key')).stdout.trim();
    const copy = (name: string) => {
      const dir = join(home, name);
      cpSync(out, dir, { recursive: true });
      return dir;
    };
    const check = (dir: string, ...extra: string[]) => run('evidence', 'verify', dir, '--key', key, ...extra);

    const modified = copy('t-modified');
    writeFileSync(join(modified, 'evidence/denials.jsonl'), '');
    let r = await check(modified);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'evidence/denials.jsonl: SHA-256 does not match the signed manifest (modified)',
    );

    const removed = copy('t-removed');
    unlinkSync(join(removed, 'evidence/agents.json'));
    r = await check(removed);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('evidence/agents.json: missing');

    const added = copy('t-added');
    writeFileSync(join(added, 'evidence/extra.txt'), 'slipped in\n');
    r = await check(added);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('evidence/extra.txt: not in the signed manifest (added)');

    const inBundle = copy('t-bundle');
    appendFileSync(join(inBundle, 'evidence/audit-export/leaves.txt'), '00\n');
    r = await check(inBundle);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('evidence/audit-export/leaves.txt');

    const manifest = copy('t-manifest');
    const text = readFileSync(join(manifest, 'manifest.txt'), 'utf8');
    writeFileSync(join(manifest, 'manifest.txt'), text.replace('framework soc2', 'framework iso27001'));
    r = await check(manifest);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('manifest.txt: bad signature');

    const otherKey = copy('t-key');
    // A key of the same name that did not sign it, put where key.txt was.
    const forged = generateSignerKey(key.split('+')[0] ?? '').verifierKey;
    writeFileSync(join(otherKey, 'key.txt'), `${forged}\n`);
    r = await run('evidence', 'verify', otherKey, '--json');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      ok: false,
      problem: expect.stringContaining('manifest.txt'),
    });
    // With the published key, the swapped key.txt is caught as a modified file.
    r = await check(otherKey);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('key.txt: SHA-256 does not match');
  });

  it.each([
    [
      'iso27001',
      [
        'A.5.15',
        'A.5.16',
        'A.5.17',
        'A.5.18',
        'A.5.24',
        'A.5.25',
        'A.5.26',
        'A.5.27',
        'A.5.28',
        'A.8.15',
        'A.8.16',
      ],
    ],
    ['iso42001', ['A.6.2.8']],
    ['eu-ai-act', ['Article 12', 'Article 14']],
  ])('writes the %s pack with its controls', async (framework, ids) => {
    const out = join(home, `pack-${framework}`);
    const made = await run('evidence', '--framework', framework, '--out', out);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toContain('not a certification');
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as Index;
    expect(index.framework).toBe(framework);
    expect(index.controls.map((c) => c.id)).toEqual(ids);
    expect((await run('evidence', 'verify', out)).code).toBe(0);
  });

  it('refuses bad usage with exit code 2', async () => {
    expect((await run('evidence', '--framework', 'nist', '--out', join(home, 'x'))).code).toBe(2);
    expect((await run('evidence', '--framework', 'soc2')).code).toBe(2);
    const reversed = await run(
      'evidence',
      '--framework',
      'soc2',
      '--from',
      '2026-02-01T00:00:00Z',
      '--to',
      '2026-01-01T00:00:00Z',
      '--out',
      join(home, 'y'),
    );
    expect(reversed.code).toBe(2);
    // An existing pack is never overwritten.
    const again = await run('evidence', '--framework', 'soc2', '--out', join(home, 'soc2'));
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('not an empty directory');
  });
});
