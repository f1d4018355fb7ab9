import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  computeRoot,
  consistencyProof,
  emptyRoot,
  hashChildren,
  hashLeaf,
  inclusionProof,
  MerkleFrontier,
  MerkleTree,
  verifyConsistency,
  verifyInclusion,
} from './merkle.js';

/** ../shared beside the repository root, as in the checkout and in CI. */
const vectors = fileURLToPath(new URL('../../../shared/vectors/', import.meta.url));

function listJson(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return listJson(path);
      return entry.name.endsWith('.json') ? [path] : [];
    })
    .sort();
}

const b64 = (value: string): Buffer => Buffer.from(value, 'base64');
const hex = (value: string): Buffer => Buffer.from(value, 'hex');

interface InclusionVector {
  leafIdx: number;
  treeSize: number;
  root: string;
  leafHash: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

interface ConsistencyVector {
  size1: number;
  size2: number;
  root1: string;
  root2: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

const inclusionFiles = listJson(join(vectors, 'rfc6962/inclusion'));
const consistencyFiles = listJson(join(vectors, 'rfc6962/consistency'));
const name = (file: string) => relative(join(vectors, 'rfc6962'), file);
const read = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T;

describe('RFC 6962 vectors (transparency-dev/merkle testdata)', () => {
  it('finds all 196 vector files', () => {
    expect(inclusionFiles.length + consistencyFiles.length).toBe(196);
  });

  describe.each(inclusionFiles.map((file) => [name(file), file]))('%s', (_, file) => {
    const v = read<InclusionVector>(file);
    it(`${v.wantErr ? 'rejects' : 'accepts'}: ${v.desc}`, () => {
      const result = verifyInclusion({
        leafHash: b64(v.leafHash),
        index: v.leafIdx,
        treeSize: v.treeSize,
        proof: (v.proof ?? []).map(b64),
        root: b64(v.root),
      });
      expect(result.ok).toBe(!v.wantErr);
    });
  });

  describe.each(consistencyFiles.map((file) => [name(file), file]))('%s', (_, file) => {
    const v = read<ConsistencyVector>(file);
    it(`${v.wantErr ? 'rejects' : 'accepts'}: ${v.desc}`, () => {
      const result = verifyConsistency({
        size1: v.size1,
        size2: v.size2,
        root1: b64(v.root1),
        root2: b64(v.root2),
        proof: (v.proof ?? []).map(b64),
      });
      expect(result.ok).toBe(!v.wantErr);
    });
  });
});

describe('roots of the classic CT test leaves (rfc6962-roots.json)', () => {
  const roots = read<{ leavesHex: string[]; rootHexByTreeSize: Record<string, string> }>(
    join(vectors, 'rfc6962-roots.json'),
  );
  const leafHashes = roots.leavesHex.map((leaf) => hashLeaf(hex(leaf)));
  const tree = new MerkleTree(leafHashes);

  it.each(Object.entries(roots.rootHexByTreeSize))('tree size %s has the published root', (size, rootHex) => {
    const n = Number(size);
    expect(computeRoot(leafHashes.slice(0, n)).toString('hex')).toBe(rootHex);
    expect(tree.root(n).toString('hex')).toBe(rootHex);
    const frontier = new MerkleFrontier();
    for (const leafHash of leafHashes.slice(0, n)) frontier.append(leafHash);
    expect(frontier.root().toString('hex')).toBe(rootHex);
  });
});

describe('hashes', () => {
  it('hashes the empty tree to SHA-256 of the empty string', () => {
    expect(emptyRoot().toString('hex')).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
  });

  it('hashes large leaves the same way as small ones', () => {
    const big = Buffer.alloc(100_000, 7);
    const frontier = new MerkleFrontier();
    frontier.append(hashLeaf(big));
    const direct = new MerkleTree([hashLeaf(big)]).root();
    expect(frontier.root().equals(direct)).toBe(true);
    expect(hashLeaf(big).equals(hashLeaf(Buffer.from(big)))).toBe(true);
  });

  it('refuses children that are not 32-byte hashes', () => {
    expect(() => hashChildren(Buffer.alloc(31), Buffer.alloc(32))).toThrow(/left child is 31 bytes/);
  });
});

/** Deterministic PRNG (mulberry32) so property failures reproduce. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function flipped(value: Uint8Array, byte: number, bit = 0): Buffer {
  const copy = Buffer.from(value);
  copy[byte]! ^= 1 << bit;
  return copy;
}

describe('generated proofs (property tests)', () => {
  const random = prng(0x5eed);
  const leafHashes = Array.from({ length: 300 }, (_, i) => hashLeaf(Buffer.from(`event ${i}`)));
  const fullTree = new MerkleTree(leafHashes);
  const sizes = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 127, 255, 256, 257, 300];
  while (sizes.length < 40) sizes.push(1 + Math.floor(random() * 300));

  it('MerkleFrontier, MerkleTree and computeRoot agree at every size', () => {
    const frontier = new MerkleFrontier();
    for (let n = 0; n <= 300; n++) {
      const root = computeRoot(leafHashes.slice(0, n));
      expect(frontier.root().equals(root)).toBe(true);
      expect(fullTree.root(n).equals(root)).toBe(true);
      const restored = MerkleFrontier.restore(frontier.size, frontier.nodes);
      expect(restored.root().equals(root)).toBe(true);
      if (n < 300) frontier.append(leafHashes[n]!);
    }
  });

  it.each(sizes)(
    'every inclusion proof in a tree of size %i verifies, and any flipped bit breaks it',
    (size) => {
      const tree = new MerkleTree(leafHashes.slice(0, size));
      const root = tree.root();
      for (let index = 0; index < size; index++) {
        const proof = tree.inclusionProof(index);
        expect(fullTree.inclusionProof(index, size)).toEqual(proof);
        const claim = { leafHash: leafHashes[index]!, index, treeSize: size, proof, root };
        expect(verifyInclusion(claim)).toEqual({ ok: true });

        const bit = () => Math.floor(random() * 8);
        const byte = () => Math.floor(random() * 32);
        for (let i = 0; i < proof.length; i++) {
          const tampered = proof.map((node, j) => (j === i ? flipped(node, byte(), bit()) : node));
          expect(verifyInclusion({ ...claim, proof: tampered }).ok).toBe(false);
        }
        expect(verifyInclusion({ ...claim, leafHash: flipped(claim.leafHash, byte(), bit()) }).ok).toBe(
          false,
        );
        expect(verifyInclusion({ ...claim, root: flipped(root, byte(), bit()) }).ok).toBe(false);
        expect(verifyInclusion({ ...claim, index: index + 1 }).ok).toBe(false);
        // No treeSize tamper here: a proof may fit several sizes (same path shape); the
        // checkpoint, not the proof, binds the size to the root.
        expect(verifyInclusion({ ...claim, proof: [...proof, root] }).ok).toBe(false);
        if (proof.length > 0) expect(verifyInclusion({ ...claim, proof: proof.slice(1) }).ok).toBe(false);
      }
    },
  );

  it.each(sizes)(
    'every consistency proof into a tree of size %i verifies, and any flipped bit breaks it',
    (size2) => {
      const root2 = fullTree.root(size2);
      for (let size1 = 1; size1 <= size2; size1++) {
        const root1 = fullTree.root(size1);
        const proof = fullTree.consistencyProof(size1, size2);
        const claim = { size1, size2, root1, root2, proof };
        expect(verifyConsistency(claim)).toEqual({ ok: true });

        const bit = () => Math.floor(random() * 8);
        const byte = () => Math.floor(random() * 32);
        for (let i = 0; i < proof.length; i++) {
          const tampered = proof.map((node, j) => (j === i ? flipped(node, byte(), bit()) : node));
          expect(verifyConsistency({ ...claim, proof: tampered }).ok).toBe(false);
        }
        expect(verifyConsistency({ ...claim, root1: flipped(root1, byte(), bit()) }).ok).toBe(false);
        expect(verifyConsistency({ ...claim, root2: flipped(root2, byte(), bit()) }).ok).toBe(false);
        if (size1 < size2) {
          expect(verifyConsistency({ ...claim, size1: size1 + 1 }).ok).toBe(false);
          expect(verifyConsistency({ ...claim, proof: [...proof, root2] }).ok).toBe(false);
          expect(verifyConsistency({ ...claim, proof: proof.slice(1) }).ok).toBe(false);
        }
      }
    },
  );

  it('flipping every bit of every byte of a proof, leaf and root breaks the proof', () => {
    const size = 300;
    for (const index of [0, 1, 150, 255, 256, 299]) {
      const proof = fullTree.inclusionProof(index, size);
      const claim = { leafHash: leafHashes[index]!, index, treeSize: size, proof, root: fullTree.root(size) };
      const parts = [...proof.map((_, i) => `proof.${i}`), 'leafHash', 'root'];
      for (const part of parts) {
        for (let byte = 0; byte < 32; byte++) {
          for (let bit = 0; bit < 8; bit++) {
            const tampered =
              part === 'leafHash'
                ? { ...claim, leafHash: flipped(claim.leafHash, byte, bit) }
                : part === 'root'
                  ? { ...claim, root: flipped(claim.root, byte, bit) }
                  : {
                      ...claim,
                      proof: proof.map((node, j) =>
                        `proof.${j}` === part ? flipped(node, byte, bit) : node,
                      ),
                    };
            expect(verifyInclusion(tampered).ok).toBe(false);
          }
        }
      }
    }
    for (const [size1, size2] of [
      [1, 300],
      [7, 300],
      [128, 300],
      [299, 300],
    ] as const) {
      const claim = {
        size1,
        size2,
        root1: fullTree.root(size1),
        root2: fullTree.root(size2),
        proof: fullTree.consistencyProof(size1, size2),
      };
      for (let i = 0; i < claim.proof.length; i++) {
        for (let byte = 0; byte < 32; byte++) {
          const proof = claim.proof.map((node, j) => (j === i ? flipped(node, byte, byte % 8) : node));
          expect(verifyConsistency({ ...claim, proof }).ok).toBe(false);
        }
      }
    }
  });

  it('proofs from a plain list of leaf hashes match the MerkleTree ones', () => {
    for (const size of [1, 2, 5, 8, 13, 64, 100]) {
      const list = leafHashes.slice(0, size);
      for (let index = 0; index < size; index++) {
        expect(inclusionProof(list, index)).toEqual(fullTree.inclusionProof(index, size));
      }
      for (let size1 = 1; size1 <= size; size1++) {
        expect(consistencyProof(list, size1)).toEqual(fullTree.consistencyProof(size1, size));
      }
    }
  });
});

describe('proof failures', () => {
  const leafHashes = Array.from({ length: 8 }, (_, i) => hashLeaf(Buffer.of(i)));
  const tree = new MerkleTree(leafHashes);

  it('names the failure of a tampered inclusion proof', () => {
    const claim = {
      leafHash: leafHashes[3]!,
      index: 3,
      treeSize: 8,
      proof: tree.inclusionProof(3),
      root: tree.root(),
    };
    expect(verifyInclusion({ ...claim, root: flipped(claim.root, 0) })).toMatchObject({
      ok: false,
      code: 'root_mismatch',
    });
    expect(verifyInclusion({ ...claim, proof: claim.proof.slice(1) })).toMatchObject({
      code: 'proof_too_short',
    });
    expect(verifyInclusion({ ...claim, proof: [...claim.proof, claim.root] })).toMatchObject({
      code: 'proof_too_long',
    });
    expect(verifyInclusion({ ...claim, index: 8 })).toMatchObject({ code: 'index_out_of_range' });
    expect(verifyInclusion({ ...claim, index: -1 })).toMatchObject({ code: 'invalid_size' });
    expect(verifyInclusion({ ...claim, treeSize: 2 ** 53 })).toMatchObject({ code: 'invalid_size' });
    expect(verifyInclusion({ ...claim, root: Buffer.alloc(31) })).toMatchObject({
      code: 'malformed_hash',
      message: 'root is 31 bytes, want 32',
    });
  });

  it('names the failure of a bad consistency claim', () => {
    const claim = {
      size1: 3,
      size2: 8,
      root1: tree.root(3),
      root2: tree.root(8),
      proof: tree.consistencyProof(3),
    };
    expect(verifyConsistency({ ...claim, size1: 9 })).toMatchObject({ code: 'invalid_size' });
    expect(verifyConsistency({ ...claim, size1: 0 })).toMatchObject({ code: 'invalid_size' });
    expect(verifyConsistency({ ...claim, proof: [] })).toMatchObject({ code: 'proof_too_short' });
    expect(verifyConsistency({ ...claim, size1: 8, root1: claim.root2 })).toMatchObject({
      code: 'unexpected_proof',
    });
    expect(verifyConsistency({ ...claim, root1: claim.root2 })).toMatchObject({ code: 'root_mismatch' });
    expect(
      verifyConsistency({ size1: 0, size2: 0, root1: emptyRoot(), root2: emptyRoot(), proof: [] }),
    ).toEqual({
      ok: true,
    });
  });

  it('refuses to build proofs outside the stored tree', () => {
    expect(() => tree.inclusionProof(8)).toThrow(/leaf index 8 is outside a tree of size 8/);
    expect(() => tree.inclusionProof(0, 9)).toThrow(/exceeds the 8 stored leaves/);
    expect(() => tree.consistencyProof(0, 8)).toThrow(/0 < size1 <= size2/);
    expect(() => tree.consistencyProof(5, 4)).toThrow(/0 < size1 <= size2/);
    expect(tree.consistencyProof(8, 8)).toEqual([]);
  });

  it('refuses to restore a frontier with the wrong number of nodes', () => {
    expect(() => MerkleFrontier.restore(3, [Buffer.alloc(32)])).toThrow(/size 3 has 2 nodes, got 1/);
  });

  it('verifies proofs in trees larger than 2^32 leaves (no 32-bit arithmetic)', () => {
    // Tree of 2^40 + 2 leaves: a perfect left subtree L of 2^40 leaves, then leaves a and b.
    const [left, a, b] = [hashLeaf(Buffer.of(1)), hashLeaf(Buffer.of(2)), hashLeaf(Buffer.of(3))];
    const root = hashChildren(left, hashChildren(a, b));
    const treeSize = 2 ** 40 + 2;
    expect(verifyInclusion({ leafHash: b, index: 2 ** 40 + 1, treeSize, proof: [a, left], root })).toEqual({
      ok: true,
    });
    expect(verifyInclusion({ leafHash: a, index: 2 ** 40, treeSize, proof: [b, left], root })).toEqual({
      ok: true,
    });
    expect(verifyInclusion({ leafHash: b, index: 2 ** 40 + 1, treeSize, proof: [a], root })).toMatchObject({
      code: 'proof_too_short',
    });
    expect(
      verifyConsistency({
        size1: 2 ** 40,
        size2: treeSize,
        root1: left,
        root2: root,
        proof: [hashChildren(a, b)],
      }),
    ).toEqual({ ok: true });
    expect(
      verifyConsistency({
        size1: 2 ** 40 + 1,
        size2: treeSize,
        root1: left,
        root2: root,
        proof: [hashChildren(a, b)],
      }),
    ).toMatchObject({ ok: false });
  });
});
