/**
 * Offline verification of an export bundle (see bundle.ts), needing neither the
 * server nor the database, and a live check of the stored log. Both report the first
 * problem found as a value; they throw only for bugs.
 */
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../core/errors.js';
import type { Store } from '../store/index.js';
import { BUNDLE_FILES, type BundleProofs, MANIFEST_TYPE } from './bundle.js';
import { openCheckpoint } from './checkpoint.js';
import {
  CONTENT_FIELDS,
  type CommitmentRecord,
  contentHash,
  hashFieldOf,
  leafTextOf,
  serializeCommitment,
} from './commitment.js';
import {
  HASH_SIZE,
  hashLeafText,
  MerkleFrontier,
  verifyConsistency,
  verifyInclusion,
} from './merkle.js';
import { type NoteVerifier, openNote, parseVerifierKey } from './note.js';
import { commitmentRecordOf } from './query.js';
import type { TransparencyLog } from './tlog.js';

export type BundleVerification =
  | {
      readonly ok: true;
      /** Events checked. */
      readonly events: number;
      /** Checkpoints checked. */
      readonly checkpoints: number;
      /** Events whose content was erased. */
      readonly erased: number;
      readonly fromSeq: number;
      readonly toSeq: number;
      readonly treeSize: number;
    }
  | { readonly ok: false; readonly problem: string };

export type LiveVerification =
  | { readonly ok: true; readonly events: number; readonly checkpoints: number }
  | { readonly ok: false; readonly problem: string };

/** Raised inside the verifiers to stop at the first problem; never escapes them. */
class Problem extends Error {}

function problem(message: string): never {
  throw new Problem(message);
}

function readText(dir: string, name: string): string {
  const path = join(dir, name);
  if (!existsSync(path)) problem(`${name}: missing`);
  return readFileSync(path, 'utf8');
}

interface BundleCheckpoint {
  readonly size: number;
  readonly root: Buffer;
}

/** checkpoints.txt holds signed notes separated by blank lines; a checkpoint body has none inside. */
function splitNotes(text: string): string[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const notes: string[] = [];
  let i = 0;
  while (i < lines.length) {
    if (lines[i] === '') {
      i++;
      continue;
    }
    const body: string[] = [];
    while (i < lines.length && lines[i] !== '') body.push(lines[i++]!);
    i++;
    const signatures: string[] = [];
    while (i < lines.length && lines[i] !== '') signatures.push(lines[i++]!);
    notes.push(`${body.join('\n')}\n\n${signatures.length > 0 ? `${signatures.join('\n')}\n` : ''}`);
  }
  return notes;
}

function checkCheckpoints(text: string, verifier: NoteVerifier): BundleCheckpoint[] {
  const notes = splitNotes(text);
  if (notes.length === 0) problem('checkpoints.txt: no checkpoints');
  const checkpoints: BundleCheckpoint[] = [];
  for (const [i, note] of notes.entries()) {
    const n = i + 1;
    const opened = openCheckpoint(note, { verifiers: [verifier], origin: verifier.name });
    if (!opened.ok) {
      switch (opened.code) {
        case 'bad_signature':
          problem(`checkpoint ${n}: bad signature`);
          break;
        case 'unknown_key':
          problem(`checkpoint ${n}: not signed by the verifier key ${verifier.name} (${opened.message})`);
          break;
        default:
          problem(`checkpoint ${n}: ${opened.message}`);
      }
    }
    const { treeSize, rootHash } = opened.checkpoint;
    const previous = checkpoints.at(-1);
    if (treeSize === 0) problem(`checkpoint ${n}: tree size is 0`);
    if (previous !== undefined && treeSize <= previous.size) {
      problem(
        `checkpoint ${n}: size ${treeSize} does not exceed checkpoint ${n - 1}'s size ${previous.size}`,
      );
    }
    checkpoints.push({ size: treeSize, root: rootHash });
  }
  return checkpoints;
}

interface Manifest {
  readonly fromSeq: number;
  readonly toSeq: number;
  readonly covering: number;
}

function checkManifest(
  text: string,
  verifier: NoteVerifier,
  checkpoints: readonly BundleCheckpoint[],
): Manifest {
  const opened = openNote(text, [verifier]);
  if (!opened.ok) {
    problem(
      opened.code === 'bad_signature' ? 'manifest.txt: bad signature' : `manifest.txt: ${opened.message}`,
    );
  }
  const lines = opened.note.text.slice(0, -1).split('\n');
  const [origin, type, events, checkpoint] = lines;
  if (origin !== verifier.name)
    problem(`manifest.txt: origin ${JSON.stringify(origin)} is not ${verifier.name}`);
  if (type !== MANIFEST_TYPE) problem(`manifest.txt: not a ${MANIFEST_TYPE} manifest`);
  const range = /^events ([1-9][0-9]*) ([1-9][0-9]*)$/.exec(events ?? '');
  const covered = /^checkpoint ([1-9][0-9]*)$/.exec(checkpoint ?? '');
  if (range === null || covered === null) problem('manifest.txt: malformed events or checkpoint line');
  const manifest = { fromSeq: Number(range[1]), toSeq: Number(range[2]), covering: Number(covered[1]) };
  if (manifest.fromSeq > manifest.toSeq || manifest.toSeq > manifest.covering) {
    problem(
      `manifest.txt: range ${manifest.fromSeq}..${manifest.toSeq} is not covered by size ${manifest.covering}`,
    );
  }
  if (!checkpoints.some((c) => c.size === manifest.covering)) {
    problem(`manifest.txt: names checkpoint size ${manifest.covering}, which checkpoints.txt lacks`);
  }
  return manifest;
}

/** leaves.txt as one buffer of back-to-back 32-byte hashes. */
function readLeaves(text: string, expected: number): Buffer {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (lines.length !== expected) {
    problem(`leaves.txt: ${lines.length} leaf hashes, the last checkpoint has size ${expected}`);
  }
  const leaves = Buffer.alloc(expected * HASH_SIZE);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    // Buffer.write stops at the first non-hex digit, so a short count means a bad line.
    if (line.length !== 2 * HASH_SIZE || leaves.write(line, i * HASH_SIZE, 'hex') !== HASH_SIZE) {
      problem(`leaves.txt line ${i + 1}: not a ${2 * HASH_SIZE}-digit hex hash`);
    }
  }
  return leaves;
}

function checkRoots(leaves: Buffer, checkpoints: readonly BundleCheckpoint[]): void {
  const frontier = new MerkleFrontier();
  let next = 0;
  const count = leaves.length / HASH_SIZE;
  for (let i = 0; i < count && next < checkpoints.length; i++) {
    frontier.append(leaves.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE));
    const checkpoint = checkpoints[next]!;
    if (frontier.size === checkpoint.size) {
      if (!frontier.root().equals(checkpoint.root)) {
        problem(
          `checkpoint ${next + 1}: root hash does not match the leaves in leaves.txt (size ${checkpoint.size})`,
        );
      }
      next++;
    }
  }
}

function decodeProof(value: unknown, what: string): Buffer[] {
  if (!Array.isArray(value) || !value.every((node) => typeof node === 'string')) {
    problem(`proofs.json: ${what} is not a list of base64 hashes`);
  }
  return value.map((node: string) => Buffer.from(node, 'base64'));
}

function checkProofs(
  text: string,
  checkpoints: readonly BundleCheckpoint[],
  leaves: Buffer,
  manifest: Manifest,
): void {
  let proofs: BundleProofs;
  try {
    proofs = JSON.parse(text) as BundleProofs;
  } catch {
    problem('proofs.json: not valid JSON');
  }
  for (let i = 1; i < checkpoints.length; i++) {
    const [a, b] = [checkpoints[i - 1]!, checkpoints[i]!];
    const what = `consistency proof from checkpoint ${i} (size ${a.size}) to checkpoint ${i + 1} (size ${b.size})`;
    const entry = proofs.consistency?.find?.((p) => p.size1 === a.size && p.size2 === b.size);
    if (entry === undefined) problem(`proofs.json: no ${what}`);
    const result = verifyConsistency({
      size1: a.size,
      size2: b.size,
      root1: a.root,
      root2: b.root,
      proof: decodeProof(entry.proof, what),
    });
    if (!result.ok) problem(`proofs.json: ${what} does not verify: ${result.message}`);
  }
  const covering = checkpoints.find((c) => c.size === manifest.covering)!;
  for (const seq of new Set([manifest.fromSeq, manifest.toSeq])) {
    const what = `inclusion proof of event seq ${seq}`;
    const entry = proofs.inclusion?.find?.((p) => p.seq === seq && p.treeSize === covering.size);
    if (entry === undefined) problem(`proofs.json: no ${what} in tree size ${covering.size}`);
    const result = verifyInclusion({
      leafHash: leaves.subarray((seq - 1) * HASH_SIZE, seq * HASH_SIZE),
      index: seq - 1,
      treeSize: covering.size,
      proof: decodeProof(entry.proof, what),
      root: covering.root,
    });
    if (!result.ok) problem(`proofs.json: ${what} does not verify: ${result.message}`);
  }
}

/** Lines of a file, a megabyte of them at a time (much faster than node:readline for big exports). */
async function* readLineBatches(path: string): AsyncGenerator<string[]> {
  let rest = '';
  for await (const chunk of createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 })) {
    const lines = (rest + (chunk as string)).split('\n');
    rest = lines.pop()!;
    yield lines;
  }
  if (rest !== '') yield [rest];
}

interface EventLine {
  leaf?: unknown;
  content?: unknown;
  erased?: unknown;
}

/** Problems with an event's content against the salted hashes in its leaf, or undefined. */
function contentProblem(record: CommitmentRecord, line: EventLine): string | undefined {
  const committed = CONTENT_FIELDS.some((field) => record[hashFieldOf(field)] !== null);
  if (line.content === null || line.content === undefined) {
    if (committed && line.erased !== true) return 'content is missing but the event is not marked erased';
    if (!committed && line.erased === true) return 'marked erased but the leaf commits to no content';
    return undefined;
  }
  if (line.erased === true) return 'marked erased but carries content';
  const content = line.content as Record<string, unknown>;
  const salt = typeof content.salt === 'string' ? Buffer.from(content.salt, 'hex') : undefined;
  if (salt === undefined || salt.length !== 32 || content.salt !== salt.toString('hex')) {
    return 'content salt is not 64 lower-case hex digits';
  }
  for (const field of CONTENT_FIELDS) {
    const text = content[field] ?? null;
    const committedHash = record[hashFieldOf(field)];
    if (text !== null && typeof text !== 'string') return `content ${field} is not canonical JSON text`;
    if (text === null && committedHash !== null) return `content lacks the ${field} its leaf commits to`;
    if (text !== null && committedHash === null) return `content has ${field} its leaf does not commit to`;
    if (text !== null && contentHash(salt, text) !== committedHash) {
      return `${field} do not match the leaf's salted commitment`;
    }
  }
  return undefined;
}

async function checkEvents(
  path: string,
  leaves: Buffer,
  manifest: Manifest,
): Promise<{ events: number; erased: number }> {
  if (!existsSync(path)) problem(`${BUNDLE_FILES.events}: missing`);
  let lineNumber = 0;
  let previous = 0;
  let events = 0;
  let erased = 0;
  // A gap is reported unless a later line fills it out of order (then the reorder is the problem).
  let gap: { seq: number; message: string } | undefined;
  const fail = (message: string): never => problem(gap?.message ?? message);
  for await (const batch of readLineBatches(path))
    for (const text of batch) {
      lineNumber++;
      if (text === '') fail(`events.jsonl line ${lineNumber}: empty line`);
      let line: EventLine;
      try {
        line = JSON.parse(text) as EventLine;
      } catch {
        fail(`events.jsonl line ${lineNumber}: not valid JSON`);
      }
      const parsed = serializeCommitment(line!.leaf);
      if (!parsed.ok) fail(`events.jsonl line ${lineNumber}: ${parsed.message}`);
      const { record, text: leaf } = parsed as Extract<typeof parsed, { ok: true }>;
      const seq = record.seq;
      if (seq <= previous) {
        if (gap !== undefined && seq === gap.seq) gap = undefined;
        fail(`events out of order at line ${lineNumber}: seq ${seq} after seq ${previous}`);
      }
      if (seq < manifest.fromSeq || seq > manifest.toSeq) {
        fail(
          `event seq ${seq} at line ${lineNumber} is outside the signed export range ${manifest.fromSeq}..${manifest.toSeq}`,
        );
      }
      const expected = previous === 0 ? manifest.fromSeq : previous + 1;
      if (seq > expected && gap === undefined)
        gap = { seq: expected, message: `event seq ${expected} missing` };
      if (!hashLeafText(leaf).equals(leaves.subarray((seq - 1) * HASH_SIZE, seq * HASH_SIZE))) {
        fail(`event seq ${seq}: leaf hash does not match its fields`);
      }
      const contentIssue = contentProblem(record, line!);
      if (contentIssue !== undefined) fail(`event seq ${seq}: ${contentIssue}`);
      if (line!.erased === true) erased++;
      previous = seq;
      events++;
    }
  if (gap !== undefined) problem(gap.message);
  if (previous < manifest.toSeq)
    problem(`event seq ${previous === 0 ? manifest.fromSeq : previous + 1} missing`);
  return { events, erased };
}

/**
 * Verify an export bundle offline. The verifier key comes from `options.verifierKey`
 * (the published key: preferred) or the bundle's key.txt. Checks, in order: the
 * checkpoint signatures and growing sizes, the signed manifest, the roots recomputed
 * from leaves.txt, the proofs, then every event against its leaf and its content
 * against the salted commitments. Returns the first problem found.
 */
export async function verifyBundle(
  dir: string,
  options: { verifierKey?: string } = {},
): Promise<BundleVerification> {
  try {
    const keyText = options.verifierKey ?? readText(dir, BUNDLE_FILES.key).trim();
    let verifier: NoteVerifier;
    try {
      verifier = parseVerifierKey(keyText);
    } catch (error) {
      problem(`${options.verifierKey === undefined ? 'key.txt' : 'the given key'}: ${errorMessage(error)}`);
    }
    const checkpoints = checkCheckpoints(readText(dir, BUNDLE_FILES.checkpoints), verifier);
    const manifest = checkManifest(readText(dir, BUNDLE_FILES.manifest), verifier, checkpoints);
    const treeSize = checkpoints.at(-1)!.size;
    const leaves = readLeaves(readText(dir, BUNDLE_FILES.leaves), treeSize);
    checkRoots(leaves, checkpoints);
    checkProofs(readText(dir, BUNDLE_FILES.proofs), checkpoints, leaves, manifest);
    const { events, erased } = await checkEvents(join(dir, BUNDLE_FILES.events), leaves, manifest);
    return {
      ok: true,
      events,
      checkpoints: checkpoints.length,
      erased,
      fromSeq: manifest.fromSeq,
      toSeq: manifest.toSeq,
      treeSize,
    };
  } catch (error) {
    if (error instanceof Problem) return { ok: false, problem: error.message };
    throw error;
  }
}

/**
 * Check the stored log against its latest checkpoint: the checkpoint's signature, each
 * event's leaf rebuilt from its audit_events row against the stored leaf hash, the root
 * recomputed from the rebuilt leaves, and each remaining content row against its salted
 * hashes. Reads every event (O(n)).
 */
export async function verifyLive(store: Store, log: TransparencyLog): Promise<LiveVerification> {
  try {
    const latest = log.latestCheckpoint;
    if (latest === undefined) return { ok: true, events: 0, checkpoints: 0 };
    const verifier = parseVerifierKey(log.verifierKey);
    const opened = openCheckpoint(latest.note, { verifiers: [verifier], origin: log.origin });
    if (!opened.ok)
      problem(
        `checkpoint ${latest.size}: ${opened.code === 'bad_signature' ? 'bad signature' : opened.message}`,
      );
    if (opened.checkpoint.treeSize !== latest.size || !opened.checkpoint.rootHash.equals(latest.root)) {
      problem(`checkpoint ${latest.size}: the signed note does not match the stored size and root`);
    }
    const frontier = new MerkleFrontier();
    for (let after = 0; after < latest.size; ) {
      const rows = await store.db
        .selectFrom('audit_events')
        .leftJoin('audit_content', 'audit_content.event_id', 'audit_events.id')
        .selectAll('audit_events')
        .select([
          'audit_content.salt',
          'audit_content.arguments',
          'audit_content.reasoning',
          'audit_content.result',
        ])
        .where('audit_events.seq', '>', after)
        .where('audit_events.seq', '<=', latest.size)
        .orderBy('audit_events.seq')
        .limit(5000)
        .execute();
      if (rows.length === 0) break;
      for (const row of rows) {
        const seq = Number(row.seq);
        if (seq !== frontier.size + 1) problem(`event seq ${frontier.size + 1} missing from audit_events`);
        if (row.leaf_hash === null || row.leaf_hash === undefined) problem(`event seq ${seq}: has no leaf hash`);
        let record: CommitmentRecord;
        try {
          record = commitmentRecordOf(row);
        } catch {
          problem(`event seq ${seq}: audit_events.policy_ids or reasons is not JSON`);
        }
        const leaf = leafTextOf(record);
        if (!leaf.ok) problem(`event seq ${seq}: ${leaf.message}`);
        const leafHash = hashLeafText(leaf.text);
        if (leafHash.toString('hex') !== row.leaf_hash) {
          problem(`event seq ${seq}: the audit_events row does not match its leaf hash (a committed field was changed)`);
        }
        frontier.append(leafHash);
        if (row.salt !== null && row.salt !== undefined) {
          const issue = contentProblem(record, {
            content: {
              salt: row.salt,
              arguments: row.arguments,
              reasoning: row.reasoning,
              result: row.result,
            },
          });
          if (issue !== undefined) problem(`event seq ${seq}: ${issue}`);
        }
      }
      after = Number(rows[rows.length - 1]!.seq);
    }
    if (frontier.size !== latest.size) problem(`event seq ${frontier.size + 1} missing from audit_events`);
    if (!frontier.root().equals(latest.root))
      problem(`checkpoint ${latest.size}: root does not match the stored leaves`);
    return { ok: true, events: frontier.size, checkpoints: 1 };
  } catch (error) {
    if (error instanceof Problem) return { ok: false, problem: error.message };
    throw error;
  }
}
