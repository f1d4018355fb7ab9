import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { type AuditEventInput, AuditRecorder, TransparencyLog } from '../src/audit/index.js';
import { generateSignerKey } from '../src/audit/note.js';
import { systemClock } from '../src/core/clock.js';
import { IdGenerator } from '../src/core/ids.js';
import { openStore } from '../src/store/index.js';
import { type CliRun, ensureBuilt, runCli } from './support/cli.js';

function custos(args: string[], cwd: string): Promise<CliRun> {
  return runCli(args, { cwd });
}

const firstTime = Date.parse('2026-11-01T00:00:00Z');

/** Event n (1-based) at firstTime + n minutes; agents alternate, odd events mention alice. */
function eventInput(n: number): AuditEventInput {
  return {
    time: firstTime + n * 60_000,
    agentId: n % 2 === 0 ? 'agt_even' : 'agt_odd',
    owner: n % 2 === 0 ? 'bob@example.com' : 'carol@example.com',
    taskId: null,
    method: 'tools/call',
    server: 'files',
    target: 'read_file',
    argsHash: null,
    effect: 'allow',
    policyIds: ['files:read'],
    reasons: [],
    outcome: 'executed',
    errorCode: null,
    latencyUs: 120,
    traceId: null,
    arguments: { path: `/reports/${n}.txt` },
    reasoning: n % 2 === 1 ? `alice@example.com asked for report ${n}` : `report ${n} is needed`,
    result: { content: [{ type: 'text', text: `report ${n}` }] },
  };
}

/** Replace one field of the leaf on line `seq` of events.jsonl in a copy of the bundle. */
function tamperedCopy(
  bundle: string,
  to: string,
  seq: number,
  edit: (event: Record<string, unknown>) => void,
) {
  cpSync(bundle, to, { recursive: true });
  const file = join(to, 'events.jsonl');
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  const index = lines.findIndex((line) => (JSON.parse(line) as { leaf: { seq: number } }).leaf.seq === seq);
  const event = JSON.parse(lines[index]!) as Record<string, unknown>;
  edit(event);
  lines[index] = JSON.stringify(event);
  writeFileSync(file, `${lines.join('\n')}\n`);
}

describe('custos audit (built CLI against a temp configuration)', () => {
  let home: string;
  let dbFile: string;
  let verifierKey: string;
  const run = (...args: string[]) => custos(['--config', join(home, 'custos.yaml'), ...args], home);

  beforeAll(async () => {
    ensureBuilt();
    home = mkdtempSync(join(tmpdir(), 'custos-audit-cli-'));
    mkdirSync(join(home, 'policies'));
    writeFileSync(join(home, 'policies', 'none.cedar'), '');
    dbFile = join(home, 'data', 'custos.db');
    writeFileSync(
      join(home, 'custos.yaml'),
      stringify({ storage: { url: `sqlite:${dbFile}` }, policies: './policies', servers: {} }),
    );
    // Record 30 events the way the gateway does, then close: the log signs a final checkpoint.
    const store = await openStore(`sqlite:${dbFile}`);
    const log = await TransparencyLog.open(store);
    const recorder = new AuditRecorder(store, log, new IdGenerator(systemClock), { commitDelayMs: 0 });
    await Promise.all(Array.from({ length: 30 }, (_, i) => recorder.record(eventInput(i + 1))));
    await recorder.close();
    await log.close();
    verifierKey = log.verifierKey;
    await store.close();
  }, 120_000);
  afterAll(() => {
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it('key prints the verifier key of the log', async () => {
    const key = await run('audit', 'key');
    expect(key.code, key.stderr).toBe(0);
    expect(key.stdout.trim()).toBe(verifierKey);
  });

  it('export writes a bundle of every event that verify accepts offline, with its own key or a given one', async () => {
    const out = join(home, 'all');
    const exported = await run('audit', 'export', '--out', out, '--json');
    expect(exported.code, exported.stderr).toBe(0);
    expect(JSON.parse(exported.stdout)).toMatchObject({ fromSeq: 1, toSeq: 30, events: 30, treeSize: 30 });
    // Offline: the database is moved away, so only the directory is available.
    const hidden = `${dbFile}.away`;
    cpSync(dbFile, hidden);
    rmSync(dbFile);
    try {
      const verified = await custos(['audit', 'verify', out], tmpdir());
      expect(verified.code, verified.stderr).toBe(0);
      expect(verified.stdout).toContain('30 events');
      const keyFile = join(home, 'published.key');
      writeFileSync(keyFile, `${verifierKey}\n`);
      expect((await custos(['audit', 'verify', out, '--key', keyFile], tmpdir())).code).toBe(0);
      expect((await custos(['audit', 'verify', out, '--key', verifierKey], tmpdir())).code).toBe(0);
    } finally {
      cpSync(hidden, dbFile);
      rmSync(hidden);
    }
  });

  it('export --from/--to takes ISO 8601 times and exports the events in between', async () => {
    const out = join(home, 'range');
    const exported = await run(
      'audit',
      'export',
      '--from',
      new Date(firstTime + 10 * 60_000).toISOString(),
      '--to',
      new Date(firstTime + 20 * 60_000).toISOString(),
      '--out',
      out,
      '--json',
    );
    expect(exported.code, exported.stderr).toBe(0);
    expect(JSON.parse(exported.stdout)).toMatchObject({ fromSeq: 10, toSeq: 20, events: 11 });
    expect((await run('audit', 'verify', out)).code).toBe(0);
    const bad = await run('audit', 'export', '--from', 'yesterday', '--out', join(home, 'never'));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--from');
  });

  it('verify exits 1 naming the event when one event line of a bundle is edited', async () => {
    const tampered = join(home, 'tampered');
    tamperedCopy(join(home, 'all'), tampered, 7, (event) => {
      (event.leaf as Record<string, unknown>).target = 'delete_file';
    });
    const verified = await run('audit', 'verify', tampered);
    expect(verified.code).toBe(1);
    expect(verified.stderr).toMatch(/^custos: verification failed: .*seq 7\b/m);
  });

  it('verify exits 1 when the content of an event is edited, or with another log key', async () => {
    const tampered = join(home, 'tampered-content');
    tamperedCopy(join(home, 'all'), tampered, 12, (event) => {
      (event.content as Record<string, unknown>).arguments = '{"path":"/etc/shadow"}';
    });
    const content = await run('audit', 'verify', tampered);
    expect(content.code).toBe(1);
    expect(content.stderr).toMatch(/seq 12\b.*arguments/);

    const other = mkdtempSync(join(tmpdir(), 'custos-audit-other-'));
    try {
      const store = await openStore(`sqlite:${join(other, 'other.db')}`);
      const otherLog = await TransparencyLog.open(store);
      await otherLog.close();
      await store.close();
      const wrongKey = await run('audit', 'verify', join(home, 'all'), '--key', otherLog.verifierKey);
      expect(wrongKey.code).toBe(1);
      expect(wrongKey.stderr).toMatch(/checkpoint|manifest/);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('verify exits 1 naming the first problem precisely for each kind of tampering with a real export', async () => {
    const bundle = join(home, 'all');
    const otherKey = generateSignerKey(verifierKey.split('+')[0]!).verifierKey;
    const editLines = (edit: (lines: string[]) => string[]) => (dir: string) => {
      const file = join(dir, 'events.jsonl');
      writeFileSync(file, `${edit(readFileSync(file, 'utf8').trimEnd().split('\n')).join('\n')}\n`);
    };
    const editFile = (name: string, edit: (text: string) => string) => (dir: string) => {
      writeFileSync(join(dir, name), edit(readFileSync(join(dir, name), 'utf8')));
    };
    const forged = (line: string, seq: number) =>
      line.replace(/"seq":\d+/, `"seq":${seq}`).replace(/"id":"evt_\w+"/, '"id":"evt_forged"');
    const cases: Array<[string, (dir: string) => void, string, string[]?]> = [
      [
        'modified event',
        editLines((ls) =>
          ls.map((l, i) => (i === 6 ? l.replace('"target":"read_file"', '"target":"delete_file"') : l)),
        ),
        'event seq 7: leaf hash does not match its fields',
      ],
      [
        'modified content',
        editLines((ls) => ls.map((l, i) => (i === 11 ? l.replace('/reports/12.txt', '/etc/shadow') : l))),
        "event seq 12: arguments do not match the leaf's salted commitment",
      ],
      ['removed event', editLines((ls) => ls.filter((_, i) => i !== 8)), 'event seq 9 missing'],
      ['removed last event', editLines((ls) => ls.slice(0, -1)), 'event seq 30 missing'],
      [
        'reordered events',
        editLines((ls) => [...ls.slice(0, 3), ls[4]!, ls[3]!, ...ls.slice(5)]),
        'events out of order at line 5: seq 4 after seq 5',
      ],
      [
        'inserted copy of an event',
        editLines((ls) => [...ls.slice(0, 6), ls[5]!, ...ls.slice(6)]),
        'event inserted at line 7: seq 6 repeats the line before',
      ],
      [
        'inserted copy of an earlier event',
        editLines((ls) => [...ls.slice(0, 20), ls[2]!, ...ls.slice(20)]),
        'event inserted at line 21: seq 3 was already seen',
      ],
      [
        'forged event inserted before the genuine one',
        editLines((ls) => [
          ...ls.slice(0, 9),
          ls[9]!.replace('"target":"read_file"', '"target":"delete_file"'),
          ...ls.slice(9),
        ]),
        'event inserted at line 10: seq 10 does not match its leaf, and line 11 is the event seq 10 that does',
      ],
      [
        'inserted new event',
        editLines((ls) => [...ls, forged(ls.at(-1)!, 31)]),
        'event inserted at line 31: seq 31 is outside the signed export range 1..30',
      ],
      [
        'altered checkpoint',
        editFile('checkpoints.txt', (text) => text.replace(/\n30\n/, '\n29\n')),
        'checkpoint 1: bad signature',
      ],
      [
        'altered leaf hash',
        editFile('leaves.txt', (text) => text.replace(/^[0-9a-f]{64}/m, '0'.repeat(64))),
        'checkpoint 1: root hash does not match the leaves in leaves.txt (size 30)',
      ],
      [
        'altered manifest',
        editFile('manifest.txt', (text) => text.replace('events 1 30', 'events 1 29')),
        'manifest.txt: bad signature',
      ],
      ['removed events file', (dir) => rmSync(join(dir, 'events.jsonl')), 'events.jsonl: missing'],
      [
        'wrong key',
        () => {},
        `checkpoint 1: not signed by the verifier key ${verifierKey.split('+')[0]}`,
        ['--key', otherKey],
      ],
    ];
    for (const [kind, change, problem, extra] of cases) {
      const dir = join(home, `tampered-${kind.replaceAll(' ', '-')}`);
      cpSync(bundle, dir, { recursive: true });
      change(dir);
      // As an auditor would: only the directory and the published key, from elsewhere.
      const result = await custos(['audit', 'verify', dir, ...(extra ?? ['--key', verifierKey])], tmpdir());
      expect(result.code, `${kind}: ${result.stderr}`).toBe(1);
      expect(result.stderr, kind).toContain(`custos: verification failed: ${problem}`);
    }
  }, 120_000);

  it('verify --live passes on the stored log and names the row edited in the database', async () => {
    const live = await run('audit', 'verify', '--live');
    expect(live.code, live.stderr).toBe(0);
    expect(live.stdout).toContain('30 events');
    const store = await openStore(`sqlite:${dbFile}`);
    try {
      await store.db
        .updateTable('audit_events')
        .set({ target: 'delete_file' })
        .where('seq', '=', 3)
        .execute();
      const tampered = await run('audit', 'verify', '--live');
      expect(tampered.code).toBe(1);
      expect(tampered.stderr).toContain(
        'event seq 3: the audit_events row does not match its leaf hash (a committed field was changed)',
      );
    } finally {
      await store.db.updateTable('audit_events').set({ target: 'read_file' }).where('seq', '=', 3).execute();
      await store.close();
    }
  });

  it('erase-content by agent or subject deletes plaintext and the log and exports still verify', async () => {
    const byAgent = await run('audit', 'erase-content', '--agent', 'agt_even');
    expect(byAgent.code, byAgent.stderr).toBe(0);
    expect(byAgent.stdout).toContain('erased the content of 15 events');
    const bySubject = await run('audit', 'erase-content', '--subject', 'alice@example.com');
    expect(bySubject.code, bySubject.stderr).toBe(0);
    expect(bySubject.stdout).toContain('erased the content of 15 events');
    expect((await run('audit', 'verify', '--live')).code).toBe(0);
    const out = join(home, 'erased');
    const exported = await run('audit', 'export', '--out', out, '--json');
    expect(JSON.parse(exported.stdout)).toMatchObject({ events: 30, erased: 30 });
    const verified = await run('audit', 'verify', out, '--json');
    expect(verified.code, verified.stdout).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, events: 30, erased: 30 });
    expect(readFileSync(join(out, 'events.jsonl'), 'utf8')).not.toContain('alice@example.com');
  }, 120_000);

  it('bad usage exits 2', async () => {
    expect((await run('audit', 'erase-content')).code).toBe(2);
    expect((await run('audit', 'erase-content', '--agent', 'a', '--subject', 's')).code).toBe(2);
    expect((await run('audit', 'verify')).code).toBe(2);
    expect((await run('audit', 'verify', join(home, 'all'), '--live')).code).toBe(2);
    expect(existsSync(join(home, 'never'))).toBe(false);
  }, 120_000);
});
