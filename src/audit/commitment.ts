/**
 * Commitment records: what the Merkle log commits to for one audit event. A leaf is
 * the RFC 8785 canonical JSON of the record; arguments, reasoning and result enter
 * only as salted hashes, SHA-256(salt || canonical JSON of the plaintext), with one
 * random 32-byte salt per event kept beside the plaintext in audit_content. Erasing
 * the plaintext and the salt leaves a leaf that still verifies but can no longer be
 * linked to any guessed plaintext (crypto-shredding).
 */
import { hash, randomBytes } from 'node:crypto';
import { canonicalJson } from '../core/canonical.js';
import type { AuditEvent } from './events.js';

/** Bytes of the per-event content salt. */
export const SALT_SIZE = 32;

/** The committed fields of one event (version 1). */
export interface CommitmentRecord {
  readonly v: 1;
  readonly id: string;
  readonly seq: number;
  readonly time: number;
  readonly agentId: string | null;
  readonly owner: string | null;
  readonly taskId: string | null;
  readonly method: string;
  readonly server: string | null;
  readonly target: string | null;
  readonly effect: string;
  readonly policyIds: readonly string[];
  readonly reasons: readonly string[];
  readonly outcome: string;
  readonly errorCode: string | null;
  /** Hash of the policy set in force, when the gateway supplies it. */
  readonly policySetHash: string | null;
  /** The approval consumed by the call (not recorded yet: always null). */
  readonly approvalId: string | null;
  readonly argumentsHash: string | null;
  readonly reasoningHash: string | null;
  readonly resultHash: string | null;
}

/** The plaintext fields that are committed by salted hash. */
export const CONTENT_FIELDS = ['arguments', 'reasoning', 'result'] as const;
export type ContentField = (typeof CONTENT_FIELDS)[number];

const HASH_FIELD: Record<ContentField, 'argumentsHash' | 'reasoningHash' | 'resultHash'> = {
  arguments: 'argumentsHash',
  reasoning: 'reasoningHash',
  result: 'resultHash',
};

/** The leaf field that commits to a content field. */
export function hashFieldOf(field: ContentField): 'argumentsHash' | 'reasoningHash' | 'resultHash' {
  return HASH_FIELD[field];
}

/** An event as the log commits it; policySetHash and approvalId are optional until the gateway sets them. */
export type CommittableEvent = AuditEvent & {
  readonly policySetHash?: string | null;
  readonly approvalId?: string | null;
};

/** One event's commitment: the leaf bytes, its salt, and the canonical plaintext that was hashed. */
export interface Commitment {
  /** UTF-8 of the canonical JSON of the record: the Merkle leaf data. */
  readonly leaf: Buffer;
  readonly salt: Buffer;
  readonly record: CommitmentRecord;
  /** Canonical JSON of each content field present in the event, or null when absent. */
  readonly content: Readonly<Record<ContentField, string | null>>;
}

/** Hex SHA-256(salt || text): the salted commitment to one plaintext field. */
export function contentHash(salt: Uint8Array, canonicalText: string): string {
  const text = Buffer.from(canonicalText, 'utf8');
  const input = Buffer.allocUnsafe(salt.length + text.length);
  input.set(salt, 0);
  input.set(text, salt.length);
  // One-shot hash: several times cheaper than a Hash object for inputs this small.
  return hash('sha256', input, 'hex');
}

/**
 * Commit one event: draw a salt (unless given), hash each plaintext field present
 * and serialize the record as RFC 8785 canonical JSON.
 */
export function commitEvent(event: CommittableEvent, salt: Buffer = randomBytes(SALT_SIZE)): Commitment {
  const content = {} as Record<ContentField, string | null>;
  const hashes = {} as Record<'argumentsHash' | 'reasoningHash' | 'resultHash', string | null>;
  for (const field of CONTENT_FIELDS) {
    const value = event[field];
    const text = value === undefined ? null : canonicalJson(value);
    content[field] = text;
    hashes[HASH_FIELD[field]] = text === null ? null : contentHash(salt, text);
  }
  // Members in RFC 8785 order, so serializeCommitment takes its fast path.
  const record: CommitmentRecord = {
    agentId: event.agentId,
    approvalId: event.approvalId ?? null,
    argumentsHash: hashes.argumentsHash,
    effect: event.effect,
    errorCode: event.errorCode,
    id: event.id,
    method: event.method,
    outcome: event.outcome,
    owner: event.owner,
    policyIds: [...event.policyIds],
    policySetHash: event.policySetHash ?? null,
    reasons: [...event.reasons],
    reasoningHash: hashes.reasoningHash,
    resultHash: hashes.resultHash,
    seq: event.seq,
    server: event.server,
    target: event.target,
    taskId: event.taskId,
    time: event.time,
    v: 1,
  };
  // The shape-checked serializer equals canonicalJson for valid records (pinned by a test)
  // and is several times faster; anything unexpected takes the general path.
  const fast = serializeCommitment(record);
  const leaf = fast.ok ? fast.leaf : Buffer.from(canonicalJson(record), 'utf8');
  return { leaf, salt, record, content };
}

/** Convenience form of commitEvent: the leaf bytes and the salt to store with the plaintext. */
export function commitmentLeaf(event: CommittableEvent): { leaf: Buffer; salt: Buffer } {
  const { leaf, salt } = commitEvent(event);
  return { leaf, salt };
}

type FieldKind = 'string' | 'nullableString' | 'integer' | 'strings' | 'one';

const FIELD_KINDS: Record<keyof CommitmentRecord, FieldKind> = {
  v: 'one',
  id: 'string',
  seq: 'integer',
  time: 'integer',
  agentId: 'nullableString',
  owner: 'nullableString',
  taskId: 'nullableString',
  method: 'string',
  server: 'nullableString',
  target: 'nullableString',
  effect: 'string',
  policyIds: 'strings',
  reasons: 'strings',
  outcome: 'string',
  errorCode: 'nullableString',
  policySetHash: 'nullableString',
  approvalId: 'nullableString',
  argumentsHash: 'nullableString',
  reasoningHash: 'nullableString',
  resultHash: 'nullableString',
};

// RFC 8785 §3.2.3 orders members by their names' UTF-16 code units, which is what the default sort does.
const SORTED_FIELDS = (Object.keys(FIELD_KINDS) as (keyof CommitmentRecord)[]).sort();

function fieldProblem(kind: FieldKind, value: unknown): string | undefined {
  switch (kind) {
    case 'one':
      return value === 1 ? undefined : 'must be 1';
    case 'string':
      return typeof value === 'string' ? undefined : 'must be a string';
    case 'nullableString':
      return value === null || typeof value === 'string' ? undefined : 'must be a string or null';
    case 'integer':
      return Number.isSafeInteger(value) ? undefined : 'must be a safe integer';
    case 'strings':
      return Array.isArray(value) && value.every((item) => typeof item === 'string')
        ? undefined
        : 'must be an array of strings';
  }
}

export type CommitmentParse =
  | { readonly ok: true; readonly record: CommitmentRecord; readonly leaf: Buffer }
  | { readonly ok: false; readonly message: string };

/**
 * Check that an untrusted value has exactly the shape of a version-1 commitment record
 * and serialize it. For this shape (strings, nulls, safe integers, arrays of strings)
 * JSON.stringify with the members in RFC 8785 order produces the canonical form, about
 * ten times faster than a general canonicalizer; a test pins the equality. Offline
 * verification of large exports depends on that speed.
 */
export function serializeCommitment(value: unknown): CommitmentParse {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, message: 'leaf is not a JSON object' };
  }
  const input = value as Record<string, unknown>;
  const keys = Object.keys(input);
  // Fast path: a record parsed from canonical text already has its members in order.
  if (keys.length === SORTED_FIELDS.length && keys.every((key, i) => key === SORTED_FIELDS[i])) {
    const problem = SORTED_FIELDS.find((key) => fieldProblem(FIELD_KINDS[key], input[key]) !== undefined);
    if (problem === undefined) {
      return {
        ok: true,
        record: input as unknown as CommitmentRecord,
        leaf: Buffer.from(JSON.stringify(input), 'utf8'),
      };
    }
  }
  for (const key of keys) {
    if (!(key in FIELD_KINDS))
      return { ok: false, message: `leaf has an unknown field ${JSON.stringify(key)}` };
  }
  const ordered: Record<string, unknown> = {};
  for (const key of SORTED_FIELDS) {
    if (!(key in input)) return { ok: false, message: `leaf lacks the field ${key}` };
    const problem = fieldProblem(FIELD_KINDS[key], input[key]);
    if (problem !== undefined) return { ok: false, message: `leaf field ${key} ${problem}` };
    ordered[key] = input[key];
  }
  return {
    ok: true,
    record: ordered as unknown as CommitmentRecord,
    leaf: Buffer.from(JSON.stringify(ordered), 'utf8'),
  };
}
