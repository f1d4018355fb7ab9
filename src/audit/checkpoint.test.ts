import { describe, expect, it } from 'vitest';
import {
  type Checkpoint,
  formatCheckpoint,
  openCheckpoint,
  parseCheckpoint,
  signCheckpoint,
} from './checkpoint.js';
import { hashLeaf, MerkleTree } from './merkle.js';
import { generateSignerKey, parseSignerKey, signNote } from './note.js';

const fixedRandom =
  (byte: number) =>
  (n: number): Buffer =>
    Buffer.alloc(n, byte);

const log = parseSignerKey(generateSignerKey('custos.test/audit', fixedRandom(1)).signerKey);
const witness = parseSignerKey(generateSignerKey('witness.test', fixedRandom(2)).signerKey);
const tree = new MerkleTree(Array.from({ length: 5 }, (_, i) => hashLeaf(Buffer.of(i))));
const checkpoint: Checkpoint = {
  origin: 'custos.test/audit',
  treeSize: 5,
  rootHash: tree.root(),
  extensions: [],
};
const root64 = tree.root().toString('base64');

describe('checkpoint bodies', () => {
  it('formats origin, decimal size and base64 root, one per line', () => {
    expect(formatCheckpoint(checkpoint)).toBe(`custos.test/audit\n5\n${root64}\n`);
  });

  it('round-trips a checkpoint with extension lines', () => {
    const withExtensions = { ...checkpoint, extensions: ['ext one', 'ext two'] };
    const body = formatCheckpoint(withExtensions);
    expect(body).toBe(`custos.test/audit\n5\n${root64}\next one\next two\n`);
    expect(parseCheckpoint(body)).toEqual({ ok: true, checkpoint: withExtensions });
  });

  it('parses the largest safe tree size and size zero', () => {
    expect(parseCheckpoint(`o\n${2 ** 53 - 1}\n${root64}\n`)).toMatchObject({
      checkpoint: { treeSize: 2 ** 53 - 1 },
    });
    expect(parseCheckpoint(`o\n0\n${root64}\n`)).toMatchObject({ checkpoint: { treeSize: 0 } });
  });

  it.each([
    ['no final newline', `o\n5\n${root64}`],
    ['too few lines', 'o\n5\n'],
    ['an empty origin', `\n5\n${root64}\n`],
    ['a leading zero in the size', `o\n05\n${root64}\n`],
    ['a signed size', `o\n+5\n${root64}\n`],
    ['a negative size', `o\n-5\n${root64}\n`],
    ['a hex size', `o\n0x5\n${root64}\n`],
    ['a size with spaces', `o\n 5\n${root64}\n`],
    ['an empty size', `o\n\n${root64}\n`],
    ['a size beyond 2^53 - 1', `o\n${2 ** 53}\n${root64}\n`],
    ['a short root', `o\n5\n${tree.root().subarray(1).toString('base64')}\n`],
    ['an unpadded root', `o\n5\n${root64.replace(/=+$/, '')}\n`],
    ['a base64url root', `o\n5\n${tree.root().toString('base64url')}=\n`],
    ['an empty extension line', `o\n5\n${root64}\n\next\n`],
    ['a trailing blank line', `o\n5\n${root64}\n\n`],
    ['a control character in the origin', `o\t1\n5\n${root64}\n`],
    ['a carriage return', `o\r\n5\n${root64}\n`],
  ])('rejects a body with %s', (_, body) => {
    expect(parseCheckpoint(body)).toMatchObject({ ok: false, code: 'malformed_checkpoint' });
  });

  it('refuses to format fields that would not parse back', () => {
    expect(() => formatCheckpoint({ ...checkpoint, origin: '' })).toThrow(/origin is empty/);
    expect(() => formatCheckpoint({ ...checkpoint, origin: 'a\nb' })).toThrow(/control character/);
    expect(() => formatCheckpoint({ ...checkpoint, treeSize: -1 })).toThrow(/tree size -1/);
    expect(() => formatCheckpoint({ ...checkpoint, treeSize: 1.5 })).toThrow(/tree size 1.5/);
    expect(() => formatCheckpoint({ ...checkpoint, rootHash: Buffer.alloc(20) })).toThrow(/20 bytes/);
    expect(() => formatCheckpoint({ ...checkpoint, extensions: [''] })).toThrow(/extension line 1 is empty/);
  });
});

describe('signed checkpoints', () => {
  const signed = signCheckpoint(checkpoint, [log]);

  it('verifies a checkpoint signed by the log key', () => {
    const result = openCheckpoint(signed, { verifiers: [log.verifier], origin: 'custos.test/audit' });
    expect(result).toMatchObject({ ok: true, checkpoint });
  });

  it('verifies a cosigned checkpoint and reports the witness it was not asked to trust', () => {
    const cosigned = signCheckpoint(checkpoint, [log, witness]);
    const result = openCheckpoint(cosigned, { verifiers: [log.verifier] });
    expect(result.ok && result.unverified.map((s) => s.name)).toEqual(['witness.test']);
  });

  it('refuses a checkpoint for another origin', () => {
    expect(openCheckpoint(signed, { verifiers: [log.verifier], origin: 'other.test/audit' })).toMatchObject({
      ok: false,
      code: 'origin_mismatch',
    });
  });

  it('refuses a checkpoint with a changed tree size', () => {
    const tampered = signed.replace('\n5\n', '\n6\n');
    expect(openCheckpoint(tampered, { verifiers: [log.verifier] })).toMatchObject({
      ok: false,
      code: 'bad_signature',
    });
  });

  it('refuses a checkpoint signed by an untrusted key', () => {
    expect(openCheckpoint(signed, { verifiers: [witness.verifier] })).toMatchObject({
      ok: false,
      code: 'unknown_key',
    });
  });

  it('refuses a correctly signed note whose body is not a checkpoint', () => {
    const note = signNote('not a checkpoint\n', [log]);
    expect(openCheckpoint(note, { verifiers: [log.verifier] })).toMatchObject({
      ok: false,
      code: 'malformed_checkpoint',
    });
  });
});
