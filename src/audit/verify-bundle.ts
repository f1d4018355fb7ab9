/**
 * Offline verification of an export bundle (see bundle.ts), needing neither the
 * server nor the database, and a live check of the stored log. Both report the first
 * problem found as a value; they throw only for bugs.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { errorMessage } from '../core/errors.js';
import type { Store } from '../store/index.js';
import { BUNDLE_FILES, type BundleProofs, MANIFEST_TYPE } from './bundle.js';
import { openCheckpoint } from './checkpoint.js';
import { type CommitmentRecord, leafTextOf } from './commitment.js';
import { HASH_SIZE, hashLeafText, MerkleFrontier, verifyConsistency, verifyInclusion } from './merkle.js';
import { type NoteVerifier, openNote, parseVerifierKey } from './note.js';
import { commitmentRecordOf } from './query.js';
import type { TransparencyLog } from './tlog.js';
import {
  checkEventRange,
  checkLines,
  contentProblem,
  type EventRange,
  type LinesResult,
  readLineBatches,
} from './verify-events.js';

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

/** The first problem is an event line whose fields do not hash to its leaf (see explainLeafMismatch). */
class LeafMismatch extends Error {
  constructor(
    readonly line: number,
    readonly seq: number,
    readonly detail: string,
  ) {
    super(detail);
  }
}

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

/**
 * The order, range and gap checks over the seqs of events.jsonl, in line order, raising
 * the first problem exactly as one pass over the file would: a line's own problem counts
 * only once every earlier line passed and its seq passed these checks.
 */
class EventOrder {
  lineNumber = 0;
  previous = 0;
  events = 0;
  // A gap is reported unless a later line fills it out of order (then the reorder is the problem).
  gap: { seq: number; message: string } | undefined;

  constructor(private readonly manifest: Manifest) {}

  private fail(message: string): never {
    problem(this.gap?.message ?? message);
  }

  /** Apply the result of the next run of lines. */
  apply(result: LinesResult): void {
    const { seqs, problem: found } = result;
    const { fromSeq, toSeq } = this.manifest;
    const count = found === undefined ? seqs.length : found.index + 1;
    for (let i = 0; i < count; i++) {
      this.lineNumber++;
      if (found !== undefined && i === found.index && found.stage === 'line') {
        this.fail(`events.jsonl line ${this.lineNumber}: ${found.detail}`);
      }
      const seq = seqs[i]!;
      if (seq <= this.previous) {
        if (this.gap !== undefined && seq === this.gap.seq) {
          // The line fills the first gap: the event was moved, not added.
          this.gap = undefined;
          this.fail(`events out of order at line ${this.lineNumber}: seq ${seq} after seq ${this.previous}`);
        }
        // With no gap pending (fail reports a pending gap first), seqs fromSeq..previous were all
        // seen in order, so this line is a second event with a seq already taken.
        this.fail(
          `event inserted at line ${this.lineNumber}: seq ${seq} ${seq === this.previous ? 'repeats the line before' : 'was already seen'}`,
        );
      }
      if (seq < fromSeq || seq > toSeq) {
        this.fail(
          `event inserted at line ${this.lineNumber}: seq ${seq} is outside the signed export range ${fromSeq}..${toSeq}`,
        );
      }
      const expected = this.previous === 0 ? fromSeq : this.previous + 1;
      if (seq > expected && this.gap === undefined)
        this.gap = { seq: expected, message: `event seq ${expected} missing` };
      if (found !== undefined && i === found.index && found.stage === 'leaf' && this.gap === undefined) {
        throw new LeafMismatch(this.lineNumber, seq, found.detail);
      }
      if (found !== undefined && i === found.index && (found.stage === 'event' || found.stage === 'leaf'))
        this.fail(found.detail);
      this.previous = seq;
      this.events++;
    }
  }

  finish(): void {
    if (this.gap !== undefined) problem(this.gap.message);
    if (this.previous < this.manifest.toSeq)
      problem(`event seq ${this.previous === 0 ? this.manifest.fromSeq : this.previous + 1} missing`);
  }
}

// Below this size a file is checked on the calling thread: starting workers costs more.
const minBytesPerWorker = 32 << 20;
const workerScript = new URL('./verify-worker.js', import.meta.url);

function workerAvailable(): boolean {
  // From TypeScript sources (tests) there is no compiled worker to start.
  return workerScript.protocol === 'file:' && existsSync(fileURLToPath(workerScript));
}

/** How many threads to check events.jsonl with by default: one per core (at most 4), for big files. */
function defaultParallelism(size: number): number {
  if (!workerAvailable()) return 1;
  return Math.max(1, Math.min(availableParallelism(), 4, Math.floor(size / minBytesPerWorker)));
}

/** Split a file into `parts` byte ranges of whole lines. */
function lineRanges(path: string, size: number, parts: number): { start: number; end: number }[] {
  const bounds = [0];
  const fd = openSync(path, 'r');
  try {
    const window = Buffer.alloc(64 * 1024);
    for (let k = 1; k < parts; k++) {
      let at = Math.floor((k * size) / parts);
      if (at <= bounds.at(-1)!) continue;
      for (;;) {
        const read = readSync(fd, window, 0, window.length, at);
        if (read === 0) {
          at = size;
          break;
        }
        const newline = window.subarray(0, read).indexOf(10);
        if (newline >= 0) {
          at += newline + 1;
          break;
        }
        at += read;
      }
      if (at < size && at > bounds.at(-1)!) bounds.push(at);
    }
  } finally {
    closeSync(fd);
  }
  bounds.push(size);
  return bounds.slice(1).map((end, i) => ({ start: bounds[i]!, end }));
}

/**
 * Check every event line against its leaf and its content, then the order of seqs.
 * Large files are split into line ranges checked by worker threads; `signal` stops them.
 */
async function checkEvents(
  path: string,
  leaves: Buffer,
  manifest: Manifest,
  parallelism: number | undefined,
  signal: AbortSignal,
): Promise<{ events: number; erased: number }> {
  try {
    return await checkEventLines(path, leaves, manifest, parallelism, signal);
  } catch (error) {
    if (error instanceof LeafMismatch) problem(await explainLeafMismatch(path, error, leaves, manifest));
    throw error;
  }
}

/**
 * A line whose fields do not hash to its leaf was changed, unless the next line is the genuine
 * event with the same seq: then the first is a forged event inserted before it. Read only on
 * this failure path (one more pass over the file, up to that line).
 */
async function explainLeafMismatch(
  path: string,
  mismatch: LeafMismatch,
  leaves: Buffer,
  manifest: Manifest,
): Promise<string> {
  let seen = 0;
  for await (const batch of readLineBatches(path)) {
    if (seen + batch.length <= mismatch.line) {
      seen += batch.length;
      continue;
    }
    const next: LinesResult = { seqs: [], erased: 0 };
    checkLines([batch[mismatch.line - seen]!], { leaves, ...manifest }, next);
    if (next.problem === undefined && next.seqs[0] === mismatch.seq) {
      return `event inserted at line ${mismatch.line}: seq ${mismatch.seq} does not match its leaf, and line ${mismatch.line + 1} is the event seq ${mismatch.seq} that does`;
    }
    break;
  }
  return mismatch.detail;
}

async function checkEventLines(
  path: string,
  leaves: Buffer,
  manifest: Manifest,
  parallelism: number | undefined,
  signal: AbortSignal,
): Promise<{ events: number; erased: number }> {
  if (!existsSync(path)) problem(`${BUNDLE_FILES.events}: missing`);
  const size = statSync(path).size;
  const threads = parallelism ?? defaultParallelism(size);
  const order = new EventOrder(manifest);
  let erased = 0;
  if (threads <= 1) {
    const result: LinesResult = { seqs: [], erased: 0 };
    for await (const batch of readLineBatches(path)) {
      result.seqs = [];
      checkLines(batch, { leaves, ...manifest }, result);
      order.apply(result);
      if (signal.aborted) return { events: 0, erased: 0 };
    }
    erased = result.erased;
  } else {
    // The workers read the leaf hashes from shared memory rather than a copy each.
    const shared = new Uint8Array(new SharedArrayBuffer(leaves.length));
    shared.set(leaves);
    const ranges = lineRanges(path, size, threads).map(
      ({ start, end }): EventRange => ({ path, start, end, leaves: shared, ...manifest }),
    );
    // Without a compiled worker (tests run the TypeScript sources) the ranges run here, one after another.
    const workers = workerAvailable()
      ? ranges.map((range) => new Worker(workerScript, { workerData: range }))
      : undefined;
    // Listen from the start: a worker may answer and exit before its turn to be read.
    const answers = workers?.map((worker) => {
      const answer = new Promise<LinesResult>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new Error(`a verification worker exited with code ${code}`)));
      });
      answer.catch(() => {});
      return answer;
    });
    const stop = () => {
      for (const worker of workers ?? []) void worker.terminate();
    };
    signal.addEventListener('abort', stop);
    try {
      for (const [i, range] of ranges.entries()) {
        const answer = answers?.[i];
        const result = answer === undefined ? await checkEventRange(range) : await answer;
        order.apply(result);
        erased += result.erased;
      }
    } finally {
      signal.removeEventListener('abort', stop);
      stop();
    }
  }
  order.finish();
  return { events: order.events, erased };
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
  options: {
    verifierKey?: string;
    /** Threads checking events.jsonl (default: one per core, at most 4, for files over 32 MiB). */
    parallelism?: number;
  } = {},
): Promise<BundleVerification> {
  const stopEvents = new AbortController();
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
    // Event lines are checked (in worker threads, for big files) while this thread checks
    // the roots and proofs; problems are still reported in this order.
    const checkingEvents = checkEvents(
      join(dir, BUNDLE_FILES.events),
      leaves,
      manifest,
      options.parallelism,
      stopEvents.signal,
    );
    checkingEvents.catch(() => {});
    checkRoots(leaves, checkpoints);
    checkProofs(readText(dir, BUNDLE_FILES.proofs), checkpoints, leaves, manifest);
    const { events, erased } = await checkingEvents;
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
  } finally {
    stopEvents.abort();
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
        if (row.leaf_hash === null || row.leaf_hash === undefined)
          problem(`event seq ${seq}: has no leaf hash`);
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
          problem(
            `event seq ${seq}: the audit_events row does not match its leaf hash (a committed field was changed)`,
          );
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
