import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { describeEachStore } from '../../test/support/stores.js';
import { ManualClock } from '../core/clock.js';
import { openStore, type Store } from '../store/index.js';
import { exportBundle } from './bundle.js';
import { openCheckpoint } from './checkpoint.js';
import { eraseContent } from './erasure.js';
import type { AuditEvent } from './events.js';
import { verifyConsistency, verifyInclusion } from './merkle.js';
import { generateSignerKey, parseVerifierKey, signNote } from './note.js';
import { TransparencyLog } from './tlog.js';
import { verifyBundle, verifyLive } from './verify-bundle.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'custos-tlog-'));
  dirs.push(dir);
  return dir;
}

const start = Date.parse('2026-01-01T00:00:00Z');

function makeEvent(seq: number, agentId = 'agt_a'): AuditEvent {
  return {
    id: `evt_${String(seq).padStart(8, '0')}`,
    seq,
    time: start + seq * 1000,
    agentId,
    owner: agentId === 'agt_a' ? 'alice@example.com' : 'bob@example.com',
    taskId: 'task_1',
    method: 'tools/call',
    server: 'files',
    target: 'read_file',
    argsHash: null,
    effect: seq % 5 === 0 ? 'deny' : 'allow',
    policyIds: ['base'],
    reasons: seq % 5 === 0 ? ['forbid: secrets'] : [],
    outcome: seq % 5 === 0 ? 'denied' : 'executed',
    errorCode: null,
    latencyUs: 100 + seq,
    traceId: null,
    policySetHash: `${(seq % 2).toString().repeat(64)}`,
    approvalId: seq % 4 === 0 ? `apr_${seq}` : null,
    ...(seq % 3 === 0
      ? {}
      : { arguments: { path: `/data/${seq}.txt` }, reasoning: `step ${seq} for ${agentId}` }),
    ...(seq % 5 === 0 ? {} : { result: { ok: true, seq } }),
  };
}

/** What the recorder does: events with their commitments in one transaction, the frontier applied after commit. */
async function record(store: Store, log: TransparencyLog, count: number, agentId?: string): Promise<void> {
  const events = Array.from({ length: count }, (_, i) => makeEvent(log.nextSeq + i, agentId));
  let pending: Awaited<ReturnType<TransparencyLog['appendInTransaction']>> | undefined;
  await store.db.transaction().execute(async (trx) => {
    pending = await log.appendInTransaction(trx, events);
  });
  log.commit(pending!);
}

function lines(path: string): string[] {
  return readFileSync(path, 'utf8').trimEnd().split('\n');
}

await describeEachStore('tlog', (current) => {
  let log: TransparencyLog;
  let bundle: string;
  const clock = new ManualClock(start + 10_000_000);

  it('appends 40 events, signs a checkpoint and exports a bundle that verifies', async () => {
    const { store } = current();
    log = await TransparencyLog.open(store, { clock, checkpointIntervalMs: 60_000 });
    expect(log.origin).toMatch(/^custos\.local\/[0-9a-f]{16}$/);
    await record(store, log, 15);
    expect(await log.checkpointNow()).toMatchObject({ size: 15 });
    await record(store, log, 25);
    bundle = tempDir();
    const summary = await exportBundle(store, log, {
      from: start + 5_000,
      to: start + 30_000,
      outDir: bundle,
    });
    expect(summary).toMatchObject({ fromSeq: 5, toSeq: 30, events: 26, checkpoints: [40], treeSize: 40 });
    const result = await verifyBundle(bundle, { verifierKey: log.verifierKey });
    expect(result).toEqual({
      ok: true,
      events: 26,
      checkpoints: 1,
      erased: 0,
      fromSeq: 5,
      toSeq: 30,
      treeSize: 40,
    });
    expect(await verifyLive(store, log)).toEqual({ ok: true, events: 40, checkpoints: 1 });
  });

  it('exports the checkpoint before the range and links checkpoints by consistency proofs', async () => {
    const { store } = current();
    await record(store, log, 10);
    const dir = tempDir();
    const summary = await exportBundle(store, log, { from: start + 20_000, to: start + 45_000, outDir: dir });
    // The last checkpoint before the range, the first covering it, and the latest.
    expect(summary.checkpoints).toEqual([15, 50]);
    expect(await verifyBundle(dir)).toMatchObject({ ok: true, checkpoints: 2, events: 26 });
  });

  it('serves inclusion and consistency proofs that verify against stored checkpoints', async () => {
    const [a, b, c] = await log.checkpoints();
    const inclusion = await log.inclusionProof(7, b!.size);
    const leaf = (await log.leafHashes(7))[6]!;
    expect(
      verifyInclusion({ leafHash: leaf, index: 6, treeSize: b!.size, proof: inclusion, root: b!.root }).ok,
    ).toBe(true);
    const consistency = await log.consistencyProof(a!.size, c!.size);
    expect(
      verifyConsistency({
        size1: a!.size,
        size2: c!.size,
        root1: a!.root,
        root2: c!.root,
        proof: consistency,
      }).ok,
    ).toBe(true);
  });

  it('continues the same tree after a restart and never signs an inconsistent checkpoint', async () => {
    const { store, url } = current();
    const rootBefore = log.root();
    await log.close();
    const second = await openStore(url);
    try {
      const reopened = await TransparencyLog.open(second, { clock, checkpointIntervalMs: 60_000 });
      expect(reopened.size).toBe(50);
      expect(reopened.root().equals(rootBefore)).toBe(true);
      expect(reopened.verifierKey).toBe(log.verifierKey);
      await record(second, reopened, 5);
      expect(reopened.nextSeq).toBe(56);
      const latest = await reopened.checkpointNow();
      expect(latest?.size).toBe(55);
      // Nothing new: no second checkpoint for the same size, none smaller.
      expect(await reopened.checkpointNow()).toEqual(latest);
      const all = await reopened.checkpoints();
      const verifier = parseVerifierKey(reopened.verifierKey);
      for (let i = 1; i < all.length; i++) {
        expect(all[i]!.size).toBeGreaterThan(all[i - 1]!.size);
        const proof = await reopened.consistencyProof(all[i - 1]!.size, all[i]!.size);
        const claim = {
          size1: all[i - 1]!.size,
          size2: all[i]!.size,
          root1: all[i - 1]!.root,
          root2: all[i]!.root,
          proof,
        };
        expect(verifyConsistency(claim).ok).toBe(true);
        expect(openCheckpoint(all[i]!.note, { verifiers: [verifier] }).ok).toBe(true);
      }
      await reopened.close();
      log = await TransparencyLog.open(store, { clock, checkpointIntervalMs: 60_000 });
      expect(log.size).toBe(55);
    } finally {
      await second.close();
    }
  });

  it('refuses an append whose seqs do not continue the log, and leaves the frontier alone on rollback', async () => {
    const { store } = current();
    const root = log.root();
    await expect(log.append([makeEvent(log.nextSeq + 1)])).rejects.toThrow(/expects 56/);
    await expect(
      store.db.transaction().execute(async (trx) => {
        const pending = await log.appendInTransaction(trx, [makeEvent(56)]);
        log.rollback(pending);
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect(log.size).toBe(55);
    expect(log.root().equals(root)).toBe(true);
    expect((await log.leafHashes(55)).length).toBe(55);
  });

  it('signs a checkpoint by timer at most checkpointIntervalMs after an append', async () => {
    const { store } = current();
    const timed = await TransparencyLog.open(store, { clock, checkpointIntervalMs: 20 });
    await record(store, timed, 3);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(timed.latestCheckpoint?.size).toBe(58);
    await timed.close();
    log = await TransparencyLog.open(store, { clock, checkpointIntervalMs: 60_000 });
  });

  it('keeps every proof valid after erasing content and says which events were erased', async () => {
    const { store } = current();
    const { erased } = await eraseContent(store, { agentId: 'agt_a' });
    expect(erased).toBeGreaterThan(0);
    await record(store, log, 4, 'agt_b');
    const dir = tempDir();
    const summary = await exportBundle(store, log, { outDir: dir });
    expect(summary).toMatchObject({ fromSeq: 1, toSeq: 62 });
    const result = await verifyBundle(dir, { verifierKey: log.verifierKey });
    expect(result).toMatchObject({ ok: true, events: 62, erased });
    const exported = lines(join(dir, 'events.jsonl')).map((l) => JSON.parse(l));
    expect(exported[0]).toMatchObject({ erased: true, content: null });
    expect(exported[61]).toMatchObject({ erased: false, content: { arguments: '{"path":"/data/62.txt"}' } });
    expect(await verifyLive(store, log)).toMatchObject({ ok: true });
    const bySubject = await eraseContent(store, { subject: 'bob@example.com' });
    // seq 60 carries no content at all, so three of bob's four events lose theirs.
    expect(bySubject.erased).toBe(3);
  });

  it('reports tampering with the stored log in verifyLive', async () => {
    const { store } = current();
    await store.db.updateTable('audit_events').set({ target: 'delete_file' }).where('seq', '=', 7).execute();
    expect(await verifyLive(store, log)).toEqual({
      ok: false,
      problem:
        'event seq 7: the audit_events row does not match its leaf hash (a committed field was changed)',
    });
    await store.db.updateTable('audit_events').set({ target: 'read_file' }).where('seq', '=', 7).execute();
    await store.db
      .updateTable('audit_events')
      .set({ policy_set_hash: 'f'.repeat(64) })
      .where('seq', '=', 8)
      .execute();
    expect(await verifyLive(store, log)).toEqual({
      ok: false,
      problem:
        'event seq 8: the audit_events row does not match its leaf hash (a committed field was changed)',
    });
    await store.db
      .updateTable('audit_events')
      .set({ policy_set_hash: '0'.repeat(64) })
      .where('seq', '=', 8)
      .execute();
    expect(await verifyLive(store, log)).toMatchObject({ ok: true });
  });

  /** Copy the first bundle, apply one change, and verify it. */
  async function tampered(change: (dir: string) => void, key?: string) {
    const dir = tempDir();
    for (const name of [
      'events.jsonl',
      'leaves.txt',
      'checkpoints.txt',
      'proofs.json',
      'manifest.txt',
      'key.txt',
      'README.md',
    ]) {
      writeFileSync(join(dir, name), readFileSync(join(bundle, name)));
    }
    change(dir);
    const result = await verifyBundle(dir, key === undefined ? {} : { verifierKey: key });
    // Split into line ranges checked separately (worker threads for big files), the first
    // problem found is the same.
    expect(
      await verifyBundle(dir, { ...(key === undefined ? {} : { verifierKey: key }), parallelism: 3 }),
    ).toEqual(result);
    return result;
  }

  function editEvents(dir: string, edit: (lines: string[]) => string[]): void {
    const path = join(dir, 'events.jsonl');
    writeFileSync(path, `${edit(lines(path)).join('\n')}\n`);
  }

  it('names a modified event field', async () => {
    const result = await tampered((dir) =>
      editEvents(dir, (ls) =>
        ls.map((l, i) => (i === 12 ? l.replace('"effect":"allow"', '"effect":"deny"') : l)),
      ),
    );
    expect(result).toEqual({ ok: false, problem: 'event seq 17: leaf hash does not match its fields' });
  });

  it('names an event whose policy set hash or approval id was changed in the export', async () => {
    const exported = lines(join(bundle, 'events.jsonl')).map((l) => JSON.parse(l));
    // seq 17 (line 13) was decided under policy set '1…1'; seq 20 (line 16) consumed apr_20.
    expect(exported[12].leaf).toMatchObject({ seq: 17, policySetHash: '1'.repeat(64), approvalId: null });
    expect(exported[15].leaf).toMatchObject({ seq: 20, policySetHash: '0'.repeat(64), approvalId: 'apr_20' });
    const editLine = (index: number, from: string, to: string) =>
      tampered((dir) => editEvents(dir, (ls) => ls.map((l, i) => (i === index ? l.replace(from, to) : l))));
    const policySet = `"policySetHash":"${'1'.repeat(64)}"`;
    expect(await editLine(12, policySet, `"policySetHash":"${'0'.repeat(64)}"`)).toEqual({
      ok: false,
      problem: 'event seq 17: leaf hash does not match its fields',
    });
    expect(await editLine(12, policySet, '"policySetHash":null')).toEqual({
      ok: false,
      problem: 'event seq 17: leaf hash does not match its fields',
    });
    expect(await editLine(12, policySet, '"policySetHash":"permissive"')).toEqual({
      ok: false,
      problem:
        'events.jsonl line 13: leaf field policySetHash must be a SHA-256 hash (64 lower-case hex digits) or null',
    });
    expect(await editLine(15, '"approvalId":"apr_20"', '"approvalId":"apr_21"')).toEqual({
      ok: false,
      problem: 'event seq 20: leaf hash does not match its fields',
    });
    expect(await editLine(15, '"approvalId":"apr_20"', '"approvalId":null')).toEqual({
      ok: false,
      problem: 'event seq 20: leaf hash does not match its fields',
    });
  });

  it('names modified content', async () => {
    const result = await tampered((dir) =>
      editEvents(dir, (ls) => ls.map((l, i) => (i === 2 ? l.replace('/data/7.txt', '/data/8.txt') : l))),
    );
    expect(result).toEqual({
      ok: false,
      problem: "event seq 7: arguments do not match the leaf's salted commitment",
    });
  });

  it('names a removed event, including the first and the last', async () => {
    expect(await tampered((dir) => editEvents(dir, (ls) => ls.filter((_, i) => i !== 4)))).toEqual({
      ok: false,
      problem: 'event seq 9 missing',
    });
    expect(await tampered((dir) => editEvents(dir, (ls) => ls.slice(1)))).toEqual({
      ok: false,
      problem: 'event seq 5 missing',
    });
    expect(await tampered((dir) => editEvents(dir, (ls) => ls.slice(0, -1)))).toEqual({
      ok: false,
      problem: 'event seq 30 missing',
    });
  });

  it('names reordered events', async () => {
    const result = await tampered((dir) =>
      editEvents(dir, (ls) => [...ls.slice(0, 3), ls[4]!, ls[3]!, ...ls.slice(5)]),
    );
    expect(result).toEqual({ ok: false, problem: 'events out of order at line 5: seq 8 after seq 9' });
  });

  it('names an inserted event', async () => {
    const dup = await tampered((dir) => editEvents(dir, (ls) => [...ls.slice(0, 6), ls[5]!, ...ls.slice(6)]));
    expect(dup).toEqual({ ok: false, problem: 'event inserted at line 7: seq 10 repeats the line before' });
    const earlier = await tampered((dir) =>
      editEvents(dir, (ls) => [...ls.slice(0, 8), ls[2]!, ...ls.slice(8)]),
    );
    expect(earlier).toEqual({ ok: false, problem: 'event inserted at line 9: seq 7 was already seen' });
    // A forged event placed before the genuine one it imitates: not a modified event, an inserted one.
    const before = await tampered((dir) =>
      editEvents(dir, (ls) => [
        ...ls.slice(0, 6),
        ls[6]!.replace('"effect":"allow"', '"effect":"deny"'),
        ...ls.slice(6),
      ]),
    );
    expect(before).toEqual({
      ok: false,
      problem:
        'event inserted at line 7: seq 11 does not match its leaf, and line 8 is the event seq 11 that does',
    });
    // The same edit without the genuine line is a modified event.
    const modified = await tampered((dir) =>
      editEvents(dir, (ls) =>
        ls.map((l, i) => (i === 6 ? l.replace('"effect":"allow"', '"effect":"deny"') : l)),
      ),
    );
    expect(modified).toEqual({ ok: false, problem: 'event seq 11: leaf hash does not match its fields' });
    const forged = await tampered((dir) =>
      editEvents(dir, (ls) => [
        ...ls,
        ls.at(-1)!.replace('"seq":30', '"seq":31').replace('evt_00000030', 'evt_00000031'),
      ]),
    );
    expect(forged).toEqual({
      ok: false,
      problem: 'event inserted at line 27: seq 31 is outside the signed export range 5..30',
    });
  });

  it('names an altered checkpoint root, size or signature', async () => {
    const edit = (from: RegExp, to: (m: string) => string) => (dir: string) => {
      const path = join(dir, 'checkpoints.txt');
      writeFileSync(path, readFileSync(path, 'utf8').replace(from, to));
    };
    const root = await tampered(
      edit(/\n([A-Za-z0-9+/]{43}=)\n/, (m) => m.replace(/^\n./, (s) => `\n${s[1] === 'A' ? 'B' : 'A'}`)),
    );
    expect(root).toEqual({ ok: false, problem: 'checkpoint 1: bad signature' });
    const size = await tampered(edit(/\n40\n/, () => '\n41\n'));
    expect(size).toEqual({ ok: false, problem: 'checkpoint 1: bad signature' });
    const signature = await tampered(
      // Past the 4-byte key id (the first 6 base64 digits): a signature byte.
      edit(/ ([A-Za-z0-9+/]{20})/, (m) => `${m.slice(0, 12)}${m[12] === 'A' ? 'B' : 'A'}${m.slice(13)}`),
    );
    expect(signature).toEqual({ ok: false, problem: 'checkpoint 1: bad signature' });
  });

  it('names a checkpoint re-signed with another key, or a root that does not match the leaves', async () => {
    const forger = generateSignerKey(log.origin);
    const wrong = await tampered(() => {}, forger.verifierKey);
    expect(wrong).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/^checkpoint 1: not signed by the verifier key/),
    });
    const leaves = await tampered((dir) => {
      const path = join(dir, 'leaves.txt');
      const all = lines(path);
      all[16] = '0'.repeat(64);
      writeFileSync(path, `${all.join('\n')}\n`);
    });
    expect(leaves).toEqual({
      ok: false,
      problem: 'checkpoint 1: root hash does not match the leaves in leaves.txt (size 40)',
    });
  });

  it('names a manifest edited to hide a dropped last event', async () => {
    const result = await tampered((dir) => {
      editEvents(dir, (ls) => ls.slice(0, -1));
      const path = join(dir, 'manifest.txt');
      const text = readFileSync(path, 'utf8');
      writeFileSync(path, text.replace('events 5 30', 'events 5 29'));
    });
    expect(result).toEqual({ ok: false, problem: 'manifest.txt: bad signature' });
    // Even a fully re-signed bundle fails against the published key.
    const forger = (await import('./note.js')).parseSignerKey(generateSignerKey(log.origin).signerKey);
    const resigned = await tampered((dir) => {
      const path = join(dir, 'manifest.txt');
      const body = readFileSync(path, 'utf8').split('\n\n')[0]!;
      writeFileSync(path, signNote(`${body.replace('events 5 30', 'events 5 29')}\n`, [forger]));
    }, log.verifierKey);
    expect(resigned).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/^manifest\.txt: note is not signed by a trusted key/),
    });
  });
});
