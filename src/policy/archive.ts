/**
 * The policy set archive: every policy set Custos enforced, kept by its hash under
 * `<data>/policy-sets/<hash>.json`, so an auditor can read the exact policy text behind the
 * policySetHash an audit event commits to, and recompute that hash from it.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CompiledPolicySet } from './load.js';
import { policySetHash } from './store.js';

/** One archived policy set: everything its hash covers, plus where each policy came from. */
export interface ArchivedPolicySet {
  readonly type: 'custos policy set v1';
  /** PolicySnapshot.hash of this set. */
  readonly hash: string;
  readonly algorithm: string;
  /** When this installation first enforced the set (ms since the epoch). */
  readonly firstSeen: number;
  readonly schema: { readonly name: string; readonly text: string };
  readonly policies: ReadonlyArray<{ readonly id: string; readonly file: string; readonly text: string }>;
}

export const POLICY_SET_HASH_ALGORITHM =
  'SHA-256 over length-prefixed parts ("<byte length>:<bytes>"): "custos policy set v1", the schema text, ' +
  'then the id and text of every policy in id order (src/policy/store.ts policySetHash)';

const HASH = /^[0-9a-f]{64}$/;

/** Where the policy sets enforced are kept by hash: `<data>/policy-sets/<hash>.json`. */
export function policySetArchiveDir(dataDir: string): string {
  return join(dataDir, 'policy-sets');
}

/** The archive record of a compiled set. */
export function archivedPolicySetOf(set: CompiledPolicySet, firstSeen: number): ArchivedPolicySet {
  const policies = set.policies.map(({ id, file, text }) => ({ id, file, text }));
  return {
    type: 'custos policy set v1',
    hash: policySetHash(set.schemaText, policies),
    algorithm: POLICY_SET_HASH_ALGORITHM,
    firstSeen,
    schema: { name: set.schemaName, text: set.schemaText },
    policies,
  };
}

/** Keep a policy set under its hash in `dir`, once (a set seen again keeps its first time). */
export function archivePolicySet(dir: string, set: ArchivedPolicySet): string {
  const path = join(dir, `${set.hash}.json`);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(set, null, 2)}\n`);
  renameSync(temporary, path);
  return path;
}

export type ArchivedPolicySetRead =
  | { readonly ok: true; readonly set: ArchivedPolicySet; readonly text: string }
  | { readonly ok: false; readonly problem: string };

/** Read an archived set and check that its content hashes to its name. */
export function readArchivedPolicySet(dir: string, hash: string): ArchivedPolicySetRead {
  if (!HASH.test(hash)) return { ok: false, problem: `${hash} is not a policy set hash` };
  const path = join(dir, `${hash}.json`);
  if (!existsSync(path)) return { ok: false, problem: `policy set ${hash} is not in the archive` };
  const text = readFileSync(path, 'utf8');
  let set: ArchivedPolicySet;
  try {
    set = JSON.parse(text) as ArchivedPolicySet;
  } catch {
    return { ok: false, problem: `policy set ${hash}: not valid JSON` };
  }
  const recomputed = policySetHash(set.schema?.text ?? '', set.policies ?? []);
  if (recomputed !== hash)
    return { ok: false, problem: `policy set ${hash}: its content hashes to ${recomputed}` };
  return { ok: true, set, text };
}

/** Hashes of the archived sets. */
export function archivedPolicySetHashes(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => name.endsWith('.json') && HASH.test(name.slice(0, -5)))
    .map((name) => name.slice(0, -5))
    .sort();
}
