import type { Transaction } from 'kysely';
import { CustosError } from '../core/errors.js';
import type { IdGenerator } from '../core/ids.js';
import type { Database, Store } from '../store/index.js';
import type { AuditEvent, AuditEventInput } from './events.js';
import type { PendingAppend, TransparencyLog } from './tlog.js';

/** Most events written in one group commit. */
const maxBatch = 1000;
/** Told of every batch once it is durable, in log order; exporters hang off this. */
export type DurableListener = (events: readonly AuditEvent[]) => void;

/**
 * What `AuditRecorder.transaction` hands its work: `append` queues an event for this
 * transaction (and returns it with its id; the seq is set when written), `write` writes the
 * queued events now, inside the transaction (otherwise they are written after the work
 * returns, still inside it). Nothing is durable until the transaction commits.
 */
export interface AuditTransaction {
  append(input: AuditEventInput): AuditEvent;
  write(): Promise<void>;
}

interface Pending {
  /** Its seq is set when the batch is written (from the log's next seq), so a failed batch leaves no gap. */
  event: AuditEvent;
  resolve: (event: AuditEvent) => void;
  reject: (error: unknown) => void;
}

/**
 * Appends audit events with group commit: events arriving close together are written in
 * one atomic batch (their audit_events rows with their transparency-log commitments, and
 * their content), and each caller's promise resolves only after that batch is durable. The
 * gateway awaits it before answering, so no answered call lacks its event or its leaf.
 */
export class AuditRecorder {
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private scheduled = false;
  private closed = false;
  private readonly listeners: DurableListener[] = [];

  constructor(
    private readonly store: Store,
    private readonly log: TransparencyLog,
    private readonly ids: IdGenerator,
    private readonly options: { commitDelayMs: number; onListenerError?: (error: unknown) => void },
  ) {}

  /** Append one event; resolves once it is durable, with the seq it was given. */
  record(input: AuditEventInput): Promise<AuditEvent> {
    if (this.closed) return Promise.reject(new CustosError('store_unavailable', 'the audit log is closed'));
    const event = this.eventOf(input);
    return new Promise((resolve, reject) => {
      this.queue.push({ event, resolve, reject });
      this.schedule();
    });
  }

  /**
   * Run `work` in one database transaction and append the events it adds to the log in that
   * same transaction: the state change and its audit events commit together or not at all.
   * Group commits wait while it runs (seqs are assigned from the log's frontier, so only one
   * writer may hold it), and it waits for a batch being written. Keep the work short.
   */
  async transaction<T>(
    work: (trx: Transaction<Database>, audit: AuditTransaction) => Promise<T>,
  ): Promise<T> {
    if (this.closed) throw new CustosError('store_unavailable', 'the audit log is closed');
    // Claim the writer's slot: wait for any batch or other transaction, then take it in the same turn.
    while (this.flushing) await this.flushing.catch(() => {});
    const run = this.runTransaction(work);
    this.flushing = run.then(
      () => {},
      () => {},
    );
    void this.flushing.finally(() => {
      this.flushing = null;
      if (this.queue.length > 0) this.schedule();
    });
    return run;
  }

  private async runTransaction<T>(
    work: (trx: Transaction<Database>, audit: AuditTransaction) => Promise<T>,
  ): Promise<T> {
    const events: AuditEvent[] = [];
    let pending: PendingAppend | undefined;
    let written = false;
    try {
      const result = await this.store.db.transaction().execute(async (trx) => {
        const write = async () => {
          if (written)
            throw new CustosError('internal', 'the events of this transaction were already written');
          written = true;
          if (events.length === 0) return;
          const base = this.log.nextSeq;
          events.forEach((event, i) => {
            event.seq = base + i;
          });
          pending = await this.log.appendInTransaction(trx, events);
        };
        const value = await work(trx, {
          append: (input) => {
            if (written) throw new CustosError('internal', 'append after the events were written');
            const event = this.eventOf(input);
            events.push(event);
            return event;
          },
          write,
        });
        if (!written) await write();
        return value;
      });
      if (pending !== undefined) this.log.commit(pending);
      if (events.length > 0 && this.listeners.length > 0) setImmediate(() => this.notify(events));
      return result;
    } catch (error) {
      if (pending !== undefined) this.log.rollback(pending);
      throw error;
    }
  }

  private eventOf(input: AuditEventInput): AuditEvent {
    // Member by member: an object spread of this many members cost several microseconds on
    // the append path. `satisfies` makes a member added to AuditEventInput a compile error here.
    return {
      id: this.ids.next('evt'),
      seq: 0,
      time: input.time,
      agentId: input.agentId,
      owner: input.owner,
      taskId: input.taskId,
      method: input.method,
      server: input.server,
      target: input.target,
      argsHash: input.argsHash,
      effect: input.effect,
      policyIds: input.policyIds,
      reasons: input.reasons,
      outcome: input.outcome,
      errorCode: input.errorCode,
      latencyUs: input.latencyUs,
      traceId: input.traceId,
      policySetHash: input.policySetHash ?? null,
      approvalId: input.approvalId ?? null,
      traceparent: input.traceparent,
      arguments: input.arguments,
      reasoning: input.reasoning,
      result: input.result,
    } satisfies Record<Exclude<keyof AuditEvent, 'erased'>, unknown>;
  }

  /**
   * Call `listener` with each batch after it is durable. Listeners run after the batch's callers
   * have been resolved (on a later turn of the event loop), and a listener that throws is reported
   * through `onListenerError`, never to a caller: exporting must not slow or fail a governed call.
   */
  onDurable(listener: DurableListener): () => void {
    this.listeners.push(listener);
    return () => {
      const index = this.listeners.indexOf(listener);
      if (index !== -1) this.listeners.splice(index, 1);
    };
  }

  /** Write everything queued, then stop accepting events. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.queue.length > 0 || this.flushing) await this.flush();
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      void this.flush();
    };
    if (this.options.commitDelayMs > 0) setTimeout(run, this.options.commitDelayMs);
    else setImmediate(run);
  }

  private async flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.queue.length === 0) return;
    // A bounded batch keeps each synchronous write short, so timers (the checkpoint among
    // them) and answers are not held up behind a backlog written in one go.
    const batch = this.queue.length <= maxBatch ? this.queue : this.queue.splice(0, maxBatch);
    if (batch === this.queue) this.queue = [];
    this.flushing = this.write(batch).finally(() => {
      this.flushing = null;
      if (this.queue.length > 0) this.schedule();
    });
    return this.flushing;
  }

  private async write(batch: Pending[]): Promise<void> {
    // A backlog of writes delays the checkpoint timer: sign a due checkpoint between batches,
    // ahead of this one (failures go to the log's onError; the timer retries).
    const due = this.log.checkpointIfDue();
    if (due !== undefined) await due;
    const base = this.log.nextSeq;
    const events = batch.map((p, i) => {
      p.event.seq = base + i;
      return p.event;
    });
    let pending: PendingAppend | undefined;
    try {
      const prepared = this.log.prepareAppend(events);
      pending = prepared.pending;
      await this.store.insertMany(prepared.rows);
    } catch (error) {
      if (pending !== undefined) this.log.rollback(pending);
      const failure = new CustosError('store_unavailable', 'the audit log could not be written', {
        cause: error,
      });
      for (const p of batch) p.reject(failure);
      return;
    }
    this.log.commit(pending);
    for (const p of batch) p.resolve(p.event);
    if (this.listeners.length > 0) setImmediate(() => this.notify(events));
  }

  private notify(events: readonly AuditEvent[]): void {
    for (const listener of this.listeners) {
      try {
        listener(events);
      } catch (error) {
        this.options.onListenerError?.(error);
      }
    }
  }
}
