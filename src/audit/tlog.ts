/**
 * The transparency log: an RFC 9162 Merkle tree over the audit events (leaf index =
 * seq - 1), with C2SP checkpoints signed by an Ed25519 key kept in tlog_keys. Each
 * audit_events row carries its commitment (salted content hashes and the leaf hash),
 * written in the same statement as the event; the leaf text itself is rebuilt from the
 * row when an export or a live check needs it, never stored twice.
 *
 * One process appends and signs (the one running the recorder); others may open the
 * log read-only to serve proofs and exports. Two writers cannot fork the tree: the
 * primary key on seq makes the second writer's transaction fail.
 */

import { randomBytes } from 'node:crypto';
import type { Transaction } from 'kysely';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import type { AuditContentTable, AuditEventTable, Database, Store } from '../store/index.js';
import { signCheckpoint } from './checkpoint.js';
import { type CommittableEvent, commitEvent, SALT_SIZE } from './commitment.js';
import { consistencyProof, inclusionProof, MerkleFrontier } from './merkle.js';
import { generateSignerKey, type NoteSigner, parseSignerKey, parseVerifierKey, signNote } from './note.js';
import { eventFromRow, rowFromEvent } from './query.js';

export interface TransparencyLogOptions {
  readonly clock?: Clock;
  /**
   * Longest wait from an append to a signed checkpoint covering it (default 1000 ms). The
   * timer fires early enough to leave room for signing (see #scheduleCheckpoint).
   */
  readonly checkpointIntervalMs?: number;
  /** Origin for a log created now (default custos.local/<random log id>); ignored once a key exists. */
  readonly origin?: string;
  /** Never create a key, sign checkpoints or append (CLI next to a running server). */
  readonly readOnly?: boolean;
  /** Randomness for salts and keys (tests pass a seeded source). */
  readonly random?: (n: number) => Buffer;
  /** Called when a timer-driven checkpoint fails; the next append retries. */
  readonly onError?: (error: unknown) => void;
  /** Called after each checkpoint this handle signed and stored (metrics, benchmarks). */
  readonly onCheckpoint?: (checkpoint: StoredCheckpoint) => void;
}

/** A checkpoint as stored. */
export interface StoredCheckpoint {
  readonly size: number;
  readonly root: Buffer;
  /** The signed note. */
  readonly note: string;
  readonly time: number;
}

/** Leaves written inside a transaction that has not committed yet; apply with commit() or drop with rollback(). */
export interface PendingAppend {
  readonly baseSize: number;
  readonly size: number;
  readonly leafHashes: readonly Buffer[];
}

/** Rows that append a batch of events to the log, for the caller to write atomically. */
export interface PreparedAppend {
  readonly rows: {
    /** The events' rows, with their commitment columns. */
    readonly audit_events: readonly AuditEventTable[];
    readonly audit_content: readonly AuditContentTable[];
  };
  readonly pending: PendingAppend;
}

const LOG_KEY_ID = 'log';
// SQLite allows 32,766 bound values per statement; 23 columns a row (events) leaves room for 1,000 rows.
const rowsPerStatement = 1000;
const pageSize = 10_000;

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function checkpointFromRow(row: {
  size: number;
  root: string;
  note: string;
  time: number;
}): StoredCheckpoint {
  return {
    size: Number(row.size),
    root: Buffer.from(row.root, 'hex'),
    note: row.note,
    time: Number(row.time),
  };
}

/** The log's state: in-memory frontier over committed leaves, signer, and the checkpoint timer. */
export class TransparencyLog {
  #frontier: MerkleFrontier;
  #pending: PendingAppend | undefined;
  #lastSigned: StoredCheckpoint | undefined;
  #signing: Promise<StoredCheckpoint | undefined> = Promise.resolve(undefined);
  /** Checkpoints requested and not finished yet (checkpointNow calls in the queue). */
  #signingQueued = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Commits not yet covered by a checkpoint: tree size after each, and when (performance.now()). */
  #uncovered: { size: number; at: number }[] = [];
  /** How long the last checkpoint took to sign and store (ms). */
  #signingMs = 0;
  /** When the pending append was prepared, and how long the last one took from prepare to commit (ms). */
  #preparedAt = 0;
  #writeMs = 0;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #random: (n: number) => Buffer;

  private constructor(
    readonly store: Store,
    readonly origin: string,
    /** The verifier key to publish (`custos audit key`). */
    readonly verifierKey: string,
    private readonly signer: NoteSigner,
    frontier: MerkleFrontier,
    lastSigned: StoredCheckpoint | undefined,
    private readonly options: TransparencyLogOptions,
  ) {
    this.#frontier = frontier;
    this.#lastSigned = lastSigned;
    this.#clock = options.clock ?? systemClock;
    this.#intervalMs = options.checkpointIntervalMs ?? 1000;
    this.#random = options.random ?? randomBytes;
  }

  /**
   * Open the log on a store: create the signing key at first start, then restore the
   * frontier from the latest checkpoint's saved frontier plus the leaves after it
   * (O(log n + leaves since that checkpoint)). Throws `internal` when the stored leaves
   * and the latest checkpoint disagree, so a damaged log is never extended or signed.
   */
  static async open(store: Store, options: TransparencyLogOptions = {}): Promise<TransparencyLog> {
    const key = await loadKey(store, options);
    const signer = parseSignerKey(key.signer_key);
    const latest = await store.db
      .selectFrom('tlog_checkpoints')
      .selectAll()
      .orderBy('size', 'desc')
      .limit(1)
      .executeTakeFirst();
    let frontier = new MerkleFrontier();
    let lastSigned: StoredCheckpoint | undefined;
    if (latest !== undefined) {
      lastSigned = checkpointFromRow(latest);
      const nodes = (JSON.parse(latest.frontier) as string[]).map((node) => Buffer.from(node, 'hex'));
      frontier = MerkleFrontier.restore(lastSigned.size, nodes);
      if (!frontier.root().equals(lastSigned.root)) {
        throw new CustosError(
          'internal',
          `the saved frontier of checkpoint ${lastSigned.size} does not match its root`,
        );
      }
    }
    // Events after the checkpoint extend the frontier up to the first one without a leaf
    // hash (appended before the log existed), from where #backfill commits them.
    for (let more = true; more; ) {
      const rows = await store.db
        .selectFrom('audit_events')
        .select(['seq', 'leaf_hash'])
        .where('seq', '>', frontier.size)
        .orderBy('seq')
        .limit(pageSize)
        .execute();
      more = rows.length === pageSize;
      for (const row of rows) {
        if (Number(row.seq) !== frontier.size + 1) {
          throw new CustosError('internal', `the audit log has no event for seq ${frontier.size + 1}`);
        }
        if (row.leaf_hash === null || row.leaf_hash === undefined) {
          more = false;
          break;
        }
        frontier.append(Buffer.from(row.leaf_hash, 'hex'));
      }
    }
    if (latest !== undefined) {
      // Events at or below the checkpoint must still exist: the restored frontier assumed so.
      // (Counted on the seq index alone; a leaf hash erased from a row is what verify --live finds.)
      const count = await store.db
        .selectFrom('audit_events')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('seq', '<=', lastSigned!.size)
        .executeTakeFirstOrThrow();
      if (Number(count.n) !== lastSigned!.size) {
        throw new CustosError(
          'internal',
          `checkpoint ${lastSigned!.size} covers ${lastSigned!.size} leaves but ${count.n} are stored`,
        );
      }
    }
    const log = new TransparencyLog(
      store,
      key.origin,
      key.verifier_key,
      signer,
      frontier,
      lastSigned,
      options,
    );
    // Events written before this log existed (or before 0004_tlog) get their leaves now.
    if (!options.readOnly) {
      await log.#backfill();
      // Leaves committed after the last checkpoint (a crash before it was signed) get one soon.
      if (log.size > (lastSigned?.size ?? 0)) log.#scheduleCheckpoint();
    }
    return log;
  }

  /** Leaves committed so far (= the last committed seq). */
  get size(): number {
    return this.#frontier.size;
  }

  /** The seq the next appended event must carry; the recorder assigns seqs from this at write time. */
  get nextSeq(): number {
    return (this.#pending?.size ?? this.#frontier.size) + 1;
  }

  /** Root of the committed tree. */
  root(): Buffer {
    return this.#frontier.root();
  }

  /** The latest signed checkpoint, if any. */
  get latestCheckpoint(): StoredCheckpoint | undefined {
    return this.#lastSigned;
  }

  /**
   * Compute the rows that append events to the log, without writing them: each event's
   * audit_events row with its commitment columns and, for events with content, the
   * audit_content row with the canonical plaintext and its salt. The caller writes them in
   * one atomic batch (store.insertMany), then calls commit(pending) once that write
   * succeeded or rollback(pending) if it failed. Events must carry seqs nextSeq,
   * nextSeq + 1, ... in order; only one append may be pending at a time.
   */
  prepareAppend(events: readonly CommittableEvent[]): PreparedAppend {
    if (this.options.readOnly) throw new CustosError('internal', 'the audit log was opened read-only');
    if (this.#closed) throw new CustosError('store_unavailable', 'the audit log is closed');
    if (this.#pending !== undefined) {
      throw new CustosError('internal', 'an append is pending: commit or roll it back before the next one');
    }
    const base = this.#frontier.size;
    const salts = this.#random(SALT_SIZE * events.length);
    const eventRows: AuditEventTable[] = new Array(events.length);
    const contentRows: AuditContentTable[] = [];
    const leafHashes: Buffer[] = new Array(events.length);
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      if (event.seq !== base + i + 1) {
        throw new CustosError(
          'internal',
          `audit event ${event.id} has seq ${event.seq}, the log expects ${base + i + 1}`,
        );
      }
      const commitment = commitEvent(event, salts.subarray(i * SALT_SIZE, (i + 1) * SALT_SIZE));
      const { record, content } = commitment;
      leafHashes[i] = commitment.leafHash;
      eventRows[i] = rowFromEvent(event, {
        argumentsHash: record.argumentsHash,
        reasoningHash: record.reasoningHash,
        resultHash: record.resultHash,
        leafHash: commitment.leafHash.toString('hex'),
      });
      if (content.arguments !== null || content.reasoning !== null || content.result !== null) {
        contentRows.push({
          event_id: event.id,
          arguments: content.arguments,
          reasoning: content.reasoning,
          result: content.result,
          salt: commitment.salt.toString('hex'),
        });
      }
    }
    const pending: PendingAppend = { baseSize: base, size: base + events.length, leafHashes };
    this.#pending = pending;
    this.#preparedAt = performance.now();
    return { rows: { audit_events: eventRows, audit_content: contentRows }, pending };
  }

  /**
   * Append events inside the caller's Kysely transaction (tests, benchmarks): writes the
   * rows prepareAppend computes. With `existing`, the events' audit_events rows are
   * already there (written before the log existed) and get their commitment columns; any
   * audit_content row is replaced. Call commit(pending) after the transaction commits,
   * rollback(pending) if it fails.
   */
  async appendInTransaction(
    trx: Transaction<Database>,
    events: readonly CommittableEvent[],
    options: { existing?: boolean } = {},
  ): Promise<PendingAppend> {
    const { rows, pending } = this.prepareAppend(events);
    try {
      if (options.existing) {
        for (const row of rows.audit_events) {
          await trx
            .updateTable('audit_events')
            .set({
              policy_set_hash: row.policy_set_hash,
              approval_id: row.approval_id,
              arguments_hash: row.arguments_hash,
              reasoning_hash: row.reasoning_hash,
              result_hash: row.result_hash,
              leaf_hash: row.leaf_hash,
            })
            .where('seq', '=', row.seq)
            .execute();
        }
      } else {
        for (let i = 0; i < rows.audit_events.length; i += rowsPerStatement) {
          await trx
            .insertInto('audit_events')
            .values(rows.audit_events.slice(i, i + rowsPerStatement))
            .execute();
        }
      }
      for (let i = 0; i < rows.audit_content.length; i += rowsPerStatement) {
        await trx
          .insertInto('audit_content')
          .values(rows.audit_content.slice(i, i + rowsPerStatement))
          .onConflict((oc) =>
            oc.column('event_id').doUpdateSet((eb) => ({
              arguments: eb.ref('excluded.arguments'),
              reasoning: eb.ref('excluded.reasoning'),
              result: eb.ref('excluded.result'),
              salt: eb.ref('excluded.salt'),
            })),
          )
          .execute();
      }
    } catch (error) {
      this.rollback(pending);
      throw error;
    }
    return pending;
  }

  /** Apply a pending append after its transaction committed; schedules the covering checkpoint. */
  commit(pending: PendingAppend): void {
    if (this.#pending !== pending) throw new CustosError('internal', 'this append is not the pending one');
    this.#pending = undefined;
    for (const leafHash of pending.leafHashes) this.#frontier.append(leafHash);
    const now = performance.now();
    this.#writeMs = now - this.#preparedAt;
    this.#uncovered.push({ size: this.#frontier.size, at: now });
    this.#scheduleCheckpoint();
  }

  /** Drop a pending append whose transaction failed; the frontier stays where it was. */
  rollback(pending: PendingAppend): void {
    if (this.#pending === pending) this.#pending = undefined;
  }

  /** Append events in a transaction of their own (tests, backfill; `existing` as in appendInTransaction). */
  async append(events: readonly CommittableEvent[], options: { existing?: boolean } = {}): Promise<void> {
    let pending: PendingAppend | undefined;
    try {
      await this.store.db.transaction().execute(async (trx) => {
        pending = await this.appendInTransaction(trx, events, options);
      });
    } catch (error) {
      if (pending !== undefined) this.rollback(pending);
      throw error;
    }
    this.commit(pending!);
  }

  /**
   * Arm the timer so that the oldest uncovered commit is covered within the interval: it
   * fires the interval after that commit, less a lead for signing and event-loop delay
   * (a tenth of the interval plus twice the last signing time, at most half the interval).
   */
  #scheduleCheckpoint(): void {
    if (this.#timer !== undefined || this.#closed || this.options.readOnly) return;
    const now = performance.now();
    const oldest = this.#uncovered[0]?.at ?? now;
    const lead = this.#lead();
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.checkpointNow().catch((error: unknown) => this.options.onError?.(error));
      },
      Math.max(0, oldest + this.#intervalMs - lead - now),
    );
    this.#timer.unref();
  }

  /** How early before its deadline a checkpoint starts: a tenth of the interval plus twice the last signing time, at most half the interval. */
  #lead(): number {
    return Math.min(this.#intervalMs / 2, this.#intervalMs / 10 + 2 * this.#signingMs);
  }

  /**
   * Start signing now if the oldest commit not yet covered by a checkpoint is due (the
   * timer would fire now or has already). The recorder calls this before each write: under
   * sustained appends, timers run late behind the writes, and checking between batches
   * keeps the lag near the interval. Does nothing while a checkpoint is being signed.
   */
  checkpointIfDue(): Promise<void> | undefined {
    if (this.#closed || this.options.readOnly || this.#signingQueued > 0) return undefined;
    const oldest = this.#uncovered[0];
    const now = performance.now();
    // The batch about to be written holds the event loop for about as long as the last one did.
    if (oldest === undefined || now + this.#writeMs < oldest.at + this.#intervalMs - this.#lead()) {
      return undefined;
    }
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    return this.checkpointNow().then(
      () => {},
      (error: unknown) => this.options.onError?.(error),
    );
  }

  /**
   * Sign and store a checkpoint for the committed tree if it grew since the last one.
   * Signing is serialized; the log never signs a size at or below one already stored,
   * so it never signs two roots for one size nor a smaller size after a larger one.
   * Returns the latest checkpoint.
   */
  checkpointNow(): Promise<StoredCheckpoint | undefined> {
    this.#signingQueued++;
    const next = this.#signing
      .catch(() => undefined)
      .then(() => this.#signCheckpoint())
      .finally(() => {
        this.#signingQueued--;
      });
    this.#signing = next;
    return next;
  }

  async #signCheckpoint(): Promise<StoredCheckpoint | undefined> {
    if (this.options.readOnly) return this.#lastSigned;
    const size = this.#frontier.size;
    if (size === 0 || (this.#lastSigned !== undefined && size <= this.#lastSigned.size))
      return this.#lastSigned;
    const started = performance.now();
    const root = this.#frontier.root();
    const frontier = JSON.stringify(this.#frontier.nodes.map(hex));
    const time = this.#clock.now();
    const stored = await this.store.db.transaction().execute(async (trx) => {
      const newest = await trx
        .selectFrom('tlog_checkpoints')
        .selectAll()
        .orderBy('size', 'desc')
        .limit(1)
        .executeTakeFirst();
      if (newest !== undefined && Number(newest.size) >= size) {
        // Another handle signed first; ours must agree where sizes meet, and is not signed.
        if (Number(newest.size) === size && newest.root !== hex(root)) {
          throw new CustosError('internal', `checkpoint ${size} is stored with a different root`);
        }
        return checkpointFromRow(newest);
      }
      const note = signCheckpoint({ origin: this.origin, treeSize: size, rootHash: root, extensions: [] }, [
        this.signer,
      ]);
      await trx
        .insertInto('tlog_checkpoints')
        .values({ size, root: hex(root), note, frontier, time })
        .execute();
      return { size, root, note, time };
    });
    this.#lastSigned = stored;
    this.#signingMs = performance.now() - started;
    const covered = this.#uncovered.findIndex((commit) => commit.size > stored.size);
    this.#uncovered.splice(0, covered === -1 ? this.#uncovered.length : covered);
    if (stored.size === size) this.options.onCheckpoint?.(stored);
    if (this.#frontier.size > stored.size) this.#scheduleCheckpoint();
    return stored;
  }

  /** Sign a note text with the log key (export manifests); never a checkpoint body. */
  signNote(text: string): string {
    return signNote(text, [this.signer]);
  }

  /** Stored checkpoints with sizes in [fromSize, toSize], oldest first. */
  async checkpoints(range: { fromSize?: number; toSize?: number } = {}): Promise<StoredCheckpoint[]> {
    let query = this.store.db.selectFrom('tlog_checkpoints').select(['size', 'root', 'note', 'time']);
    if (range.fromSize !== undefined) query = query.where('size', '>=', range.fromSize);
    if (range.toSize !== undefined) query = query.where('size', '<=', range.toSize);
    return (await query.orderBy('size').execute()).map(checkpointFromRow);
  }

  /** The stored leaf hashes of seqs 1..size, in order (O(size) read). */
  async leafHashes(size: number): Promise<Buffer[]> {
    const hashes: Buffer[] = [];
    await forEachLeaf(this.store, 1, size, (row) => {
      if (row.seq !== hashes.length + 1)
        throw new CustosError('internal', `the audit log has no leaf for seq ${hashes.length + 1}`);
      hashes.push(Buffer.from(row.hash, 'hex'));
    });
    if (hashes.length !== size)
      throw new CustosError('bad_request', `the log has ${hashes.length} leaves, fewer than ${size}`);
    return hashes;
  }

  /** RFC 9162 inclusion proof of the event `seq` in the tree of `treeSize` leaves (reads all leaves: O(treeSize)). */
  async inclusionProof(seq: number, treeSize: number): Promise<Buffer[]> {
    return inclusionProof(await this.leafHashes(treeSize), seq - 1, treeSize);
  }

  /** RFC 9162 consistency proof between two tree sizes (reads all leaves: O(size2)). */
  async consistencyProof(size1: number, size2: number): Promise<Buffer[]> {
    return consistencyProof(await this.leafHashes(size2), size1, size2);
  }

  /** Stop the timer and sign a final checkpoint for whatever was committed. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.checkpointNow();
  }

  async #backfill(): Promise<void> {
    for (;;) {
      const rows = await this.store.db
        .selectFrom('audit_events')
        .leftJoin('audit_content', 'audit_content.event_id', 'audit_events.id')
        .selectAll('audit_events')
        .select(['audit_content.arguments', 'audit_content.reasoning', 'audit_content.result'])
        .where('audit_events.seq', '>', this.size)
        .orderBy('audit_events.seq')
        .limit(rowsPerStatement)
        .execute();
      if (rows.length === 0) return;
      const events = rows.map(eventFromRow);
      await this.append(events, { existing: true });
      if (rows.length < rowsPerStatement) return;
    }
  }
}

/** Visit stored leaf hashes with seq in [from, to] in order, a page at a time. */
export async function forEachLeaf(
  store: Store,
  from: number,
  to: number,
  visit: (row: { seq: number; hash: string }) => void | Promise<void>,
): Promise<void> {
  let after = from - 1;
  while (after < to) {
    const rows = await store.db
      .selectFrom('audit_events')
      .select(['seq', 'leaf_hash'])
      .where('seq', '>', after)
      .where('seq', '<=', to)
      .where('leaf_hash', 'is not', null)
      .orderBy('seq')
      .limit(pageSize)
      .execute();
    for (const row of rows) await visit({ seq: Number(row.seq), hash: row.leaf_hash! });
    if (rows.length < pageSize) return;
    after = Number(rows[rows.length - 1]!.seq);
  }
}

async function loadKey(store: Store, options: TransparencyLogOptions) {
  const existing = await store.db
    .selectFrom('tlog_keys')
    .selectAll()
    .where('id', '=', LOG_KEY_ID)
    .executeTakeFirst();
  if (existing !== undefined) {
    parseVerifierKey(existing.verifier_key);
    return existing;
  }
  if (options.readOnly)
    throw new CustosError('not_found', 'the audit log has no signing key yet: start Custos once');
  const random = options.random ?? randomBytes;
  const origin = options.origin ?? `custos.local/${random(8).toString('hex')}`;
  const { signerKey, verifierKey } = generateSignerKey(origin, random);
  await store.db
    .insertInto('tlog_keys')
    .values({
      id: LOG_KEY_ID,
      origin,
      signer_key: signerKey,
      verifier_key: verifierKey,
      created_at: (options.clock ?? systemClock).now(),
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
  // Another process may have created the key between our read and insert: the stored one wins.
  return store.db.selectFrom('tlog_keys').selectAll().where('id', '=', LOG_KEY_ID).executeTakeFirstOrThrow();
}
