import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { type AgentClient, connectAgent } from './support/agents.js';
import { type CliRun, ensureBuilt, runCli } from './support/cli.js';
import { eventually, startTestCustos, type TestCustos } from './support/custos.js';

const rugPull = resolve('test/support/rug-pull-server.mjs');

function custos(args: string[], cwd: string): Promise<CliRun> {
  return runCli(args, { cwd });
}

// Each step spawns the real CLI and a real upstream; on a loaded 2-core machine that takes seconds.
describe('a rug pull in a real upstream is blocked until approved', { timeout: 120_000 }, () => {
  let home: string;
  let state: string;
  let lockfile: string;
  let configFile: string;
  let t: TestCustos;
  let agent: AgentClient;
  const names = async () => (await agent.listTools()).map((x) => x.name).sort();

  beforeAll(async () => {
    ensureBuilt();
    home = mkdtempSync(join(tmpdir(), 'custos-rugpull-'));
    state = join(home, 'state');
    lockfile = join(home, 'custos.lock.json');
    writeFileSync(state, 'honest');
    const servers = { weather: { command: process.execPath, args: [rugPull, state] } };
    configFile = join(home, 'custos.yaml');
    writeFileSync(
      configFile,
      stringify({
        servers,
        storage: { url: `sqlite:${join(home, 'cli.db')}` },
        vet: { lockfile: './custos.lock.json' },
      }),
    );
    const pinned = await custos(['--config', configFile, 'vet', 'pin', '--json'], home);
    expect(pinned.code, pinned.stderr).toBe(0);
    t = await startTestCustos({
      servers,
      policies: { 'all.cedar': '@id("all") permit (principal, action, resource);' },
      agents: [{ name: 'forecaster' }],
      extra: { vet: { lockfile } },
    });
    agent = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('forecaster'));
  }, 60_000);

  afterAll(async () => {
    await agent?.close();
    await t?.close();
    rmSync(home, { recursive: true, force: true });
  });

  const catalogDescription = () =>
    String(
      t.custos.upstreams
        .get('weather')
        ?.catalog()
        ?.tools.find((x) => x.name === 'get_weather')?.description,
    );

  const pinEvents = () =>
    t.custos.store.db
      .selectFrom('audit_events')
      .select(['owner', 'server', 'args_hash', 'reasons'])
      .where('method', '=', 'vet/pins')
      .orderBy('seq')
      .execute();

  it('records the pins in force at start in the audit log', async () => {
    const events = await pinEvents();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ server: 'weather', args_hash: expect.stringMatching(/^sha256:/) });
  });

  it('serves the pinned definitions', async () => {
    expect(await names()).toEqual(['get_time', 'get_weather']);
    const result = await agent.callTool('get_weather', { city: 'Oslo' });
    expect(result.isError).not.toBe(true);
  });

  it('treats reordered, re-serialised JSON as the same definition', async () => {
    writeFileSync(state, 'reordered');
    await eventually(
      () => Object.keys(t.custos.upstreams.get('weather')?.catalog()?.tools[0] ?? {})[0] === 'annotations',
      'the reordered listing',
    );
    expect(await names()).toEqual(['get_time', 'get_weather']);
    expect((await agent.callTool('get_weather', { city: 'Oslo' })).isError).not.toBe(true);
  });

  it('hides a changed description from agents and denies its calls with definition_drift', async () => {
    writeFileSync(state, 'poisoned');
    await eventually(() => catalogDescription().includes('IMPORTANT'), 'the poisoned listing');
    expect(await names()).toEqual(['get_time']);
    const denied = await agent.callTool('get_weather', { city: 'Oslo' });
    expect(denied.isError).toBe(true);
    expect(denied._meta?.['io.custos/denial']).toMatchObject({ code: 'definition_drift' });
    const inventory = await t.admin<{ servers: Array<{ server: string; pins: string }> }>(
      '/api/v1/vet/servers',
    );
    expect(inventory.servers.find((x) => x.server === 'weather')?.pins).toMatch(
      /^DRIFT: 1 change\(s\), withheld/,
    );
    // the unchanged tool keeps working
    expect((await agent.callTool('get_time', { zone: 'UTC' })).isError).not.toBe(true);
  });

  it('shows the diff, refuses an approval of a different diff, and serves the tool again once approved', async () => {
    const diff = await custos(['--config', configFile, 'vet', 'diff', 'weather'], home);
    expect(diff.code).toBe(1);
    expect(diff.stdout).toContain('CHANGED tool get_weather');
    expect(diff.stdout).toContain('<IMPORTANT>');
    const digest = /--digest ([0-9a-f]+)/.exec(diff.stdout)?.[1];
    expect(digest).toBeDefined();

    const wrong = await custos(
      ['--config', configFile, 'vet', 'approve', 'weather', '--digest', '0000000000000000'],
      home,
    );
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('[conflict]');
    expect(await names()).toEqual(['get_time']);

    const approved = await custos(
      [
        '--config',
        configFile,
        'vet',
        'approve',
        'weather',
        '--digest',
        String(digest),
        '--by',
        'alice@example.com',
      ],
      home,
    );
    expect(approved.code, approved.stderr).toBe(0);
    const lock = JSON.parse(readFileSync(lockfile, 'utf8'));
    expect(lock.servers.weather.pinnedBy).toBe('alice@example.com');
    await eventually(async () => (await names()).includes('get_weather'), 'the approved tool to reappear');
    expect((await agent.callTool('get_weather', { city: 'Oslo' })).isError).not.toBe(true);
    // the approval is in the tamper-evident log, with who approved it
    await eventually(async () => (await pinEvents()).length === 2, 'the approval in the audit log');
    const [before, after] = await pinEvents();
    expect(after?.owner).toBe('alice@example.com');
    expect(after?.args_hash).not.toBe(before?.args_hash);
    expect(after?.reasons).toContain('pins approved by alice@example.com');
  });
});
