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
import { CustosError } from '../core/errors.js';
import type { AuditEventInput } from './events.js';
import { hashLeafText } from './merkle.js';

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

/** An event as the log commits it: policySetHash and approvalId default to null. */
export type CommittableEvent = AuditEventInput & { readonly id: string; readonly seq: number };

/** One event's commitment: the leaf, its hash, its salt, and the canonical plaintext that was hashed. */
export interface Commitment {
  /** The canonical JSON of the record: the Merkle leaf data, as text. */
  readonly leafText: string;
  /** RFC 9162 leaf hash of the leaf data. */
  readonly leafHash: Buffer;
  /** UTF-8 of leafText. */
  readonly leaf: Buffer;
  readonly salt: Buffer;
  readonly record: CommitmentRecord;
  /** Canonical JSON of each content field present in the event, or null when absent. */
  readonly content: Readonly<Record<ContentField, string | null>>;
}

// Scratch space for salt || text: hashing is the hot path of appends and offline verification,
// and one reused buffer saves two allocations per field.
let scratch = Buffer.allocUnsafe(64 * 1024);

/**
 * Hex SHA-256(salt || text): the salted commitment to one plaintext field. The salt is
 * bytes, or (offline verification) its 64 hex digits, checked by the caller.
 */
export function contentHash(salt: Uint8Array | string, canonicalText: string): string {
  // A UTF-16 code unit never takes more than 3 UTF-8 bytes.
  const most = salt.length + 3 * canonicalText.length;
  if (most > scratch.length) scratch = Buffer.allocUnsafe(Math.max(most, 2 * scratch.length));
  let saltLength = salt.length;
  if (typeof salt === 'string') saltLength = scratch.write(salt, 0, 'hex');
  else scratch.set(salt, 0);
  const length = saltLength + scratch.write(canonicalText, saltLength, 'utf8');
  // One-shot hash: several times cheaper than a Hash object for inputs this small.
  return hash('sha256', scratch.subarray(0, length), 'hex');
}

class EventCommitment implements Commitment {
  constructor(
    readonly leafText: string,
    readonly leafHash: Buffer,
    readonly salt: Buffer,
    readonly record: CommitmentRecord,
    readonly content: Readonly<Record<ContentField, string | null>>,
  ) {}

  get leaf(): Buffer {
    return Buffer.from(this.leafText, 'utf8');
  }
}

/**
 * Commit one event: draw a salt (unless given), hash each plaintext field present
 * and serialize the record as RFC 8785 canonical JSON.
 */
export function commitEvent(event: CommittableEvent, salt: Buffer = randomBytes(SALT_SIZE)): Commitment {
  const args = event.arguments === undefined ? null : canonicalJson(event.arguments);
  const reasoning = event.reasoning === undefined ? null : canonicalJson(event.reasoning);
  const result = event.result === undefined ? null : canonicalJson(event.result);
  const record: CommitmentRecord = {
    agentId: event.agentId,
    approvalId: event.approvalId ?? null,
    argumentsHash: args === null ? null : contentHash(salt, args),
    effect: event.effect,
    errorCode: event.errorCode,
    id: event.id,
    method: event.method,
    outcome: event.outcome,
    owner: event.owner,
    policyIds: event.policyIds,
    policySetHash: event.policySetHash ?? null,
    reasons: event.reasons,
    reasoningHash: reasoning === null ? null : contentHash(salt, reasoning),
    resultHash: result === null ? null : contentHash(salt, result),
    seq: event.seq,
    server: event.server,
    target: event.target,
    taskId: event.taskId,
    time: event.time,
    v: 1,
  };
  const text = leafTextOf(record);
  // Fail closed: an event the verifier would refuse is never appended.
  if (!text.ok) throw new CustosError('internal', `audit event ${event.id}: ${text.message}`);
  return new EventCommitment(text.text, hashLeafText(text.text), salt, record, {
    arguments: args,
    reasoning,
    result,
  });
}

/** Convenience form of commitEvent: the leaf bytes and the salt to store with the plaintext. */
export function commitmentLeaf(event: CommittableEvent): { leaf: Buffer; salt: Buffer } {
  const { leaf, salt } = commitEvent(event);
  return { leaf, salt };
}

type FieldKind = 'string' | 'nullableString' | 'nullableHash' | 'integer' | 'strings' | 'one';

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
  policySetHash: 'nullableHash',
  approvalId: 'nullableString',
  argumentsHash: 'nullableHash',
  reasoningHash: 'nullableHash',
  resultHash: 'nullableHash',
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
      return isNullableString(value) ? undefined : 'must be a string or null';
    case 'nullableHash':
      return isNullableHash(value) ? undefined : 'must be a SHA-256 hash (64 lower-case hex digits) or null';
    case 'integer':
      return Number.isSafeInteger(value) ? undefined : 'must be a safe integer';
    case 'strings':
      return isStrings(value) ? undefined : 'must be an array of strings';
  }
}

export type LeafText =
  | { readonly ok: true; readonly text: string }
  | { readonly ok: false; readonly message: string };

/**
 * The RFC 8785 canonical JSON of a commitment record, checking every field's type. For
 * this shape (strings, nulls, safe integers, arrays of strings) canonical JSON is the
 * members in sorted order with JSON.stringify's strings and integers; a test pins the
 * equality with a general canonicalizer, which is several times slower. Appends and
 * offline verification of large exports depend on that speed, so the members are
 * written out in one template (a loop over them with keyed reads cost four times as
 * much); a record that fails a check is walked member by member to name the field.
 */
export function leafTextOf(r: CommitmentRecord): LeafText {
  if (
    r.v === 1 &&
    typeof r.id === 'string' &&
    typeof r.method === 'string' &&
    typeof r.effect === 'string' &&
    typeof r.outcome === 'string' &&
    Number.isSafeInteger(r.seq) &&
    Number.isSafeInteger(r.time) &&
    isNullableString(r.agentId) &&
    isNullableString(r.approvalId) &&
    isNullableString(r.errorCode) &&
    isNullableString(r.owner) &&
    isNullableString(r.server) &&
    isNullableString(r.target) &&
    isNullableString(r.taskId) &&
    isNullableHash(r.argumentsHash) &&
    isNullableHash(r.policySetHash) &&
    isNullableHash(r.reasoningHash) &&
    isNullableHash(r.resultHash) &&
    isStrings(r.policyIds) &&
    isStrings(r.reasons)
  ) {
    // Members in RFC 8785 order (UTF-16 code units of the names); hex hashes need no escaping.
    return {
      ok: true,
      text: `{"agentId":${nullableJson(r.agentId)},"approvalId":${nullableJson(r.approvalId)},"argumentsHash":${nullableHex(r.argumentsHash)},"effect":${JSON.stringify(r.effect)},"errorCode":${nullableJson(r.errorCode)},"id":${JSON.stringify(r.id)},"method":${JSON.stringify(r.method)},"outcome":${JSON.stringify(r.outcome)},"owner":${nullableJson(r.owner)},"policyIds":${JSON.stringify(r.policyIds)},"policySetHash":${nullableHex(r.policySetHash)},"reasoningHash":${nullableHex(r.reasoningHash)},"reasons":${JSON.stringify(r.reasons)},"resultHash":${nullableHex(r.resultHash)},"seq":${r.seq},"server":${nullableJson(r.server)},"target":${nullableJson(r.target)},"taskId":${nullableJson(r.taskId)},"time":${r.time},"v":1}`,
    };
  }
  const input = r as unknown as Record<string, unknown>;
  for (const key of SORTED_FIELDS) {
    const problem = fieldProblem(FIELD_KINDS[key], input[key]);
    if (problem !== undefined) return { ok: false, message: `leaf field ${key} ${problem}` };
  }
  // Unreachable: the checks above and fieldProblem accept the same values.
  throw new CustosError('internal', 'leaf record failed a check that names no field');
}

function isNullableString(value: unknown): value is string | null {
  return value === null || typeof value === 'string';
}

function isNullableHash(value: unknown): value is string | null {
  return value === null || isHexHash(value);
}

function isStrings(value: unknown): value is readonly string[] {
  if (!Array.isArray(value)) return false;
  for (const item of value) if (typeof item !== 'string') return false;
  return true;
}

function nullableJson(value: string | null): string {
  return value === null ? 'null' : JSON.stringify(value);
}

function nullableHex(value: string | null): string {
  return value === null ? 'null' : `"${value}"`;
}

/** 64 lower-case hex digits (a loop: cheaper than a regular expression on the verifier's hot path). */
export function isHexHash(value: unknown): value is string {
  if (typeof value !== 'string' || value.length !== 64) return false;
  for (let i = 0; i < 64; i++) {
    const c = value.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

export type CommitmentParse =
  | { readonly ok: true; readonly record: CommitmentRecord; readonly text: string }
  | { readonly ok: false; readonly message: string };

/**
 * Check that an untrusted value has exactly the shape of a version-1 commitment record
 * and give its canonical JSON text (see leafTextOf).
 */
export function serializeCommitment(value: unknown): CommitmentParse {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, message: 'leaf is not a JSON object' };
  }
  const input = value as Record<string, unknown>;
  const keys = Object.keys(input);
  // A parsed canonical leaf lists exactly the fields, in order: one comparison each.
  if (keys.length === SORTED_FIELDS.length && keys.every((key, i) => key === SORTED_FIELDS[i])) {
    const record = input as unknown as CommitmentRecord;
    const text = leafTextOf(record);
    return text.ok ? { ok: true, record, text: text.text } : text;
  }
  for (const key of keys) {
    if (!Object.hasOwn(FIELD_KINDS, key))
      return { ok: false, message: `leaf has an unknown field ${JSON.stringify(key)}` };
  }
  if (keys.length !== SORTED_FIELDS.length) {
    const missing = SORTED_FIELDS.find((key) => !Object.hasOwn(input, key));
    return { ok: false, message: `leaf lacks the field ${missing}` };
  }
  const record = input as unknown as CommitmentRecord;
  const text = leafTextOf(record);
  return text.ok ? { ok: true, record, text: text.text } : text;
}
