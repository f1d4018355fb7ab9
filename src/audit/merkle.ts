/**
 * The Merkle tree of the audit log, as RFC 9162 §2.1 defines it (the same tree as
 * RFC 6962): SHA-256, leaf hash = SHA-256(0x00 || data), node hash =
 * SHA-256(0x01 || left || right).
 *
 * Written here rather than taken from a package because the proof verifiers are the
 * trust anchor of offline verification: they are short, dependency-free (node:crypto
 * only) and tested against the transparency-dev/merkle vectors.
 *
 * Tree sizes and indices are JavaScript numbers limited to safe integers (2^53 - 1),
 * so all bit arithmetic below is done with division rather than 32-bit operators.
 */
import { createHash, hash } from 'node:crypto';
import { CustosError } from '../core/errors.js';

/** Bytes in every hash of the tree (SHA-256). */
export const HASH_SIZE = 32;

const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;

/** Reused input buffers: node hashes are the hot path of appends and verification. */
const nodeInput = Buffer.alloc(1 + 2 * HASH_SIZE);
nodeInput[0] = NODE_PREFIX;
const leafInput = Buffer.alloc(1 + 16 * 1024);

/** The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1). */
export function emptyRoot(): Buffer {
  return hash('sha256', Buffer.alloc(0), 'buffer');
}

const EMPTY_ROOT = emptyRoot();

/** Leaf hash of one entry: SHA-256(0x00 || data) (RFC 9162 §2.1.1). */
export function hashLeaf(data: Uint8Array): Buffer {
  if (data.length >= leafInput.length) {
    return createHash('sha256').update(Uint8Array.of(LEAF_PREFIX)).update(data).digest();
  }
  leafInput[0] = LEAF_PREFIX;
  leafInput.set(data, 1);
  return hash('sha256', leafInput.subarray(0, data.length + 1), 'buffer');
}

/** Leaf hash of an entry given as text, hashed as its UTF-8 bytes (no intermediate buffer). */
export function hashLeafText(text: string): Buffer {
  // A UTF-16 code unit never takes more than 3 UTF-8 bytes.
  if (3 * text.length >= leafInput.length) return hashLeaf(Buffer.from(text, 'utf8'));
  leafInput[0] = LEAF_PREFIX;
  const length = leafInput.write(text, 1, 'utf8');
  return hash('sha256', leafInput.subarray(0, length + 1), 'buffer');
}

/** Interior node hash: SHA-256(0x01 || left || right) (RFC 9162 §2.1.1). */
export function hashChildren(left: Uint8Array, right: Uint8Array): Buffer {
  requireHash(left, 'left child');
  requireHash(right, 'right child');
  return nodeHash(left, right);
}

/** Unchecked node hash for callers that have validated both lengths. */
function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  nodeInput.set(left, 1);
  nodeInput.set(right, 1 + HASH_SIZE);
  return hash('sha256', nodeInput, 'buffer');
}

/**
 * Node hash for chains of hashes (proof verification): each side is bytes or a latin1 string
 * of 32 characters (one per byte), and so is the result. A string result costs about half
 * of what a new Buffer does, and a proof check hashes a chain of up to 64 nodes.
 */
function nodeHashChained(left: Uint8Array | string, right: Uint8Array | string): string {
  if (typeof left === 'string') nodeInput.write(left, 1, HASH_SIZE, 'latin1');
  else nodeInput.set(left, 1);
  if (typeof right === 'string') nodeInput.write(right, 1 + HASH_SIZE, HASH_SIZE, 'latin1');
  else nodeInput.set(right, 1 + HASH_SIZE);
  return hash('sha256', nodeInput, 'binary'); // 'binary' is latin1
}

function requireHash(value: Uint8Array, what: string): void {
  if (value.length !== HASH_SIZE) {
    throw new CustosError('bad_request', `${what} is ${value.length} bytes, want a ${HASH_SIZE}-byte hash`);
  }
}

function requireSize(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new CustosError('bad_request', `${what} must be a non-negative safe integer, got ${value}`);
  }
}

// Bit arithmetic on safe integers (beyond the 32 bits of JavaScript's bitwise operators).

function isOdd(x: number): boolean {
  return x % 2 === 1;
}

function half(x: number): number {
  return Math.floor(x / 2);
}

function bitLength(x: number): number {
  return x < 2 ** 32 ? 32 - Math.clz32(x) : 32 + bitLength(Math.floor(x / 2 ** 32));
}

function isPowerOfTwo(x: number): boolean {
  return x > 0 && 2 ** (bitLength(x) - 1) === x;
}

/** The largest power of two strictly below n, for n > 1: the split point k of RFC 9162 §2.1.1. */
function splitPoint(n: number): number {
  return 2 ** (bitLength(n - 1) - 1);
}

function popCount(x: number): number {
  let count = 0;
  for (let v = x; v > 0; v = half(v)) if (isOdd(v)) count++;
  return count;
}

/**
 * The frontier of a growing log: the roots of the perfect subtrees that cover leaves
 * [0, size), largest first (one per set bit of size; the "compact range" of the
 * whole tree). Appending a leaf and computing the root both take O(log n) hashes, and
 * the state is O(log n) hashes, so the recorder can keep it in memory and persist it
 * alongside each checkpoint.
 */
export class MerkleFrontier {
  #size = 0;
  readonly #nodes: Buffer[] = [];

  /** Resume from a saved frontier: `nodes` must be what `nodes` returned at `size`. */
  static restore(size: number, nodes: readonly Uint8Array[]): MerkleFrontier {
    requireSize(size, 'frontier size');
    if (nodes.length !== popCount(size)) {
      throw new CustosError(
        'bad_request',
        `a frontier of size ${size} has ${popCount(size)} nodes, got ${nodes.length}`,
      );
    }
    const frontier = new MerkleFrontier();
    for (const node of nodes) {
      requireHash(node, 'frontier node');
      frontier.#nodes.push(Buffer.from(node));
    }
    frontier.#size = size;
    return frontier;
  }

  /** Number of leaves appended so far. */
  get size(): number {
    return this.#size;
  }

  /** Copies of the perfect subtree roots, largest (leftmost) first. */
  get nodes(): Buffer[] {
    return this.#nodes.map((node) => Buffer.from(node));
  }

  /** Append one leaf hash (see hashLeaf); merges equal-sized subtrees like a binary counter. */
  append(leafHash: Uint8Array): void {
    requireHash(leafHash, 'leaf hash');
    let node: Buffer = Buffer.from(leafHash);
    for (let s = this.#size; isOdd(s); s = half(s)) node = nodeHash(this.#nodes.pop()!, node);
    this.#nodes.push(node);
    this.#size++;
  }

  /** The tree head: MTH over all leaves appended so far (RFC 9162 §2.1.1). */
  root(): Buffer {
    if (this.#nodes.length === 0) return Buffer.from(EMPTY_ROOT);
    let root = this.#nodes[this.#nodes.length - 1]!;
    for (let i = this.#nodes.length - 2; i >= 0; i--) root = nodeHash(this.#nodes[i]!, root);
    return Buffer.from(root);
  }
}

/** MTH of a list of leaf hashes (RFC 9162 §2.1.1), computed in one pass with O(log n) memory. */
export function computeRoot(leafHashes: Iterable<Uint8Array>): Buffer {
  const frontier = new MerkleFrontier();
  for (const leafHash of leafHashes) frontier.append(leafHash);
  return frontier.root();
}

/** MTH of leaves [start, end) of a stored list. */
type SubtreeRoot = (start: number, end: number) => Buffer;

/** PATH(m, D[n]) of RFC 9162 §2.1.3.1, unrolled: descend from the root, collect siblings, reverse. */
function buildInclusionProof(index: number, treeSize: number, subtreeRoot: SubtreeRoot): Buffer[] {
  const proof: Buffer[] = [];
  let start = 0;
  let end = treeSize;
  while (end - start > 1) {
    const mid = start + splitPoint(end - start);
    if (index < mid) {
      proof.push(subtreeRoot(mid, end));
      end = mid;
    } else {
      proof.push(subtreeRoot(start, mid));
      start = mid;
    }
  }
  return proof.reverse();
}

/** PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of RFC 9162 §2.1.4.1, unrolled the same way. */
function buildConsistencyProof(size1: number, size2: number, subtreeRoot: SubtreeRoot): Buffer[] {
  const proof: Buffer[] = [];
  let start = 0;
  let end = size2;
  let whole = true; // the "b" flag: still on the left edge, where the old root is known
  while (size1 !== end) {
    const mid = start + splitPoint(end - start);
    if (size1 <= mid) {
      proof.push(subtreeRoot(mid, end));
      end = mid;
    } else {
      proof.push(subtreeRoot(start, mid));
      start = mid;
      whole = false;
    }
  }
  if (!whole) proof.push(subtreeRoot(start, end));
  return proof.reverse();
}

function checkInclusionRequest(index: number, treeSize: number, available: number): void {
  requireSize(index, 'leaf index');
  requireSize(treeSize, 'tree size');
  if (index >= treeSize) {
    throw new CustosError('bad_request', `leaf index ${index} is outside a tree of size ${treeSize}`);
  }
  if (treeSize > available) {
    throw new CustosError('bad_request', `tree size ${treeSize} exceeds the ${available} stored leaves`);
  }
}

function checkConsistencyRequest(size1: number, size2: number, available: number): void {
  requireSize(size1, 'size1');
  requireSize(size2, 'size2');
  if (size1 === 0 || size1 > size2) {
    throw new CustosError(
      'bad_request',
      `a consistency proof needs 0 < size1 <= size2, got ${size1} and ${size2}`,
    );
  }
  if (size2 > available) {
    throw new CustosError('bad_request', `tree size ${size2} exceeds the ${available} stored leaves`);
  }
}

function listSubtreeRoot(leafHashes: readonly Uint8Array[]): SubtreeRoot {
  return (start, end) => {
    const frontier = new MerkleFrontier();
    for (let i = start; i < end; i++) frontier.append(leafHashes[i]!);
    return frontier.root();
  };
}

/**
 * Inclusion proof (audit path) for leaf `index` in the tree of the first `treeSize`
 * stored leaf hashes (RFC 9162 §2.1.3.1). Costs O(treeSize) hashes; use MerkleTree
 * for many proofs over the same leaves.
 */
export function inclusionProof(
  leafHashes: readonly Uint8Array[],
  index: number,
  treeSize: number = leafHashes.length,
): Buffer[] {
  checkInclusionRequest(index, treeSize, leafHashes.length);
  return buildInclusionProof(index, treeSize, listSubtreeRoot(leafHashes));
}

/**
 * Consistency proof that the tree of the first `size1` stored leaf hashes is a prefix
 * of the tree of the first `size2` (RFC 9162 §2.1.4.1). Empty when the sizes are equal.
 */
export function consistencyProof(
  leafHashes: readonly Uint8Array[],
  size1: number,
  size2: number = leafHashes.length,
): Buffer[] {
  checkConsistencyRequest(size1, size2, leafHashes.length);
  return buildConsistencyProof(size1, size2, listSubtreeRoot(leafHashes));
}

/** One level of MerkleTree: node hashes packed back to back in a growable buffer. */
class Level {
  buffer = Buffer.alloc(HASH_SIZE * 64);
  count = 0;

  push(node: Uint8Array): void {
    if ((this.count + 1) * HASH_SIZE > this.buffer.length) {
      const grown = Buffer.alloc(this.buffer.length * 2);
      this.buffer.copy(grown);
      this.buffer = grown;
    }
    this.buffer.set(node, this.count * HASH_SIZE);
    this.count++;
  }

  /** A view, never handed out: written nodes are never overwritten, so views stay valid. */
  at(index: number): Buffer {
    return this.buffer.subarray(index * HASH_SIZE, (index + 1) * HASH_SIZE);
  }
}

/**
 * An in-memory tree over all leaf hashes that keeps every perfect subtree root
 * (about 2n hashes), so the root of any earlier size and any inclusion or
 * consistency proof cost O(log n) hashes. Appends cost one node hash on average.
 */
export class MerkleTree {
  readonly #levels: Level[] = [new Level()];

  constructor(leafHashes: Iterable<Uint8Array> = []) {
    for (const leafHash of leafHashes) this.append(leafHash);
  }

  /** Number of leaves. */
  get size(): number {
    return this.#levels[0]!.count;
  }

  /** Append one leaf hash (see hashLeaf). */
  append(leafHash: Uint8Array): void {
    requireHash(leafHash, 'leaf hash');
    let node: Uint8Array = leafHash;
    for (let height = 0; ; height++) {
      let level = this.#levels[height];
      if (level === undefined) {
        level = new Level();
        this.#levels.push(level);
      }
      level.push(node);
      if (isOdd(level.count)) return;
      node = nodeHash(level.at(level.count - 2), level.at(level.count - 1));
    }
  }

  /** The stored hash of leaf `index`. */
  leafHash(index: number): Buffer {
    checkInclusionRequest(index, this.size, this.size);
    return Buffer.from(this.#levels[0]!.at(index));
  }

  /** MTH of the first `treeSize` leaves (the current tree by default). */
  root(treeSize: number = this.size): Buffer {
    requireSize(treeSize, 'tree size');
    if (treeSize > this.size) {
      throw new CustosError('bad_request', `tree size ${treeSize} exceeds the ${this.size} stored leaves`);
    }
    return treeSize === 0 ? Buffer.from(EMPTY_ROOT) : Buffer.from(this.#subtreeRoot(0, treeSize));
  }

  /** Inclusion proof for leaf `index` in the tree of size `treeSize` (RFC 9162 §2.1.3.1). */
  inclusionProof(index: number, treeSize: number = this.size): Buffer[] {
    checkInclusionRequest(index, treeSize, this.size);
    return buildInclusionProof(index, treeSize, this.#subtreeRoot).map((node) => Buffer.from(node));
  }

  /** Consistency proof between tree sizes size1 and size2 (RFC 9162 §2.1.4.1). */
  consistencyProof(size1: number, size2: number = this.size): Buffer[] {
    checkConsistencyRequest(size1, size2, this.size);
    return buildConsistencyProof(size1, size2, this.#subtreeRoot).map((node) => Buffer.from(node));
  }

  /**
   * MTH of leaves [start, end), for ranges that start on a multiple of the largest
   * power of two not above their length (every subtree of RFC 9162's split is one):
   * they decompose into stored perfect subtrees of falling size, folded right to left.
   */
  readonly #subtreeRoot = (start: number, end: number): Buffer => {
    const parts: Buffer[] = [];
    let at = start;
    while (at < end) {
      const height = bitLength(end - at) - 1;
      const width = 2 ** height;
      parts.push(this.#levels[height]!.at(at / width));
      at += width;
    }
    let root = parts[parts.length - 1]!;
    for (let i = parts.length - 2; i >= 0; i--) root = nodeHash(parts[i]!, root);
    return root;
  };
}

/** Why a proof did not verify. */
export type ProofFailureCode =
  /** A leaf hash, root or proof component is not a 32-byte hash. */
  | 'malformed_hash'
  /** A size or index is not a non-negative safe integer, or the sizes are out of order. */
  | 'invalid_size'
  /** The leaf index is not below the tree size. */
  | 'index_out_of_range'
  /** The proof has more components than the sizes allow. */
  | 'proof_too_long'
  /** The proof has fewer components than the sizes need. */
  | 'proof_too_short'
  /** Equal tree sizes need an empty proof. */
  | 'unexpected_proof'
  /** The proof does not lead to the claimed root(s). */
  | 'root_mismatch';

/** The outcome of verifying a proof: a tampered or wrong proof is an expected outcome, not an exception. */
export type ProofVerification =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: ProofFailureCode; readonly message: string };

const verified: ProofVerification = Object.freeze({ ok: true });

function failure(code: ProofFailureCode, message: string): ProofVerification {
  return { ok: false, code, message };
}

function isSize(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

function findMalformed(hashes: readonly Uint8Array[], names: (i: number) => string): string | undefined {
  for (let i = 0; i < hashes.length; i++) {
    const length = hashes[i]!.length;
    if (length !== HASH_SIZE) return `${names(i)} is ${length} bytes, want ${HASH_SIZE}`;
  }
  return undefined;
}

export interface InclusionClaim {
  /** Hash of the leaf (hashLeaf of its data). */
  readonly leafHash: Uint8Array;
  readonly index: number;
  readonly treeSize: number;
  /** The audit path, bottom up. */
  readonly proof: readonly Uint8Array[];
  /** The root of the tree of size treeSize, from a verified checkpoint. */
  readonly root: Uint8Array;
}

/** Check that a leaf is at `index` in the tree with root `root` (RFC 9162 §2.1.3.2). */
export function verifyInclusion(claim: InclusionClaim): ProofVerification {
  const { leafHash, index, treeSize, proof, root } = claim;
  if (!isSize(index) || !isSize(treeSize)) {
    return failure(
      'invalid_size',
      `leaf index ${index} and tree size ${treeSize} must be non-negative safe integers`,
    );
  }
  if (index >= treeSize) {
    return failure('index_out_of_range', `leaf index ${index} is outside a tree of size ${treeSize}`);
  }
  // Checked without building a list: verification is on auditors' hot path.
  if (leafHash.length !== HASH_SIZE) {
    return failure('malformed_hash', `leaf hash is ${leafHash.length} bytes, want ${HASH_SIZE}`);
  }
  if (root.length !== HASH_SIZE)
    return failure('malformed_hash', `root is ${root.length} bytes, want ${HASH_SIZE}`);
  for (let i = 0; i < proof.length; i++) {
    const length = proof[i]!.length;
    if (length !== HASH_SIZE)
      return failure('malformed_hash', `proof[${i}] is ${length} bytes, want ${HASH_SIZE}`);
  }

  let fn = index;
  let sn = treeSize - 1;
  let computed: Uint8Array | string = leafHash;
  for (const sibling of proof) {
    if (sn === 0) {
      return failure(
        'proof_too_long',
        `proof has ${proof.length} hashes, more than leaf ${index} of ${treeSize} needs`,
      );
    }
    if (isOdd(fn) || fn === sn) {
      computed = nodeHashChained(sibling, computed);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      computed = nodeHashChained(computed, sibling);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) {
    return failure(
      'proof_too_short',
      `proof has ${proof.length} hashes, fewer than leaf ${index} of ${treeSize} needs`,
    );
  }
  if (!equalBytes(typeof computed === 'string' ? Buffer.from(computed, 'latin1') : computed, root)) {
    return failure(
      'root_mismatch',
      `proof for leaf ${index} does not lead to the root of tree size ${treeSize}`,
    );
  }
  return verified;
}

export interface ConsistencyClaim {
  readonly size1: number;
  readonly size2: number;
  /** Root of the tree of size1. */
  readonly root1: Uint8Array;
  /** Root of the tree of size2. */
  readonly root2: Uint8Array;
  readonly proof: readonly Uint8Array[];
}

/**
 * Check that the tree of size1 with root1 is a prefix of the tree of size2 with root2
 * (RFC 9162 §2.1.4.2). Equal sizes verify with an empty proof and byte-equal roots
 * (for size 0, the empty-tree root); no hashing happens then, so root lengths are
 * not checked either, as in the transparency-dev vectors. A proof from the empty
 * tree (size1 = 0 < size2) is refused: RFC 9162 defines proofs only for
 * 0 < size1 < size2, and such a claim proves nothing.
 */
export function verifyConsistency(claim: ConsistencyClaim): ProofVerification {
  const { size1, size2, root1, root2, proof } = claim;
  if (!isSize(size1) || !isSize(size2)) {
    return failure('invalid_size', `sizes ${size1} and ${size2} must be non-negative safe integers`);
  }
  if (size1 > size2) return failure('invalid_size', `size1 (${size1}) is greater than size2 (${size2})`);
  if (size1 === size2) {
    if (proof.length > 0) {
      return failure(
        'unexpected_proof',
        `trees of equal size ${size1} need an empty proof, got ${proof.length} hashes`,
      );
    }
    if (size1 === 0 && !(equalBytes(root1, EMPTY_ROOT) && equalBytes(root2, EMPTY_ROOT))) {
      return failure('root_mismatch', 'the root of the empty tree is SHA-256 of the empty string');
    }
    if (!equalBytes(root1, root2))
      return failure('root_mismatch', `trees of equal size ${size1} have different roots`);
    return verified;
  }
  if (size1 === 0) {
    return failure(
      'invalid_size',
      `no consistency proof exists from the empty tree (size1 = 0, size2 = ${size2})`,
    );
  }
  if (proof.length === 0)
    return failure('proof_too_short', `sizes ${size1} and ${size2} need a non-empty proof`);
  const malformed = findMalformed([root1, root2, ...proof], (i) =>
    i === 0 ? 'root1' : i === 1 ? 'root2' : `proof[${i - 2}]`,
  );
  if (malformed !== undefined) return failure('malformed_hash', malformed);

  // When size1 is a power of two, the old tree is a perfect subtree whose root is root1.
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : proof;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr: Uint8Array = path[0]!;
  let sr: Uint8Array = path[0]!;
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0)
      return failure(
        'proof_too_long',
        `proof has ${proof.length} hashes, more than sizes ${size1} and ${size2} need`,
      );
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0)
    return failure(
      'proof_too_short',
      `proof has ${proof.length} hashes, fewer than sizes ${size1} and ${size2} need`,
    );
  if (!equalBytes(fr, root1))
    return failure('root_mismatch', `proof does not lead to root1 of tree size ${size1}`);
  if (!equalBytes(sr, root2))
    return failure('root_mismatch', `proof does not lead to root2 of tree size ${size2}`);
  return verified;
}
