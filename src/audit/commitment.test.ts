import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../core/canonical.js';
import { commitEvent, commitmentLeaf, contentHash, serializeCommitment } from './commitment.js';
import type { AuditEvent } from './events.js';

function event(overrides: Partial<AuditEvent> = {}): AuditEvent {
  return {
    id: 'evt_1',
    seq: 1,
    time: 1_767_225_600_000,
    agentId: 'agt_1',
    owner: 'alice@example.com',
    taskId: null,
    method: 'tools/call',
    server: 'files',
    target: 'read_file',
    argsHash: null,
    effect: 'allow',
    policyIds: ['p1', 'p0'],
    reasons: [],
    outcome: 'executed',
    errorCode: null,
    latencyUs: 120,
    traceId: null,
    policySetHash: null,
    approvalId: null,
    ...overrides,
  };
}

describe('commitment records', () => {
  it('hashes each content field as SHA-256 of salt || canonical JSON', () => {
    const salt = Buffer.alloc(32, 7);
    const c = commitEvent(event({ arguments: { b: 1, a: 'x' }, reasoning: 'because' }), salt);
    const expected = createHash('sha256').update(salt).update('{"a":"x","b":1}').digest('hex');
    expect(c.record.argumentsHash).toBe(expected);
    expect(c.record.reasoningHash).toBe(contentHash(salt, '"because"'));
    expect(c.record.resultHash).toBeNull();
    expect(c.content).toEqual({ arguments: '{"a":"x","b":1}', reasoning: '"because"', result: null });
  });

  it('makes the leaf the RFC 8785 canonical JSON of the record, without latency or trace id', () => {
    const c = commitEvent(event({ result: [1, 2] }), Buffer.alloc(32));
    expect(c.leaf.toString('utf8')).toBe(canonicalJson(c.record));
    expect(Object.keys(c.record)).not.toContain('latencyUs');
    expect(c.record).toMatchObject({ v: 1, policySetHash: null, approvalId: null });
  });

  it('draws a fresh salt per event, so equal content gives unlinkable hashes', () => {
    const a = commitmentLeaf(event({ arguments: { q: 1 } }));
    const b = commitmentLeaf(event({ arguments: { q: 1 } }));
    expect(a.salt.length).toBe(32);
    expect(a.salt.equals(b.salt)).toBe(false);
    expect(a.leaf.equals(b.leaf)).toBe(false);
  });

  it('serializes a parsed record exactly as the canonical JSON', () => {
    const samples = [
      event(),
      event({
        agentId: null,
        owner: 'ü\u2028"\\',
        reasons: ['a\u0000b', '😀'],
        seq: 2 ** 40,
        errorCode: 'x',
      }),
      event({ arguments: { z: [1, { y: null }] }, result: 'ok' }),
    ];
    for (const sample of samples) {
      const c = commitEvent(
        { ...sample, policySetHash: 'ab'.repeat(32), approvalId: 'apr_1' },
        Buffer.alloc(32, 1),
      );
      const parsed = serializeCommitment(JSON.parse(c.leaf.toString('utf8')));
      expect(parsed.ok && parsed.text).toBe(c.leaf.toString('utf8'));
    }
  });

  it('writes the same text as a general canonicalizer with every nullable field null or set', () => {
    const everyNull = event({ agentId: null, owner: null, taskId: null, server: null, target: null });
    const everySet = event({
      taskId: 'task_\ud800x',
      errorCode: 'e\u001f',
      reasons: ['</script>', '\u00e9'],
      policySetHash: 'cd'.repeat(32),
      approvalId: 'apr_2',
      arguments: {},
      reasoning: '',
      result: null,
    });
    for (const sample of [everyNull, everySet]) {
      const c = commitEvent(sample, Buffer.alloc(32, 3));
      expect(c.leafText).toBe(canonicalJson(c.record));
      // Members in another order (a hand-written leaf) give the same canonical text.
      const reversed = Object.fromEntries(Object.entries(c.record).reverse());
      expect(serializeCommitment(reversed)).toMatchObject({ ok: true, text: c.leafText });
    }
  });

  it('commits the policy set hash and the approval id, and refuses a policy set hash that is not a hash', () => {
    const policySetHash = 'c4'.repeat(32);
    const c = commitEvent(event({ policySetHash, approvalId: 'apr_7' }), Buffer.alloc(32));
    expect(c.record).toMatchObject({ policySetHash, approvalId: 'apr_7' });
    expect(c.leaf.toString('utf8')).toContain(`"approvalId":"apr_7"`);
    expect(c.leaf.toString('utf8')).toContain(`"policySetHash":"${policySetHash}"`);
    expect(() => commitEvent(event({ policySetHash: 'v1' }))).toThrow(/policySetHash must be a SHA-256 hash/);
    const record = JSON.parse(c.leaf.toString('utf8'));
    expect(serializeCommitment({ ...record, policySetHash: 'C4'.repeat(32) })).toEqual({
      ok: false,
      message: 'leaf field policySetHash must be a SHA-256 hash (64 lower-case hex digits) or null',
    });
    expect(serializeCommitment({ ...record, approvalId: 7 })).toEqual({
      ok: false,
      message: 'leaf field approvalId must be a string or null',
    });
  });

  it('refuses records with unknown, missing or mistyped fields', () => {
    const record = JSON.parse(commitEvent(event(), Buffer.alloc(32)).leaf.toString('utf8'));
    expect(serializeCommitment({ ...record, extra: 1 })).toMatchObject({
      ok: false,
      message: expect.stringContaining('extra'),
    });
    const { owner: _owner, ...missing } = record;
    expect(serializeCommitment(missing)).toMatchObject({ ok: false, message: 'leaf lacks the field owner' });
    expect(serializeCommitment({ ...record, seq: 1.5 })).toMatchObject({
      ok: false,
      message: 'leaf field seq must be a safe integer',
    });
    expect(serializeCommitment([])).toMatchObject({ ok: false });
  });
});
