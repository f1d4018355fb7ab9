import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  computeKeyId,
  formatNote,
  generateSignerKey,
  MAX_SIGNATURES,
  type NoteSigner,
  openNote,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  signNote,
} from './note.js';

interface SignedNoteVectors {
  c2spExample: { verifierKey: string; text: string; signatureLine: string };
  goSumdbNote: { verifierKey: string; signerKey: string; text: string; signatureBase64: string };
}

const vectors = JSON.parse(
  readFileSync(fileURLToPath(new URL('../../../shared/vectors/signed-note.json', import.meta.url)), 'utf8'),
) as SignedNoteVectors;

/** Deterministic seeds so test keys are stable. */
const fixedRandom =
  (byte: number) =>
  (n: number): Buffer =>
    Buffer.alloc(n, byte);

describe('signed-note vectors (signed-note.json)', () => {
  describe('c2spExample: the C2SP signed-note specification example', () => {
    const v = vectors.c2spExample;
    const note = `${v.text}\n${v.signatureLine}\n`;

    it('parses the verifier key and recomputes its key id', () => {
      const verifier = parseVerifierKey(v.verifierKey);
      expect(verifier.name).toBe('example.com/foo');
      expect(verifier.keyId).toBe(0x530d903a);
      expect(verifier.verifierKey).toBe(v.verifierKey);
    });

    it('verifies the example note', () => {
      const result = openNote(note, [parseVerifierKey(v.verifierKey)]);
      expect(result).toMatchObject({ ok: true, note: { text: v.text } });
      if (result.ok) expect(result.verified).toHaveLength(1);
    });

    it('formats the parsed note back byte for byte', () => {
      const parsed = parseNote(note);
      expect(parsed.ok).toBe(true);
      if (parsed.ok) expect(formatNote(parsed.note)).toBe(note);
    });

    it('rejects the example with one changed character of text', () => {
      const tampered = note.replace('example', 'exbmple');
      expect(openNote(tampered, [parseVerifierKey(v.verifierKey)])).toMatchObject({
        ok: false,
        code: 'bad_signature',
      });
    });
  });

  describe('goSumdbNote: the golang.org/x/mod/sumdb/note key pair', () => {
    const v = vectors.goSumdbNote;

    it('parses the signer key and derives the published verifier key', () => {
      const signer = parseSignerKey(v.signerKey);
      expect(signer.name).toBe('PeterNeumann');
      expect(signer.keyId).toBe(0xc74f20a3);
      expect(signer.verifier.verifierKey).toBe(v.verifierKey);
    });

    it('signs the text to exactly the published signature', () => {
      const signed = signNote(v.text, [parseSignerKey(v.signerKey)]);
      expect(signed).toBe(`${v.text}\n— PeterNeumann ${v.signatureBase64}\n`);
    });

    it('verifies the published signature with the verifier key', () => {
      const note = `${v.text}\n— PeterNeumann ${v.signatureBase64}\n`;
      const result = openNote(note, [parseVerifierKey(v.verifierKey)]);
      expect(result.ok).toBe(true);
    });
  });
});

describe('keys', () => {
  it('computes the key id from name, newline, algorithm byte and public key', () => {
    const key = Buffer.from(vectors.c2spExample.verifierKey.split('+')[2]!, 'base64').subarray(1);
    expect(computeKeyId('example.com/foo', key)).toBe(0x530d903a);
  });

  it('generates key pairs that round-trip through their text forms', () => {
    const { signerKey, verifierKey } = generateSignerKey('custos.test/log', fixedRandom(7));
    expect(signerKey.startsWith('PRIVATE+KEY+custos.test/log+')).toBe(true);
    const signer = parseSignerKey(signerKey);
    expect(signer.verifier.verifierKey).toBe(verifierKey);
    expect(openNote(signNote('hello\n', [signer]), [parseVerifierKey(verifierKey)]).ok).toBe(true);
  });

  it.each([
    ['no separators', 'example.com/foo'],
    ['one separator', 'example.com/foo+530d903a'],
    ['empty name', '+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k'],
    ['short key id', 'example.com/foo+530d903+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k'],
    ['wrong key id', 'example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k'],
    ['wrong name for the key id', 'example.com/bar+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k'],
    ['non-canonical base64', 'example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k='],
    ['unknown algorithm', 'example.com/foo+530d903a+AukyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k'],
    ['short key', 'example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv'],
    ['space in name', 'example com+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k'],
  ])('rejects a verifier key with %s', (_, key) => {
    expect(() => parseVerifierKey(key)).toThrow(expect.objectContaining({ code: 'config_invalid' }));
  });

  it('rejects a signer key without the PRIVATE+KEY prefix or with the wrong id', () => {
    const { signerKey } = generateSignerKey('custos.test/log', fixedRandom(1));
    expect(() => parseSignerKey(signerKey.slice('PRIVATE+KEY+'.length))).toThrow(/PRIVATE\+KEY\+/);
    const wrongId = signerKey.replace(/\+[0-9a-f]{8}\+/, '+00000000+');
    expect(() => parseSignerKey(wrongId)).toThrow(/does not match the key/);
  });

  it('refuses a key name with a plus sign', () => {
    expect(() => generateSignerKey('a+b', fixedRandom(1))).toThrow(/contains '\+'/);
  });
});

describe('notes', () => {
  const alice = parseSignerKey(generateSignerKey('alice.test', fixedRandom(1)).signerKey);
  const bob = parseSignerKey(generateSignerKey('bob.test', fixedRandom(2)).signerKey);
  const carol = parseSignerKey(generateSignerKey('carol.test', fixedRandom(3)).signerKey);
  const text = 'custos.test/log\n42\nAAAA\n';

  it('accepts a note signed by one trusted key among others, and reports the others', () => {
    const signed = signNote(text, [alice, bob]);
    const result = openNote(signed, [bob.verifier]);
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(result.verified.map((s) => s.name)).toEqual(['bob.test']);
      expect(result.unverified.map((s) => s.name)).toEqual(['alice.test']);
    }
  });

  it('adds a cosignature to a signed note', () => {
    const parsed = parseNote(signNote(text, [alice]));
    if (!parsed.ok) throw new Error(parsed.message);
    const cosigned = signNote(parsed.note, [bob]);
    const result = openNote(cosigned, [alice.verifier, bob.verifier]);
    expect(result.ok && result.verified.length).toBe(2);
  });

  it('keeps blank lines inside the text, splitting at the last blank line', () => {
    const body = 'first\n\nsecond\n';
    const result = openNote(signNote(body, [alice]), [alice.verifier]);
    expect(result).toMatchObject({ ok: true, note: { text: body } });
  });

  it('rejects a note signed only by unknown keys', () => {
    expect(openNote(signNote(text, [alice]), [carol.verifier])).toMatchObject({
      ok: false,
      code: 'unknown_key',
      message: expect.stringContaining('alice.test+'),
    });
  });

  it('rejects a note whose trusted signature is bad even when another trusted one is good', () => {
    const good = signNote(text, [alice]);
    const forged = `${good}— bob.test ${Buffer.concat([keyIdBytes(bob), Buffer.alloc(64)]).toString('base64')}\n`;
    expect(openNote(forged, [alice.verifier, bob.verifier])).toMatchObject({
      ok: false,
      code: 'bad_signature',
    });
  });

  it('rejects a signature of the wrong length by a trusted key', () => {
    const short = `${text}\n— alice.test ${Buffer.concat([keyIdBytes(alice), Buffer.alloc(10)]).toString('base64')}\n`;
    expect(openNote(short, [alice.verifier])).toMatchObject({ ok: false, code: 'bad_signature' });
  });

  it('does not match a signature to a key with the same name but another key id', () => {
    const imposter = parseSignerKey(generateSignerKey('alice.test', fixedRandom(9)).signerKey);
    expect(openNote(signNote(text, [imposter]), [alice.verifier])).toMatchObject({ code: 'unknown_key' });
  });

  const signed = signNote(text, [alice]);
  const line = signed.slice(text.length + 1, -1);
  it.each([
    ['no blank line', `${text}${line}\n`],
    ['no final newline', signed.slice(0, -1)],
    ['no signatures', `${text}\n`],
    ['an empty signature line', `${text}\n${line}\n\n`],
    ['a hyphen instead of an em dash', `${text}\n-${line.slice(1)}\n`],
    ['no space after the name', `${text}\n${line.replace(' ', '').replace(' ', '')}\n`],
    ['two spaces after the name', `${text}\n${line.replace('alice.test ', 'alice.test  ')}\n`],
    ['a trailing space', `${text}\n${line} \n`],
    ['bad base64', `${text}\n${line.slice(0, -3)}!!=\n`],
    ['a signature of only a key id', `${text}\n— alice.test AAAAAA==\n`],
    ['an empty key name', `${text}\n— ${line.slice(line.indexOf(' ', 2))}\n`],
    ['a carriage return', `${text.replace('\n', '\r\n')}\n${line}\n`],
    ['a tab', `${text.replace('42', '4\t2')}\n${line}\n`],
    ['a NUL byte', `${text.replace('42', '4\u00002')}\n${line}\n`],
    ['a lone surrogate', `${text.replace('42', '4\ud8002')}\n${line}\n`],
    ['too many signatures', `${text}\n${`${line}\n`.repeat(MAX_SIGNATURES + 1)}`],
  ])('rejects a note with %s as malformed', (_, note) => {
    expect(openNote(note, [alice.verifier])).toMatchObject({ ok: false, code: 'malformed_note' });
  });

  it('rejects bytes that are not UTF-8', () => {
    const bytes = Buffer.concat([Buffer.from([0xff, 0x0a, 0x0a]), Buffer.from(`${line}\n`)]);
    expect(parseNote(bytes)).toMatchObject({ ok: false, message: 'note is not valid UTF-8' });
  });

  it('verifies notes given as bytes', () => {
    expect(openNote(Buffer.from(signed), [alice.verifier]).ok).toBe(true);
  });

  it('accepts exactly the maximum number of signatures', () => {
    expect(openNote(`${text}\n${`${line}\n`.repeat(MAX_SIGNATURES)}`, [alice.verifier]).ok).toBe(true);
  });

  it('refuses to sign a text that is empty, lacks a final newline or has control characters', () => {
    expect(() => signNote('', [alice])).toThrow(/empty/);
    expect(() => signNote('no newline', [alice])).toThrow(/newline/);
    expect(() => signNote('tab\there\n', [alice])).toThrow(/control character/);
    expect(() => signNote('text\n', [] as NoteSigner[])).toThrow(/at least one signature/);
  });
});

function keyIdBytes(signer: NoteSigner): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(signer.keyId, 0);
  return bytes;
}
