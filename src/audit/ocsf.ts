import { createWriteStream, type WriteStream } from 'node:fs';
import { request } from 'undici';
import type { AuditEvent } from './events.js';

/**
 * OCSF export of audit events: each governed call becomes an API Activity record (class 6003,
 * category 6 Application Activity) with the security_control profile, so a SIEM sees the agent as
 * the actor, the MCP method as the API operation, the upstream server as the service, and a policy
 * denial as a blocked, denied authorization rather than a generic failure.
 */

/** The OCSF schema version these records follow. */
export const OCSF_SCHEMA_VERSION = '1.3.0';

const API_ACTIVITY_CLASS_UID = 6003;
const APPLICATION_CATEGORY_UID = 6;

/** API Activity activity_id: OCSF only names CRUD; MCP calls that are not reads are "Other". */
const ActivityId = { read: 2, other: 99 } as const;
const SeverityId = { informational: 1, low: 2, medium: 3 } as const;
const StatusId = { success: 1, failure: 2 } as const;
/** security_control profile: action_id and disposition_id. */
const ActionId = { allowed: 1, denied: 2 } as const;
const DispositionId = { allowed: 1, blocked: 2 } as const;

const READ_METHODS = new Set([
  'tools/list',
  'prompts/list',
  'prompts/get',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'completion/complete',
]);

export interface OcsfPolicy {
  uid: string;
  name: string;
}

export interface OcsfAuthorization {
  /** "Allowed" or "Denied". */
  decision: string;
  policy?: OcsfPolicy;
}

export interface OcsfResource {
  name: string;
  /** "MCP Tool", "MCP Prompt", "MCP Resource" or "MCP Target". */
  type: string;
}

export interface OcsfApiActivity {
  class_uid: 6003;
  class_name: 'API Activity';
  category_uid: 6;
  category_name: 'Application Activity';
  activity_id: number;
  activity_name: string;
  type_uid: number;
  type_name: string;
  severity_id: number;
  severity: string;
  /** Milliseconds since the epoch (OCSF timestamp_t). */
  time: number;
  /** Milliseconds. */
  duration: number;
  status_id: number;
  status: 'Success' | 'Failure';
  status_code?: string;
  status_detail?: string;
  message: string;
  action_id: number;
  action: 'Allowed' | 'Denied';
  disposition_id: number;
  disposition: 'Allowed' | 'Blocked';
  actor: {
    /** The agent: a non-human client application identified by its agent id. */
    app_uid?: string;
    app_name?: string;
    /** The accountable owner: the human user context the agent acts for. */
    user?: { name: string; email_addr?: string; type_id: 1; type: 'User' };
    /** The policy decision that let the call through or stopped it, one entry per determining policy. */
    authorizations: OcsfAuthorization[];
  };
  api: {
    operation: string;
    service?: { name: string };
  };
  resources?: OcsfResource[];
  src_endpoint: { name: string; ip?: string };
  metadata: {
    version: string;
    product: { name: string; version: string; vendor_name: string };
    uid: string;
    sequence: number;
    correlation_uid?: string;
    log_name: 'audit';
    profiles: string[];
  };
  unmapped: Record<string, unknown>;
}

export interface OcsfProduct {
  name: string;
  version: string;
}

export interface OcsfOptions {
  /**
   * Copy the plaintext arguments, reasoning and result (where the event carries them) into
   * `unmapped`. Off by default: SIEMs are wide-audience stores and the audit log keeps only hashes.
   */
  includeContent?: boolean;
  /** Where the agent connected from, when the caller knows it (the audit event does not carry it). */
  srcEndpoint?: { name?: string; ip?: string };
}

function resourceType(method: string): string {
  if (method.startsWith('tools/')) return 'MCP Tool';
  if (method.startsWith('prompts/')) return 'MCP Prompt';
  if (method.startsWith('resources/')) return 'MCP Resource';
  return 'MCP Target';
}

function authorizations(event: AuditEvent): OcsfAuthorization[] {
  const decision = event.effect === 'allow' ? 'Allowed' : 'Denied';
  if (event.policyIds.length === 0) return [{ decision }];
  return event.policyIds.map((id) => ({ decision, policy: { uid: id, name: id } }));
}

/** A one-line summary a SIEM analyst can read without opening the record. */
function message(event: AuditEvent): string {
  const who = event.agentId ?? 'unknown agent';
  const what = [event.server, event.target].filter((part) => part !== null).join('.');
  const call = what === '' ? event.method : `${event.method} ${what}`;
  switch (event.outcome) {
    case 'executed':
      return `${who} ${call}: executed`;
    case 'denied': {
      const by = event.policyIds.length > 0 ? ` by ${event.policyIds.join(', ')}` : '';
      return `${who} ${call}: denied${by}`;
    }
    case 'failed':
      return `${who} ${call}: failed${event.errorCode === null ? '' : ` (${event.errorCode})`}`;
  }
}

/**
 * One audit event as an OCSF API Activity record. The agent is the actor (app_uid) acting for its
 * owner (user); a Custos denial is action Denied, disposition Blocked and status Failure with the
 * determining policy ids in actor.authorizations; an allowed call that failed upstream is status
 * Failure with disposition Allowed. Custos fields OCSF has no place for go to `unmapped.custos`.
 */
export function toOcsf(event: AuditEvent, product: OcsfProduct, options: OcsfOptions = {}): OcsfApiActivity {
  const activityId = READ_METHODS.has(event.method) ? ActivityId.read : ActivityId.other;
  const activityName = activityId === ActivityId.read ? 'Read' : 'Other';
  const allowed = event.effect === 'allow';
  const succeeded = event.outcome === 'executed';
  const severityId = !allowed ? SeverityId.medium : succeeded ? SeverityId.informational : SeverityId.low;

  const actor: OcsfApiActivity['actor'] = { authorizations: authorizations(event) };
  if (event.agentId !== null) {
    actor.app_uid = event.agentId;
    actor.app_name = event.agentId;
  }
  if (event.owner !== null) {
    actor.user = { name: event.owner, type_id: 1, type: 'User' };
    if (event.owner.includes('@')) actor.user.email_addr = event.owner;
  }

  const custos: Record<string, unknown> = {
    effect: event.effect,
    outcome: event.outcome,
    task_id: event.taskId,
    trace_id: event.traceId,
    args_hash: event.argsHash,
    policy_ids: [...event.policyIds],
    reasons: [...event.reasons],
    error_code: event.errorCode,
    latency_us: event.latencyUs,
  };
  // Set by the gateway once approvals and policy set hashes are recorded with each event.
  const extra = event as AuditEvent & { approvalId?: unknown; policySetHash?: unknown };
  if (typeof extra.approvalId === 'string') custos.approval_id = extra.approvalId;
  if (typeof extra.policySetHash === 'string') custos.policy_set_hash = extra.policySetHash;
  if (options.includeContent === true) {
    for (const key of ['arguments', 'reasoning', 'result'] as const) {
      if (event[key] !== undefined) custos[key] = event[key];
    }
  }

  const record: OcsfApiActivity = {
    class_uid: API_ACTIVITY_CLASS_UID,
    class_name: 'API Activity',
    category_uid: APPLICATION_CATEGORY_UID,
    category_name: 'Application Activity',
    activity_id: activityId,
    activity_name: activityName,
    type_uid: API_ACTIVITY_CLASS_UID * 100 + activityId,
    type_name: `API Activity: ${activityName}`,
    severity_id: severityId,
    severity:
      severityId === SeverityId.informational
        ? 'Informational'
        : severityId === SeverityId.low
          ? 'Low'
          : 'Medium',
    time: event.time,
    duration: Math.round(event.latencyUs / 1000),
    status_id: succeeded ? StatusId.success : StatusId.failure,
    status: succeeded ? 'Success' : 'Failure',
    message: message(event),
    action_id: allowed ? ActionId.allowed : ActionId.denied,
    action: allowed ? 'Allowed' : 'Denied',
    disposition_id: allowed ? DispositionId.allowed : DispositionId.blocked,
    disposition: allowed ? 'Allowed' : 'Blocked',
    actor,
    api: { operation: event.method },
    // The audit event carries no client address; name the agent so the required object is not empty.
    src_endpoint: {
      name: options.srcEndpoint?.name ?? event.agentId ?? 'unknown',
      ...(options.srcEndpoint?.ip === undefined ? {} : { ip: options.srcEndpoint.ip }),
    },
    metadata: {
      version: OCSF_SCHEMA_VERSION,
      product: { name: product.name, version: product.version, vendor_name: 'Custos' },
      uid: event.id,
      sequence: event.seq,
      log_name: 'audit',
      profiles: ['security_control'],
    },
    unmapped: { custos },
  };
  if (event.server !== null) record.api.service = { name: event.server };
  if (event.target !== null) record.resources = [{ name: event.target, type: resourceType(event.method) }];
  if (event.errorCode !== null) record.status_code = event.errorCode;
  if (event.reasons.length > 0) record.status_detail = event.reasons.join('; ');
  if (event.traceId !== null) record.metadata.correlation_uid = event.traceId;
  return record;
}

/** What a sink has done so far; drops are counted, never thrown at the caller. */
export interface OcsfSinkStats {
  /** Records handed to the destination (written to the file, accepted by the webhook). */
  delivered: number;
  /** Records given up on: queue full, destination refused, or retries exhausted. */
  dropped: number;
  /** Records accepted by write() and not yet delivered or dropped. */
  pending: number;
  lastError: string | null;
}

/**
 * Where OCSF records go as they happen. write() never blocks or throws: a slow or broken
 * destination costs dropped records (counted in stats and reported through onDrop), never a
 * delayed tool call.
 */
export interface OcsfSink {
  write(record: OcsfApiActivity): void;
  /** Resolves once every record written before the call is delivered or dropped. */
  flush(): Promise<void>;
  /** Flushes, then releases the destination; later writes are dropped. */
  close(): Promise<void>;
  stats(): OcsfSinkStats;
}

/** Called when records are dropped, with how many and why. */
export type DropReporter = (count: number, reason: string) => void;

export interface FileSinkOptions {
  /** Records buffered in memory beyond this many bytes are dropped (default 16 MiB). */
  maxBufferedBytes?: number;
  onDrop?: DropReporter;
}

/**
 * JSON lines appended to a file, one record per line, in write order. The file is opened in append
 * mode, so restarts and several exporters never truncate what is there.
 */
export class FileOcsfSink implements OcsfSink {
  readonly #stream: WriteStream;
  readonly #maxBufferedBytes: number;
  readonly #onDrop: DropReporter | undefined;
  #delivered = 0;
  #dropped = 0;
  #pending = 0;
  #lastError: string | null = null;
  #closed = false;
  #failed = false;

  constructor(path: string, options: FileSinkOptions = {}) {
    this.#maxBufferedBytes = options.maxBufferedBytes ?? 16 * 1024 * 1024;
    this.#onDrop = options.onDrop;
    this.#stream = createWriteStream(path, { flags: 'a', encoding: 'utf8' });
    this.#stream.on('error', (error) => {
      this.#failed = true;
      this.#lastError = error.message;
    });
  }

  write(record: OcsfApiActivity): void {
    if (this.#closed || this.#failed) {
      this.#drop(1, this.#closed ? 'sink closed' : `file error: ${this.#lastError}`);
      return;
    }
    if (this.#stream.writableLength > this.#maxBufferedBytes) {
      this.#drop(1, 'file buffer full');
      return;
    }
    this.#pending++;
    this.#stream.write(`${JSON.stringify(record)}\n`, (error) => {
      this.#pending--;
      if (error) {
        this.#lastError = error.message;
        this.#drop(1, `file error: ${error.message}`);
      } else {
        this.#delivered++;
      }
    });
  }

  flush(): Promise<void> {
    if (this.#closed || this.#failed || this.#pending === 0) return Promise.resolve();
    // Write callbacks run in order, so an empty write completes after every earlier record.
    return new Promise((resolve) => {
      this.#stream.write('', () => resolve());
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush();
    this.#closed = true;
    await new Promise<void>((resolve) => this.#stream.end(() => resolve()));
  }

  stats(): OcsfSinkStats {
    return {
      delivered: this.#delivered,
      dropped: this.#dropped,
      pending: this.#pending,
      lastError: this.#lastError,
    };
  }

  #drop(count: number, reason: string): void {
    this.#dropped += count;
    this.#onDrop?.(count, reason);
  }
}

export interface WebhookSinkOptions {
  url: string;
  /** Extra request headers, for example an Authorization header for the collector. */
  headers?: Record<string, string>;
  /** Records per POST at most (default 500); fewer when fewer are queued. */
  batchSize?: number;
  /** How long a partial batch waits for company before it is sent (default 1000 ms). */
  flushIntervalMs?: number;
  /** Records held in memory at most; writes beyond it are dropped (default 10,000). */
  maxQueue?: number;
  /** Attempts after the first for a batch that failed with a network error, 429 or 5xx (default 5). */
  maxRetries?: number;
  /** First retry delay, doubled each attempt up to maxBackoffMs (defaults 250 ms and 30 s). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Per-request timeout for headers and body (default 10 s). */
  timeoutMs?: number;
  onDrop?: DropReporter;
}

class RetryableError extends Error {}

/**
 * Records POSTed to a webhook as a JSON array, in batches, one request in flight at a time so the
 * collector sees them in order. The queue is bounded; failures are retried with exponential backoff
 * and a batch that still fails is dropped and counted, so the gateway never waits on a SIEM.
 */
export class WebhookOcsfSink implements OcsfSink {
  readonly #url: string;
  readonly #headers: Record<string, string>;
  readonly #batchSize: number;
  readonly #flushIntervalMs: number;
  readonly #maxQueue: number;
  readonly #maxRetries: number;
  readonly #backoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #timeoutMs: number;
  readonly #onDrop: DropReporter | undefined;
  #queue: OcsfApiActivity[] = [];
  #inFlight = 0;
  #sending: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #delivered = 0;
  #dropped = 0;
  #lastError: string | null = null;
  #closed = false;

  constructor(options: WebhookSinkOptions) {
    this.#url = options.url;
    this.#headers = { ...options.headers, 'content-type': 'application/json' };
    this.#batchSize = options.batchSize ?? 500;
    this.#flushIntervalMs = options.flushIntervalMs ?? 1000;
    this.#maxQueue = options.maxQueue ?? 10_000;
    this.#maxRetries = options.maxRetries ?? 5;
    this.#backoffMs = options.backoffMs ?? 250;
    this.#maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#onDrop = options.onDrop;
  }

  write(record: OcsfApiActivity): void {
    if (this.#closed) {
      this.#drop(1, 'sink closed');
      return;
    }
    if (this.#queue.length + this.#inFlight >= this.#maxQueue) {
      this.#drop(1, 'webhook queue full');
      return;
    }
    this.#queue.push(record);
    if (this.#queue.length >= this.#batchSize) this.#kick();
    else this.#schedule();
  }

  async flush(): Promise<void> {
    while (this.#queue.length > 0 || this.#sending !== null) {
      this.#kick();
      await this.#sending;
    }
  }

  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  stats(): OcsfSinkStats {
    return {
      delivered: this.#delivered,
      dropped: this.#dropped,
      pending: this.#queue.length + this.#inFlight,
      lastError: this.#lastError,
    };
  }

  #schedule(): void {
    if (this.#timer !== null || this.#sending !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#kick();
    }, this.#flushIntervalMs);
    // An exporter's timer must not keep the process alive on shutdown.
    this.#timer.unref();
  }

  /** Starts the send loop if it is not running. */
  #kick(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#sending !== null || this.#queue.length === 0) return;
    this.#sending = this.#drain().finally(() => {
      this.#sending = null;
      if (this.#queue.length > 0) this.#schedule();
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#batchSize);
      this.#inFlight = batch.length;
      try {
        await this.#sendWithRetries(batch);
        this.#delivered += batch.length;
      } catch (error) {
        this.#lastError = error instanceof Error ? error.message : String(error);
        this.#drop(batch.length, `webhook: ${this.#lastError}`);
      } finally {
        this.#inFlight = 0;
      }
    }
  }

  async #sendWithRetries(batch: OcsfApiActivity[]): Promise<void> {
    const body = JSON.stringify(batch);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#post(body);
        return;
      } catch (error) {
        if (!(error instanceof RetryableError) || attempt >= this.#maxRetries) throw error;
        this.#lastError = error.message;
        const delay = Math.min(this.#backoffMs * 2 ** attempt, this.#maxBackoffMs);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  async #post(body: string): Promise<void> {
    let statusCode: number;
    try {
      const response = await request(this.#url, {
        method: 'POST',
        headers: this.#headers,
        body,
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
      });
      statusCode = response.statusCode;
      await response.body.dump();
    } catch (error) {
      throw new RetryableError(error instanceof Error ? error.message : String(error));
    }
    if (statusCode >= 200 && statusCode < 300) return;
    if (statusCode === 429 || statusCode >= 500) throw new RetryableError(`HTTP ${statusCode}`);
    // Other 4xx: the collector rejects this payload; sending it again will not help.
    throw new Error(`HTTP ${statusCode}`);
  }

  #drop(count: number, reason: string): void {
    this.#dropped += count;
    this.#onDrop?.(count, reason);
  }
}
