import { CustosError } from '../core/errors.js';
import type { IdGenerator } from '../core/ids.js';
import type { AuditContentTable, AuditEventTable, Store } from '../store/index.js';
import type { AuditEvent, AuditEventInput } from './events.js';

interface Pending {
  event: AuditEvent;
  resolve: (event: AuditEvent) => void;
  reject: (error: unknown) => void;
}

/**
 * Appends audit events with group commit: events arriving close together are written in
 * one transaction, and each caller's promise resolves only after that transaction has
 * committed. The gateway awaits it before answering, so no answered call lacks its event.
 */
export class AuditRecorder {
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private scheduled = false;
  private nextSeq = -1;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly ids: IdGenerator,
    private readonly options: { commitDelayMs: number },
  ) {}

  /** Read the last sequence number; call once before recording. */
  async open(): Promise<void> {
    const row = await this.store.db
      .selectFrom('audit_events')
      .select((eb) => eb.fn.max('seq').as('max'))
      .executeTakeFirst();
    this.nextSeq = Number(row?.max ?? 0) + 1;
  }

  /** Append one event; resolves once it is durable. */
  record(input: AuditEventInput): Promise<AuditEvent> {
    if (this.closed) return Promise.reject(new CustosError('store_unavailable', 'the audit log is closed'));
    if (this.nextSeq < 0) throw new Error('AuditRecorder.open() was not called');
    const event: AuditEvent = { ...input, id: this.ids.next('evt'), seq: this.nextSeq++ };
    return new Promise((resolve, reject) => {
      this.queue.push({ event, resolve, reject });
      this.schedule();
    });
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
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    this.flushing = this.write(batch).finally(() => {
      this.flushing = null;
      if (this.queue.length > 0) this.schedule();
    });
    return this.flushing;
  }

  private async write(batch: Pending[]): Promise<void> {
    const events = batch.map((p) => p.event);
    try {
      await this.store.insertMany({
        audit_events: events.map(toRow),
        audit_content: events.filter(hasContent).map(toContentRow),
      });
    } catch (error) {
      const failure = new CustosError('store_unavailable', 'the audit log could not be written', {
        cause: error,
      });
      for (const p of batch) p.reject(failure);
      return;
    }
    for (const p of batch) p.resolve(p.event);
  }
}

function hasContent(event: AuditEvent): boolean {
  return event.arguments !== undefined || event.reasoning !== undefined || event.result !== undefined;
}

function json(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

function toRow(e: AuditEvent): AuditEventTable {
  return {
    seq: e.seq,
    id: e.id,
    time: e.time,
    agent_id: e.agentId,
    owner: e.owner,
    task_id: e.taskId,
    method: e.method,
    server: e.server,
    target: e.target,
    args_hash: e.argsHash,
    effect: e.effect,
    policy_ids: JSON.stringify(e.policyIds),
    reasons: JSON.stringify(e.reasons),
    outcome: e.outcome,
    error_code: e.errorCode,
    latency_us: Math.round(e.latencyUs),
    trace_id: e.traceId,
  };
}

function toContentRow(e: AuditEvent): AuditContentTable {
  return {
    event_id: e.id,
    arguments: json(e.arguments),
    reasoning: json(e.reasoning),
    result: json(e.result),
  };
}
