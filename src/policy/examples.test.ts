import { readdir, readFile } from 'node:fs/promises';
import { describe, expect, test } from 'vitest';
import { PolicyStore } from './store.js';
import { agent, call, monday10, saturday10, tool } from './test-helpers.js';
import type { PolicyResource } from './types.js';

async function storeFrom(relative: string, replace: (text: string) => string = (text) => text) {
  const dir = new URL(relative, import.meta.url);
  const names = (await readdir(dir)).filter((name) => name.endsWith('.cedar')).sort();
  const files = await Promise.all(
    names.map(async (name) => ({
      name,
      text: replace(await readFile(new URL(name, `${dir.href}/`), 'utf8')),
    })),
  );
  return PolicyStore.fromSources({ files });
}

const readOnly = { readOnlyHint: true, openWorldHint: false };
const destructive = { readOnlyHint: false, destructiveHint: true, openWorldHint: false };

describe('policies/examples', async () => {
  const store = await storeFrom('../../policies/examples');

  test('read-only agent: only tools with readOnlyHint true', () => {
    const reporting = agent('agt_reporting');
    expect(store.decide(call(reporting, tool('tickets', 'search', readOnly))).effect).toBe('allow');
    expect(store.decide(call(reporting, tool('tickets', 'close', destructive))).effect).toBe('deny');
    // No annotations: not read-only.
    expect(store.decide(call(reporting, tool('tickets', 'mystery'))).effect).toBe('deny');
    expect(store.canSee(reporting, undefined, tool('tickets', 'close', destructive))).toBe(false);
    expect(store.canSee(reporting, undefined, tool('tickets', 'search', readOnly))).toBe(true);
  });

  test('one-folder agent: path arguments must stay under the folder', () => {
    const editor = agent('agt_acme_editor');
    const write = tool('files', 'write_file', destructive);
    const read = tool('files', 'read_text_file', readOnly);
    const move = tool('files', 'move_file', destructive);
    expect(store.decide(call(editor, read, { path: '/srv/projects/acme/a.txt' })).effect).toBe('allow');
    expect(store.decide(call(editor, write, { path: '/srv/projects/acme/a.txt' })).effect).toBe('allow');
    expect(store.decide(call(editor, read, { path: '/srv/projects/other/a.txt' })).effect).toBe('deny');
    expect(store.decide(call(editor, read, { path: '/srv/projects/acme/../../../etc/passwd' })).effect).toBe(
      'deny',
    );
    expect(
      store.decide(call(editor, move, { source: '/srv/projects/acme/a', destination: '/tmp/a' })).policyIds,
    ).toEqual(['one-folder:outside']);
    expect(
      store.decide(
        call(editor, tool('files', 'read_multiple_files', readOnly), { paths: ['/srv/projects/acme/a'] }),
      ).effect,
    ).toBe('deny');
    expect(store.decide(call(editor, tool('web', 'fetch', readOnly), {})).effect).toBe('deny');
  });

  test('no destructive tools outside working hours (UTC, Monday to Friday 08-18)', () => {
    const editor = agent('agt_acme_editor');
    const write = tool('files', 'write_file', destructive);
    const args = { path: '/srv/projects/acme/a.txt' };
    expect(store.decide(call(editor, write, args, monday10)).effect).toBe('allow');
    expect(store.decide(call(editor, write, args, saturday10))).toMatchObject({
      effect: 'deny',
      policyIds: ['no-destructive-after-hours'],
    });
    expect(store.decide(call(editor, write, args, monday10 + 9 * 3600_000)).effect).toBe('deny'); // 19:00
    // Read-only tools are not affected.
    const read = tool('files', 'read_text_file', readOnly);
    expect(store.decide(call(editor, read, args, saturday10)).effect).toBe('allow');
  });
});

describe('demo/policies', async () => {
  const sandbox = '/home/demo/custos/demo/sandbox';
  const store = await storeFrom('../../demo/policies', (text) => text.replaceAll('SANDBOX', sandbox));
  const reader = agent('agt_1', { name: 'demo-reader' });
  const writer = agent('agt_2', { name: 'demo-writer' });
  const files = (name: string, annotations: PolicyResource['annotations']) =>
    tool('files', name, annotations);
  const everything = (name: string, annotations?: PolicyResource['annotations']) =>
    tool('everything', name, annotations);

  test('demo-reader lists both servers and calls only read-only file tools', () => {
    expect(store.decide({ ...call(reader, files('read_file', readOnly)), action: 'list_tools' }).effect).toBe(
      'allow',
    );
    expect(
      store.decide(call(reader, files('read_text_file', readOnly), { path: `${sandbox}/a` })).effect,
    ).toBe('allow');
    expect(store.decide(call(reader, files('directory_tree', readOnly), { path: '/' })).effect).toBe('allow');
    expect(
      store.decide(call(reader, files('write_file', destructive), { path: `${sandbox}/a` })).effect,
    ).toBe('deny');
    expect(
      store.decide(call(reader, files('create_directory', { readOnlyHint: false, destructiveHint: false })))
        .effect,
    ).toBe('deny');
    expect(store.canSee(reader, undefined, files('edit_file', destructive))).toBe(false);
    expect(store.canSee(reader, undefined, files('search_files', readOnly))).toBe(true);
  });

  test('demo-reader calls everything tools except destructive and long-running ones', () => {
    expect(
      store.decide(call(reader, everything('echo', { readOnlyHint: true, destructiveHint: false }))).effect,
    ).toBe('allow');
    expect(store.decide(call(reader, everything('trigger-long-running-operation', readOnly))).effect).toBe(
      'deny',
    );
    expect(store.decide(call(reader, everything('toggle-simulated-logging'))).effect).toBe('deny');
    expect(store.canSee(reader, undefined, everything('trigger-long-running-operation', readOnly))).toBe(
      false,
    );
  });

  test('demo-writer writes only inside the sandbox', () => {
    const write = files('write_file', destructive);
    expect(store.decide(call(writer, write, { path: `${sandbox}/notes.txt`, content: 'hi' })).effect).toBe(
      'allow',
    );
    expect(store.decide(call(writer, write, { path: '/etc/passwd', content: 'x' })).policyIds).toEqual([
      'demo-writer:writes-stay-in-sandbox',
    ]);
    expect(store.decide(call(writer, write, { path: `${sandbox}/../escape` })).effect).toBe('deny');
    expect(store.decide(call(writer, write, {})).effect).toBe('deny');
    const move = files('move_file', destructive);
    expect(
      store.decide(call(writer, move, { source: `${sandbox}/a`, destination: `${sandbox}/b` })).effect,
    ).toBe('allow');
    expect(
      store.decide(call(writer, move, { source: '/etc/hosts', destination: `${sandbox}/b` })).effect,
    ).toBe('deny');
    expect(store.decide(call(writer, files('read_text_file', readOnly), { path: '/etc/hosts' })).effect).toBe(
      'allow',
    );
    expect(store.decide(call(writer, everything('trigger-long-running-operation'))).effect).toBe('allow');
    expect(store.canSee(writer, undefined, write)).toBe(true);
  });

  test('agents other than the demo agents get nothing', () => {
    const stranger = agent('agt_3', { name: 'stranger' });
    expect(store.decide(call(stranger, files('read_file', readOnly))).effect).toBe('deny');
    expect(store.canSee(stranger, undefined, files('read_file', readOnly))).toBe(false);
  });
});
