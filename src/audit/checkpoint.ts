/**
 * C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): the signed statement of
 * the log's size and root. The body is the text of a signed note:
 *
 *   <origin>\n
 *   <tree size, decimal>\n
 *   <root hash, base64>\n
 *   [<extension line>\n ...]
 *
 * Tree sizes are limited to JavaScript safe integers (2^53 - 1) like the rest of
 * the Merkle code.
 */
import { CustosError } from '../core/errors.js';
import { HASH_SIZE } from './merkle.js';
import {
  type Note,
  type NoteFailureCode,
  type NoteSignature,
  type NoteSigner,
  type NoteVerifier,
  openNote,
  signNote,
} from './note.js';

/** A log's signed tree head. */
export interface Checkpoint {
  /** Unique identity of the log, a schema-less URL such as `custos.example.com/audit`. */
  readonly origin: string;
  /** Number of leaves in the tree. */
  readonly treeSize: number;
  /** RFC 9162 root of the tree of treeSize leaves (32 bytes). */
  readonly rootHash: Buffer;
  /** Optional further lines, opaque here. */
  readonly extensions: readonly string[];
}

export type CheckpointFailureCode =
  /** The body breaks the checkpoint syntax. */
  | 'malformed_checkpoint'
  /** The checkpoint is for another log than the one expected. */
  | 'origin_mismatch';

export type CheckpointParse =
  | { readonly ok: true; readonly checkpoint: Checkpoint }
  | { readonly ok: false; readonly code: 'malformed_checkpoint'; readonly message: string };

export type CheckpointVerification =
  | {
      readonly ok: true;
      readonly checkpoint: Checkpoint;
      readonly note: Note;
      /** Signatures by trusted keys, all verified. */
      readonly verified: readonly NoteSignature[];
      /** Signatures by other keys (for example witnesses the caller did not pass). */
      readonly unverified: readonly NoteSignature[];
    }
  | { readonly ok: false; readonly code: CheckpointFailureCode | NoteFailureCode; readonly message: string };

const DECIMAL = /^(0|[1-9][0-9]*)$/;
const LONE_SURROGATE = /\p{Cs}/u;

/** C0 controls (newline included: a field is one line) and DEL. */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

function decodeBase64(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

function checkLine(line: string, what: string): string | undefined {
  if (line.length === 0) return `${what} is empty`;
  if (hasControl(line) || LONE_SURROGATE.test(line))
    return `${what} contains a control character or invalid UTF-16`;
  return undefined;
}

function malformed(message: string): { ok: false; code: 'malformed_checkpoint'; message: string } {
  return { ok: false, code: 'malformed_checkpoint', message };
}

/** Parse a checkpoint body strictly: canonical decimal size, canonical base64 of a 32-byte root. */
export function parseCheckpoint(text: string): CheckpointParse {
  if (!text.endsWith('\n')) return malformed('checkpoint does not end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3)
    return malformed(`checkpoint has ${lines.length} lines, needs origin, tree size and root hash`);
  const [origin, size, root, ...extensions] = lines as [string, string, string, ...string[]];
  const originProblem = checkLine(origin, 'origin');
  if (originProblem !== undefined) return malformed(originProblem);
  if (!DECIMAL.test(size))
    return malformed(`tree size ${JSON.stringify(size)} is not a canonical decimal number`);
  const treeSize = Number(size);
  if (!Number.isSafeInteger(treeSize)) return malformed(`tree size ${size} is larger than 2^53 - 1`);
  const rootHash = decodeBase64(root);
  if (rootHash === undefined) return malformed('root hash is not canonical base64');
  if (rootHash.length !== HASH_SIZE)
    return malformed(`root hash is ${rootHash.length} bytes, want ${HASH_SIZE}`);
  for (const [i, extension] of extensions.entries()) {
    const problem = checkLine(extension, `extension line ${i + 1}`);
    if (problem !== undefined) return malformed(problem);
  }
  return { ok: true, checkpoint: { origin, treeSize, rootHash, extensions } };
}

/** Serialize a checkpoint body; throws bad_request for fields that would not parse back. */
export function formatCheckpoint(checkpoint: Checkpoint): string {
  const problems = [
    checkLine(checkpoint.origin, 'origin'),
    Number.isSafeInteger(checkpoint.treeSize) && checkpoint.treeSize >= 0
      ? undefined
      : `tree size ${checkpoint.treeSize} is not a non-negative safe integer`,
    checkpoint.rootHash.length === HASH_SIZE
      ? undefined
      : `root hash is ${checkpoint.rootHash.length} bytes, want ${HASH_SIZE}`,
    ...checkpoint.extensions.map((extension, i) => checkLine(extension, `extension line ${i + 1}`)),
  ].filter((problem) => problem !== undefined);
  if (problems.length > 0) throw new CustosError('bad_request', `invalid checkpoint: ${problems.join('; ')}`);
  const lines = [
    checkpoint.origin,
    String(checkpoint.treeSize),
    Buffer.from(checkpoint.rootHash).toString('base64'),
    ...checkpoint.extensions,
  ];
  return `${lines.join('\n')}\n`;
}

/** Format and sign a checkpoint, returning the signed note. */
export function signCheckpoint(checkpoint: Checkpoint, signers: readonly NoteSigner[]): string {
  return signNote(formatCheckpoint(checkpoint), signers);
}

/**
 * Verify a signed checkpoint against trusted keys (see openNote) and parse its body.
 * When `origin` is given, a checkpoint of any other log is refused: the signature
 * alone does not say which log a tree head belongs to.
 */
export function openCheckpoint(
  signedNote: string | Uint8Array,
  options: { readonly verifiers: readonly NoteVerifier[]; readonly origin?: string },
): CheckpointVerification {
  const opened = openNote(signedNote, options.verifiers);
  if (!opened.ok) return opened;
  const parsed = parseCheckpoint(opened.note.text);
  if (!parsed.ok) return parsed;
  if (options.origin !== undefined && parsed.checkpoint.origin !== options.origin) {
    return {
      ok: false,
      code: 'origin_mismatch',
      message: `checkpoint is for ${JSON.stringify(parsed.checkpoint.origin)}, expected ${JSON.stringify(options.origin)}`,
    };
  }
  return {
    ok: true,
    checkpoint: parsed.checkpoint,
    note: opened.note,
    verified: opened.verified,
    unverified: opened.unverified,
  };
}
