/**
 * The per-line half of offline verification: each line of events.jsonl parsed, its leaf
 * hashed against leaves.txt and its content against the salted hashes. This part needs
 * no state from other lines, so a large export is split into byte ranges checked in
 * parallel (verify-worker.ts); the order, range and gap checks, which do, run over the
 * returned seqs in verify-bundle.ts.
 */
import { createReadStream } from 'node:fs';
import {
  CONTENT_FIELDS,
  type CommitmentRecord,
  contentHash,
  hashFieldOf,
  isHexHash,
  serializeCommitment,
} from './commitment.js';
import { HASH_SIZE, hashLeafText } from './merkle.js';

export interface EventLine {
  leaf?: unknown;
  content?: unknown;
  erased?: unknown;
}

/** Where a range's first problem sits, and what the sequential checks need to report it. */
export type LineProblem =
  /** The line itself is unusable (no seq): report `events.jsonl line N: <detail>`. */
  | { readonly index: number; readonly stage: 'line'; readonly detail: string }
  /** The seq is outside the signed range: the sequential checks report it (or an earlier problem). */
  | { readonly index: number; readonly stage: 'seq' }
  /** The event does not match its content: report `detail` once its seq passed the order checks. */
  | { readonly index: number; readonly stage: 'event'; readonly detail: string }
  /** The event's fields do not hash to its leaf: as 'event', unless the next line is the genuine event (an insertion). */
  | { readonly index: number; readonly stage: 'leaf'; readonly detail: string };

/** What checking a run of lines found: the seq of every line up to and including the first problem's, if any. */
export interface LinesResult {
  seqs: number[];
  erased: number;
  problem?: LineProblem;
}

export interface EventRange {
  readonly path: string;
  /** Byte offsets [start, end) of whole lines; end undefined for the end of the file. */
  readonly start: number;
  readonly end: number | undefined;
  /** Back-to-back 32-byte leaf hashes of seqs 1..N. */
  readonly leaves: Uint8Array;
  readonly fromSeq: number;
  readonly toSeq: number;
}

/** Lines of a byte range of a file, a megabyte of them at a time (much faster than node:readline). */
export async function* readLineBatches(path: string, start = 0, end?: number): AsyncGenerator<string[]> {
  if (end !== undefined && end <= start) return;
  let rest = '';
  const stream = createReadStream(path, {
    encoding: 'utf8',
    highWaterMark: 1 << 20,
    start,
    ...(end === undefined ? {} : { end: end - 1 }),
  });
  for await (const chunk of stream) {
    const lines = (rest + (chunk as string)).split('\n');
    rest = lines.pop()!;
    yield lines;
  }
  if (rest !== '') yield [rest];
}

/** Problems with an event's content against the salted hashes in its leaf, or undefined. */
export function contentProblem(record: CommitmentRecord, line: EventLine): string | undefined {
  const committed = CONTENT_FIELDS.some((field) => record[hashFieldOf(field)] !== null);
  if (line.content === null || line.content === undefined) {
    if (committed && line.erased !== true) return 'content is missing but the event is not marked erased';
    if (!committed && line.erased === true) return 'marked erased but the leaf commits to no content';
    return undefined;
  }
  if (line.erased === true) return 'marked erased but carries content';
  const content = line.content as Record<string, unknown>;
  const salt = content.salt;
  if (!isHexHash(salt)) return 'content salt is not 64 lower-case hex digits';
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

/**
 * Check lines, appending to `into`; returns false at the first problem (recorded in
 * `into.problem`). `offset` is the index of the first line within the range.
 */
export function checkLines(
  lines: readonly string[],
  range: Pick<EventRange, 'leaves' | 'fromSeq' | 'toSeq'>,
  into: LinesResult,
): boolean {
  const leaves = Buffer.from(range.leaves.buffer, range.leaves.byteOffset, range.leaves.byteLength);
  for (const text of lines) {
    const index = into.seqs.length;
    if (text === '') {
      into.problem = { index, stage: 'line', detail: 'empty line' };
      return false;
    }
    let line: EventLine;
    try {
      line = JSON.parse(text) as EventLine;
    } catch {
      into.problem = { index, stage: 'line', detail: 'not valid JSON' };
      return false;
    }
    const parsed = serializeCommitment(line.leaf);
    if (!parsed.ok) {
      into.problem = { index, stage: 'line', detail: parsed.message };
      return false;
    }
    const { record, text: leaf } = parsed;
    const seq = record.seq;
    into.seqs.push(seq);
    if (seq < range.fromSeq || seq > range.toSeq) {
      into.problem = { index, stage: 'seq' };
      return false;
    }
    if (hashLeafText(leaf).compare(leaves, (seq - 1) * HASH_SIZE, seq * HASH_SIZE) !== 0) {
      into.problem = {
        index,
        stage: 'leaf',
        detail: `event seq ${seq}: leaf hash does not match its fields`,
      };
      return false;
    }
    const issue = contentProblem(record, line);
    if (issue !== undefined) {
      into.problem = { index, stage: 'event', detail: `event seq ${seq}: ${issue}` };
      return false;
    }
    if (line.erased === true) into.erased++;
  }
  return true;
}

/** Check every line of a byte range, stopping at its first problem. */
export async function checkEventRange(range: EventRange): Promise<LinesResult> {
  const result: LinesResult = { seqs: [], erased: 0 };
  for await (const batch of readLineBatches(range.path, range.start, range.end)) {
    if (!checkLines(batch, range, result)) break;
  }
  return result;
}
