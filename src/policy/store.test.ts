import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { PolicyLoadError } from './load.js';
import { PolicyStore } from './store.js';
import { agent, call, tool } from './test-helpers.js';
import type { PolicyProblem } from './types.js';

const bot = agent('agt_bot');
const readFileTool = tool('files', 'read_file', { readOnlyHint: true });
const allowAll = '@id("all") permit (principal, action, resource);\n';
const denyAll = '@id("none") forbid (principal, action, resource);\n';

let directory: string;
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'custos-policy-'));
});
afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('policy store', () => {
  test('opening an invalid directory throws the problems', async () => {
    await writeFile(join(directory, 'bad.cedar'), 'permit (principal, action == Action::"nope", resource);');
    await expect(PolicyStore.open(directory)).rejects.toBeInstanceOf(PolicyLoadError);
    await expect(PolicyStore.open(join(directory, 'missing'))).rejects.toThrow(
      /cannot read policy directory/,
    );
  });

  test('the policy set hash is stable for the same policies and changes with any policy or the schema', async () => {
    await writeFile(join(directory, 'a.cedar'), allowAll);
    const store = await PolicyStore.open(directory);
    const again = await PolicyStore.open(directory);
    const first = store.snapshot.hash;
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(again.snapshot.hash).toBe(first);
    expect(store.policySetHash).toBe(first);
    // Reloading unchanged files keeps the hash; a changed policy changes it.
    expect((await store.reload()).ok).toBe(true);
    expect(store.snapshot.hash).toBe(first);
    await writeFile(join(directory, 'b.cedar'), denyAll);
    expect((await store.reload()).ok).toBe(true);
    expect(store.snapshot.hash).not.toBe(first);
    const fromSources = PolicyStore.fromSources({ files: [{ name: 'x.cedar', text: allowAll }] });
    expect(fromSources.snapshot.hash).toBe(first);
    store.close();
    again.close();
    fromSources.close();
  });

  test('only *.cedar files and schema.cedarschema are read', async () => {
    await writeFile(join(directory, 'a.cedar'), allowAll);
    await writeFile(join(directory, 'notes.txt'), 'not a policy');
    const store = await PolicyStore.open(directory, { now: () => 42 });
    expect(store.snapshot).toMatchObject({ generation: 1, directory, schema: 'built-in', loadedAt: 42 });
    expect(store.snapshot.policies.map((p) => p.id)).toEqual(['all']);
    expect(Object.isFrozen(store.snapshot)).toBe(true);
    store.close();
  });

  test('a valid change is swapped in whole', async () => {
    await writeFile(join(directory, 'a.cedar'), allowAll);
    const store = await PolicyStore.open(directory);
    expect(store.decide(call(bot, readFileTool)).effect).toBe('allow');
    await writeFile(join(directory, 'b.cedar'), denyAll);
    const result = await store.reload();
    expect(result.ok).toBe(true);
    expect(store.snapshot.generation).toBe(2);
    expect(store.decide(call(bot, readFileTool))).toMatchObject({ effect: 'deny', policyIds: ['none'] });
    store.close();
  });

  test('an invalid change is rejected and the last good set stays in force', async () => {
    await writeFile(join(directory, 'a.cedar'), allowAll);
    const store = await PolicyStore.open(directory);
    const before = store.snapshot;
    await writeFile(
      join(directory, 'a.cedar'),
      `${allowAll}forbid (principal, action, resource) when { context.nope };`,
    );
    const result = await store.reload();
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems[0]).toMatchObject({ file: 'a.cedar', policyId: 'a.cedar:1' });
    expect(store.snapshot).toBe(before);
    expect(store.decide(call(bot, readFileTool)).effect).toBe('allow');
    store.close();
  });

  test('decisions keep flowing while reloads happen', async () => {
    await writeFile(join(directory, 'a.cedar'), allowAll);
    const store = await PolicyStore.open(directory);
    let decisions = 0;
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        const decision = store.decide(call(bot, readFileTool));
        expect(['all', 'none']).toContain(decision.policyIds[0]);
        decisions++;
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    for (let i = 0; i < 6; i++) {
      await writeFile(join(directory, 'a.cedar'), i % 2 === 0 ? denyAll : allowAll);
      expect((await store.reload()).ok).toBe(true);
    }
    stop = true;
    await loop;
    expect(decisions).toBeGreaterThan(0);
    expect(store.snapshot.generation).toBe(7);
    expect(store.decide(call(bot, readFileTool)).effect).toBe('allow');
    store.close();
  });

  test('watching reloads valid changes and reports invalid ones', async () => {
    await writeFile(join(directory, 'a.cedar'), allowAll);
    const store = await PolicyStore.open(directory);
    const reloads: number[] = [];
    const errors: (readonly PolicyProblem[])[] = [];
    const stop = store.watch(
      { onReload: (s) => reloads.push(s.generation), onError: (p) => errors.push(p) },
      20,
    );
    const until = async (check: () => boolean) => {
      for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 25));
      expect(check()).toBe(true);
    };

    await writeFile(join(directory, 'a.cedar'), denyAll);
    await until(() => reloads.length > 0);
    expect(store.decide(call(bot, readFileTool)).effect).toBe('deny');

    await writeFile(join(directory, 'a.cedar'), 'permit (principal, action, resource'); // truncated save
    await until(() => errors.length > 0);
    expect(errors[0]?.[0]?.file).toBe('a.cedar');
    expect(store.decide(call(bot, readFileTool))).toMatchObject({ effect: 'deny', policyIds: ['none'] });
    stop();
    store.close();
  });

  test('the example and demo directories load', async () => {
    for (const dir of ['../../policies/examples', '../../demo/policies']) {
      const path = new URL(dir, import.meta.url).pathname;
      const store = await PolicyStore.open(path);
      expect(store.snapshot.policies.length).toBeGreaterThan(0);
      store.close();
    }
    // The SANDBOX token is documented in the demo writer policy.
    const writer = await readFile(new URL('../../demo/policies/demo-writer.cedar', import.meta.url), 'utf8');
    expect(writer).toMatch(/SANDBOX is a template token/);
  });
});
