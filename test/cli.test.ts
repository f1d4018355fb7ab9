import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { connectAgent, textOf } from './support/agents.js';
import { bin, ensureBuilt, runCliJson } from './support/cli.js';
import { eventually, everythingEntry } from './support/custos.js';

/** Run the built CLI to completion. */
function custos(args: string[], cwd: string) {
  return runCliJson(args, { cwd });
}

const policies = {
  'cli.cedar': `
@id("cli:everything")
permit (principal, action, resource in Server::"everything")
when { ["cfg-agent", "policy-bot"].contains(principal.name) };

@id("cli:no-sum")
forbid (principal, action == Action::"call_tool", resource in Server::"everything")
when { resource.name == "get-sum" };
`,
};

describe('the custos CLI (built, run as a process)', () => {
  let home: string;
  let config: string;

  beforeAll(() => {
    ensureBuilt();
    home = mkdtempSync(join(tmpdir(), 'custos-cli-'));
    mkdirSync(join(home, 'policies'));
    for (const [file, text] of Object.entries(policies)) writeFileSync(join(home, 'policies', file), text);
    config = join(home, 'custos.yaml');
    writeFileSync(
      config,
      stringify({
        listen: { host: '127.0.0.1', port: 0 },
        servers: { everything: { command: process.execPath, args: [everythingEntry, 'stdio'] } },
        policies: './policies',
        agents: [
          { name: 'cfg-agent', owner: 'carol@example.com', purpose: 'end-to-end test of custos start' },
        ],
      }),
    );
  }, 120_000);
  afterAll(() => {
    if (home) rmSync(home, { recursive: true, force: true });
  });

  const run = (...args: string[]) => custos(['--config', config, ...args], home);

  describe('agent lifecycle', () => {
    it('add prints the client secret once and exits 0', async () => {
      const added = await run(
        'agent',
        'add',
        'bot',
        '--owner',
        'dave@example.com',
        '--purpose',
        'tests the CLI',
        '--json',
      );
      expect(added.code).toBe(0);
      expect(added.json).toMatchObject({
        agent: { name: 'bot', owner: 'dave@example.com', status: 'active' },
        clientId: expect.any(String),
        clientSecret: expect.any(String),
      });
      const again = await run(
        'agent',
        'add',
        'bot',
        '--owner',
        'dave@example.com',
        '--purpose',
        'twice',
        '--json',
      );
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('bot');
    });

    it('list and show find the agent', async () => {
      const list = await run('agent', 'list', '--json');
      expect(list.code).toBe(0);
      expect((list.json.agents as Array<{ name: string }>).map((a) => a.name)).toContain('bot');
      const show = await run('agent', 'show', 'bot', '--json');
      expect(show.code).toBe(0);
      expect(show.json).toMatchObject({ agent: { name: 'bot', purpose: 'tests the CLI' } });
      expect(JSON.stringify(show.json)).not.toMatch(/secret/i);
      const table = await run('agent', 'list');
      expect(table.code).toBe(0);
      expect(table.stdout).toMatch(/NAME/);
      expect(table.stdout).toContain('bot');
    });

    it('suspend, resume and offboard change the status', async () => {
      for (const [action, status] of [
        ['suspend', 'suspended'],
        ['resume', 'active'],
        ['offboard', 'offboarded'],
      ] as const) {
        const changed = await run('agent', action, 'bot', '--json');
        expect(changed.code, changed.stderr).toBe(0);
        expect(changed.json).toMatchObject({ agent: { name: 'bot', status } });
      }
      const listed = await run('agent', 'list', '--status', 'offboarded', '--json');
      expect((listed.json.agents as Array<{ name: string }>).map((a) => a.name)).toEqual(['bot']);
    });

    it('bad usage exits 2, a failed lookup exits 1', async () => {
      const missing = await run('agent', 'add', 'nobody-owns-me', '--purpose', 'no owner');
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('--owner');
      expect((await run('agent', 'frobnicate')).code).toBe(2);
      expect((await run('no-such-command')).code).toBe(2);
      const unknown = await run('agent', 'show', 'ghost', '--json');
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain('ghost');
    });
  });

  describe('policy', () => {
    it('check passes a valid directory and fails an invalid one with the problem', async () => {
      const ok = await run('policy', 'check', '--json');
      expect(ok.code).toBe(0);
      expect(ok.json).toMatchObject({ ok: true, policies: ['cli:everything', 'cli:no-sum'] });
      const bad = join(home, 'bad-policies');
      mkdirSync(bad, { recursive: true });
      writeFileSync(join(bad, 'broken.cedar'), 'permit (principal, action == Action::"fly", resource);');
      const failed = await run('policy', 'check', '--dir', bad, '--json');
      expect(failed.code).toBe(1);
      expect(failed.json).toMatchObject({
        ok: false,
        problems: expect.arrayContaining([
          expect.objectContaining({ file: 'broken.cedar', line: 1, message: expect.stringContaining('fly') }),
        ]),
      });
      const text = await run('policy', 'check', '--dir', bad);
      expect(text.code).toBe(1);
      expect(text.stderr).toContain('broken.cedar');
    });

    it('test answers allow and deny with the deciding policy ids, calling nothing', async () => {
      const added = await run(
        'agent',
        'add',
        'policy-bot',
        '--owner',
        'erin@example.com',
        '--purpose',
        'policy tests',
      );
      expect(added.code).toBe(0);
      const allow = await run(
        'policy',
        'test',
        '--agent',
        'policy-bot',
        '--server',
        'everything',
        '--tool',
        'echo',
        '--args',
        '{"message":"hi"}',
        '--json',
      );
      expect(allow.code, allow.stderr).toBe(0);
      expect(allow.json).toMatchObject({ decision: { effect: 'allow', policyIds: ['cli:everything'] } });
      const deny = await run(
        'policy',
        'test',
        '--agent',
        'policy-bot',
        '--server',
        'everything',
        '--tool',
        'get-sum',
        '--json',
      );
      expect(deny.code).toBe(1);
      expect(deny.json).toMatchObject({ decision: { effect: 'deny', policyIds: ['cli:no-sum'] } });
      const text = await run(
        'policy',
        'test',
        '--agent',
        'policy-bot',
        '--server',
        'everything',
        '--tool',
        'get-sum',
      );
      expect(text.code).toBe(1);
      expect(text.stdout).toContain('DENY');
      expect(text.stdout).toContain('cli:no-sum');
      const badArgs = await run(
        'policy',
        'test',
        '--agent',
        'policy-bot',
        '--server',
        'everything',
        '--tool',
        'echo',
        '--args',
        '{oops',
      );
      expect(badArgs.code).toBe(2);
    });
  });

  describe('configuration errors', () => {
    it.each([
      ['an unknown key', { listen: { host: '127.0.0.1', port: 0 }, bogus: true }, 'bogus'],
      ['an unknown server key', { servers: { s: { command: 'x', colour: 'red' } } }, 'servers.s'],
      [
        'an agent without an owner',
        { agents: [{ name: 'orphan', purpose: 'has no owner' }] },
        'agents.0.owner',
      ],
    ])('a configuration with %s stops start with the key path', async (_label, body, path) => {
      const file = join(home, `bad-${path}.yaml`);
      writeFileSync(file, stringify(body));
      const result = await custos(['--config', file, 'start'], home);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain(path);
      expect(result.stderr).toContain('config_invalid');
    });
  });

  describe('custos start, with lifecycle commands going through the running server', () => {
    let server: ChildProcess | undefined;
    let url = '';
    let credentials = { clientId: '', clientSecret: '' };

    beforeAll(async () => {
      const child = spawn(process.execPath, [bin, '--config', config, 'start'], {
        cwd: home,
        env: { ...process.env, CUSTOS_LOG_LEVEL: 'warn' },
      });
      server = child;
      let out = '';
      child.stdout?.on('data', (d) => {
        out += d;
      });
      child.stderr?.on('data', (d) => {
        out += d;
      });
      await eventually(
        () => /Custos listening on (\S+)/.test(out) || child.exitCode !== null,
        'custos start',
        30_000,
      );
      const listening = out.match(/Custos listening on (\S+)/);
      if (!listening) throw new Error(`custos start failed:\n${out}`);
      url = listening[1] as string;
      const created = out.match(/created agent cfg-agent: client_id (\S+) client_secret (\S+)/);
      if (created) credentials = { clientId: created[1] as string, clientSecret: created[2] as string };
    }, 60_000);

    afterAll(async () => {
      if (server && server.exitCode === null) {
        const exited = new Promise((r) => server?.once('exit', r));
        server.kill('SIGTERM');
        await exited;
      }
    });

    it("suspending via the CLI stops the agent's very next call", async () => {
      expect(credentials.clientId, 'custos start prints the agents it creates').not.toBe('');
      const tokenResponse = await fetch(`${url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: credentials.clientId,
          client_secret: credentials.clientSecret,
        }),
      });
      const { access_token: token } = (await tokenResponse.json()) as { access_token: string };
      const agent = await connectAgent('sdk2-legacy', `${url}/mcp`, token);
      try {
        expect(textOf(await agent.callTool('echo', { message: 'before' }))).toBe('Echo: before');
        const refused = await agent.callTool('get-sum', { a: 1, b: 2 });
        expect(textOf(refused)).toContain('cli:no-sum');
        const suspended = await run('agent', 'suspend', 'cfg-agent', '--json');
        expect(suspended.code, suspended.stderr).toBe(0);
        expect(suspended.json).toMatchObject({ agent: { status: 'suspended' } });
        await expect(agent.callTool('echo', { message: 'after' })).rejects.toThrow();
      } finally {
        await agent.close().catch(() => {});
      }
    });

    it('audit tail and show read the calls, by agent, while the server runs', async () => {
      const tail = await run('audit', 'tail', '--agent', 'cfg-agent', '--json');
      expect(tail.code, tail.stderr).toBe(0);
      const events = tail.json.events as Array<{
        id: string;
        method: string;
        target: string;
        outcome: string;
        policyIds: string[];
      }>;
      const calls = events.filter((e) => e.method === 'tools/call');
      expect(calls.map((e) => [e.target, e.outcome])).toEqual([
        ['echo', 'executed'],
        ['get-sum', 'denied'],
      ]);
      const denied = calls[1] as (typeof calls)[number];
      const show = await run('audit', 'show', denied.id, '--json');
      expect(show.code).toBe(0);
      expect(show.json).toMatchObject({
        event: { id: denied.id, policyIds: ['cli:no-sum'], arguments: { a: 1, b: 2 } },
      });
      const text = await run('audit', 'show', denied.id);
      expect(text.stdout).toContain('cli:no-sum');
      const table = await run('audit', 'tail', '--agent', 'cfg-agent');
      expect(table.stdout).toContain('get-sum');
      const missing = await run('audit', 'show', 'evt_nope');
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain('not_found');
    });

    it('stops cleanly on SIGTERM', async () => {
      const child = server as ChildProcess;
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(existsSync(join(home, '.custos', 'server.json'))).toBe(false);
      // Without a server the CLI works on the store directly.
      const resumed = await run('agent', 'resume', 'cfg-agent', '--json');
      expect(resumed.code).toBe(0);
      expect(resumed.json).toMatchObject({ agent: { status: 'active' } });
    });
  });

  describe('custos demo', () => {
    let demo: ChildProcess | undefined;
    let data = '';

    afterAll(async () => {
      if (demo && demo.exitCode === null) {
        const exited = new Promise((r) => demo?.once('exit', r));
        demo.kill('SIGTERM');
        await exited;
      }
    });

    it('serves both demo servers to real MCP clients, each agent under its own policy', async () => {
      data = join(home, 'demo-data');
      const child = spawn(process.execPath, [bin, 'demo', '--data', data, '--port', '0'], {
        cwd: home,
        env: { ...process.env, CUSTOS_LOG_LEVEL: 'warn' },
      });
      demo = child;
      let out = '';
      child.stdout?.on('data', (d) => {
        out += d;
      });
      child.stderr?.on('data', (d) => {
        out += d;
      });
      const file = join(data, 'demo', 'credentials.json');
      await eventually(() => existsSync(file) || child.exitCode !== null, 'the demo credentials', 30_000);
      expect(child.exitCode, out).toBeNull();
      const credentials = JSON.parse(readFileSync(file, 'utf8')) as {
        url: string;
        agents: Array<{ name: string; clientId: string; clientSecret: string }>;
      };
      await eventually(() => out.includes('Custos demo is running'), 'the demo banner');
      expect(out).toContain('node demo/client.js');
      // The demo's console login works with the printed password.
      const consoleLogin = (
        JSON.parse(readFileSync(file, 'utf8')) as { console: { email: string; password: string } }
      ).console;
      expect(out).toContain(consoleLogin.password);
      const login = await fetch(`${credentials.url}/api/v1/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-custos-csrf': '1' },
        body: JSON.stringify(consoleLogin),
      });
      expect(login.status).toBe(200);
      const sandbox = join(data, 'demo', 'sandbox');
      const tokenOf = async (name: string) => {
        const a = credentials.agents.find((x) => x.name === name);
        const res = await fetch(`${credentials.url}/oauth/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            grant_type: 'client_credentials',
            client_id: a?.clientId ?? '',
            client_secret: a?.clientSecret ?? '',
          }),
        });
        return ((await res.json()) as { access_token: string }).access_token;
      };

      const reader = await connectAgent(
        'sdk2-legacy',
        `${credentials.url}/mcp`,
        await tokenOf('demo-reader'),
      );
      try {
        const names = (await reader.listTools()).map((x) => x.name);
        expect(names).toEqual(expect.arrayContaining(['read_text_file', 'echo']));
        expect(names).not.toContain('write_file');
        const welcome = await reader.callTool('read_text_file', { path: join(sandbox, 'welcome.txt') });
        expect(textOf(welcome)).toContain('Welcome to the Custos demo sandbox');
        expect(textOf(await reader.callTool('echo', { message: 'demo' }))).toBe('Echo: demo');
        const write = await reader.callTool('write_file', { path: join(sandbox, 'x.txt'), content: 'x' });
        expect(write.isError).toBe(true);
        expect(textOf(write)).toContain('policy_denied');
      } finally {
        await reader.close();
      }

      const writer = await connectAgent(
        'sdk2-modern',
        `${credentials.url}/mcp`,
        await tokenOf('demo-writer'),
      );
      try {
        const inside = await writer.callTool('write_file', {
          path: join(sandbox, 'note.txt'),
          content: 'hi\n',
        });
        expect(inside.isError).toBeFalsy();
        expect(readFileSync(join(sandbox, 'note.txt'), 'utf8')).toBe('hi\n');
        const outside = await writer.callTool('write_file', { path: join(data, 'escape.txt'), content: 'x' });
        expect(textOf(outside)).toContain('demo-writer:writes-stay-in-sandbox');
        expect(existsSync(join(data, 'escape.txt'))).toBe(false);
      } finally {
        await writer.close();
      }
    });
  });
});
