/**
 * Export bundles: everything an auditor needs to check a range of the audit log
 * offline, with only the directory and the published verifier key.
 *
 *   events.jsonl     one event a line, seq order: {"leaf": <commitment record>,
 *                    "content": {"salt", "arguments", "reasoning", "result"} | null,
 *                    "erased": bool, "uncommitted": {"latencyUs", "traceId"}}; content
 *                    fields are the canonical JSON text that was hashed, or null
 *   leaves.txt       hex leaf hashes of seqs 1..N, N = the last checkpoint's size
 *   checkpoints.txt  signed checkpoints (C2SP), oldest first, separated by a blank line
 *   proofs.json      consistency proofs between consecutive checkpoints and inclusion
 *                    proofs of the first and last exported event (base64 hashes)
 *   manifest.txt     a note signed by the log key naming the exported seq range, so a
 *                    dropped first or last event is detected too
 *   key.txt          the log's verifier key
 *   README.md        how to check it
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { CustosError } from '../core/errors.js';
import type { Store } from '../store/index.js';
import { CONTENT_FIELDS, leafTextOf } from './commitment.js';
import { MerkleTree } from './merkle.js';
import { commitmentRecordOf } from './query.js';
import { forEachLeaf, type StoredCheckpoint, type TransparencyLog } from './tlog.js';

export interface ExportOptions {
  /** Earliest event time (ms since the epoch), inclusive; default the first event. */
  readonly from?: number;
  /** Latest event time, inclusive; default the last checkpointed event. */
  readonly to?: number;
  readonly outDir: string;
}

export interface ExportSummary {
  readonly fromSeq: number;
  readonly toSeq: number;
  readonly events: number;
  readonly erased: number;
  /** Sizes of the exported checkpoints, oldest first. */
  readonly checkpoints: readonly number[];
  readonly treeSize: number;
}

/** Second line of a manifest: never a decimal, so a manifest can never pass for a checkpoint. */
export const MANIFEST_TYPE = 'custos audit export v1';

export const BUNDLE_FILES = {
  events: 'events.jsonl',
  leaves: 'leaves.txt',
  checkpoints: 'checkpoints.txt',
  proofs: 'proofs.json',
  manifest: 'manifest.txt',
  key: 'key.txt',
  readme: 'README.md',
} as const;

export interface BundleProofs {
  readonly consistency: readonly { size1: number; size2: number; proof: string[] }[];
  readonly inclusion: readonly { seq: number; treeSize: number; proof: string[] }[];
}

/**
 * Write the bundle for the events whose time is in [from, to]. The exported range is
 * the contiguous seq range from the first to the last such event (events in between
 * with other times are included: the range must have no holes to prove none were
 * dropped), clamped to the latest checkpoint, which a writable log signs first.
 */
export async function exportBundle(
  store: Store,
  log: TransparencyLog,
  options: ExportOptions,
): Promise<ExportSummary> {
  const latest = (await log.checkpointNow()) ?? log.latestCheckpoint;
  if (latest === undefined) throw new CustosError('not_found', 'the audit log has no checkpoint yet');
  let rangeQuery = store.db
    .selectFrom('audit_events')
    .select((eb) => [eb.fn.min('seq').as('first'), eb.fn.max('seq').as('last')])
    .where('seq', '<=', latest.size);
  if (options.from !== undefined) rangeQuery = rangeQuery.where('time', '>=', options.from);
  if (options.to !== undefined) rangeQuery = rangeQuery.where('time', '<=', options.to);
  const range = await rangeQuery.executeTakeFirst();
  if (range?.first === null || range?.first === undefined || range.last === null) {
    throw new CustosError('not_found', 'no checkpointed audit events in that time range');
  }
  const fromSeq = Number(range.first);
  const toSeq = Number(range.last);

  const all = await log.checkpoints({ toSize: latest.size });
  const before = all.filter((c) => c.size < fromSeq).at(-1);
  const covering = all.find((c) => c.size >= toSeq)!;
  const chosen: StoredCheckpoint[] = [before, covering, latest].filter(
    (c, i, list): c is StoredCheckpoint => c !== undefined && list.findIndex((d) => d?.size === c.size) === i,
  );

  mkdirSync(options.outDir, { recursive: true });
  const tree = new MerkleTree();
  const leavesFile = await open(join(options.outDir, BUNDLE_FILES.leaves), 'w');
  try {
    let chunk: string[] = [];
    await forEachLeaf(store, 1, latest.size, async (row) => {
      tree.append(Buffer.from(row.hash, 'hex'));
      chunk.push(row.hash);
      if (chunk.length >= 10_000) {
        await leavesFile.write(`${chunk.join('\n')}\n`);
        chunk = [];
      }
    });
    if (chunk.length > 0) await leavesFile.write(`${chunk.join('\n')}\n`);
  } finally {
    await leavesFile.close();
  }
  if (tree.size !== latest.size) {
    throw new CustosError(
      'internal',
      `the audit log stores ${tree.size} leaves, checkpoint ${latest.size} needs more`,
    );
  }

  const { events, erased } = await writeEvents(
    store,
    join(options.outDir, BUNDLE_FILES.events),
    fromSeq,
    toSeq,
  );

  const b64 = (proof: Buffer[]) => proof.map((node) => node.toString('base64'));
  const proofs: BundleProofs = {
    consistency: chosen.slice(1).map((c, i) => ({
      size1: chosen[i]!.size,
      size2: c.size,
      proof: b64(tree.consistencyProof(chosen[i]!.size, c.size)),
    })),
    inclusion: [...new Set([fromSeq, toSeq])].map((seq) => ({
      seq,
      treeSize: covering.size,
      proof: b64(tree.inclusionProof(seq - 1, covering.size)),
    })),
  };
  writeFileSync(join(options.outDir, BUNDLE_FILES.proofs), `${JSON.stringify(proofs, null, 2)}\n`);
  writeFileSync(join(options.outDir, BUNDLE_FILES.checkpoints), chosen.map((c) => c.note).join('\n'));
  const manifest = [
    log.origin,
    MANIFEST_TYPE,
    `events ${fromSeq} ${toSeq}`,
    `checkpoint ${covering.size}`,
    `time ${options.from ?? '-'} ${options.to ?? '-'}`,
  ];
  writeFileSync(join(options.outDir, BUNDLE_FILES.manifest), log.signNote(`${manifest.join('\n')}\n`));
  writeFileSync(join(options.outDir, BUNDLE_FILES.key), `${log.verifierKey}\n`);
  writeFileSync(join(options.outDir, BUNDLE_FILES.readme), readme(log, fromSeq, toSeq, chosen));
  return { fromSeq, toSeq, events, erased, checkpoints: chosen.map((c) => c.size), treeSize: latest.size };
}

async function writeEvents(
  store: Store,
  path: string,
  fromSeq: number,
  toSeq: number,
): Promise<{ events: number; erased: number }> {
  const file = await open(path, 'w');
  let events = 0;
  let erased = 0;
  try {
    for (let after = fromSeq - 1; after < toSeq; ) {
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
        .where('audit_events.seq', '<=', toSeq)
        .orderBy('audit_events.seq')
        .limit(5000)
        .execute();
      if (rows.length === 0) break;
      const lines: string[] = [];
      for (const row of rows) {
        // The leaf is rebuilt from the row; the verifier checks it against leaves.txt.
        const record = commitmentRecordOf(row);
        const leaf = leafTextOf(record);
        if (!leaf.ok) {
          throw new CustosError(
            'internal',
            `audit event seq ${row.seq} is not a valid leaf: ${leaf.message}`,
          );
        }
        const committed =
          record.argumentsHash !== null || record.reasoningHash !== null || record.resultHash !== null;
        const hasContent = committed && row.salt !== null && row.salt !== undefined;
        const content = hasContent
          ? JSON.stringify({
              salt: row.salt,
              ...Object.fromEntries(CONTENT_FIELDS.map((field) => [field, row[field] ?? null])),
            })
          : 'null';
        if (committed && !hasContent) erased++;
        const uncommitted = JSON.stringify({
          latencyUs: Number(row.latency_us),
          traceId: row.trace_id ?? null,
        });
        lines.push(
          `{"leaf":${leaf.text},"content":${content},"erased":${committed && !hasContent},"uncommitted":${uncommitted}}`,
        );
      }
      await file.write(`${lines.join('\n')}\n`);
      events += rows.length;
      after = Number(rows[rows.length - 1]!.seq);
    }
  } finally {
    await file.close();
  }
  return { events, erased };
}

function readme(
  log: TransparencyLog,
  fromSeq: number,
  toSeq: number,
  checkpoints: readonly StoredCheckpoint[],
): string {
  return `# Custos audit export

Log: \`${log.origin}\`. Events with seq ${fromSeq} to ${toSeq}; checkpoints at tree sizes
${checkpoints.map((c) => c.size).join(', ')}.

## Check it

    npx custos audit verify . --key '${log.verifierKey}'

(run in this directory; \`npx\` fetches Custos from npm if it is not installed). Get the verifier key from the log operator out of band (\`custos audit key\`), not only from
key.txt: whoever could change this directory could change key.txt too. The verifier needs
neither the server nor the database and exits 1 naming the first problem it finds.

## What is checked

1. Every checkpoint in checkpoints.txt is a C2SP signed note by the log key, and tree
   sizes grow.
2. manifest.txt is signed by the same key and names the exported seq range and the
   checkpoint that covers it.
3. The RFC 9162 root recomputed from leaves.txt (leaf hashes of seq 1 onwards) equals the
   root of every checkpoint; proofs.json's consistency proofs link consecutive
   checkpoints and its inclusion proofs place the first and last event in the covering
   checkpoint.
4. Each line of events.jsonl is the event with the next seq; SHA-256(0x00 || RFC 8785
   canonical JSON of its "leaf") equals leaves.txt line seq. Where "content" is present,
   SHA-256(salt || text) of each of arguments, reasoning and result equals the leaf's
   argumentsHash, reasoningHash and resultHash.

Each leaf also commits to the policy set in force when the call was decided
("policySetHash": SHA-256 of the schema and every policy's id and text; the operator keeps each
set under <data>/policy-sets/<hash>.json, and \`custos evidence\` packs include them) and to
the approval the call consumed ("approvalId", or null; the approver's decision is an event with
method approvals/decide and the same approvalId, whose argsHash is the call hash approved).

Events marked "erased" had their plaintext and salt deleted (crypto-shredding): their
leaves still verify, their content can no longer be recovered or confirmed. The
"uncommitted" fields (latency, trace id) are informational: the log does not commit to
them.
`;
}
