import type { Transaction } from 'kysely';
import type { AuditEventInput } from '../audit/index.js';
import type { Database, Store } from '../store/index.js';

/** Lifecycle changes recorded in the audit log, each as method `agents/<verb>`. */
export type LifecycleVerb = 'onboard' | 'suspend' | 'resume' | 'renew' | 'expire' | 'offboard';

/** The expiry rules of onboarding and renewal (config `lifecycle`). */
export interface ExpiryRules {
  /** Days until a new agent expires when onboarding names no expiry. */
  readonly defaultExpiryDays: number;
  /** Longest expiry onboarding or renewal may set, in days from then. */
  readonly maxExpiryDays: number;
}

export const defaultExpiryRules: ExpiryRules = Object.freeze({ defaultExpiryDays: 90, maxExpiryDays: 365 });

export const dayMs = 86_400_000;

/** What an audit transaction offers the work inside it (the audit recorder implements it). */
export interface LifecycleAuditTransaction {
  /** Queue an event to be written in this transaction. */
  append(input: AuditEventInput): unknown;
  /** Write the queued events now, still inside the transaction (else they are written at its end). */
  write(): Promise<void>;
}

/**
 * Runs a state change and its audit events in one database transaction (the audit recorder's
 * `transaction`): both commit, or neither does.
 */
export interface LifecycleAudit {
  transaction<T>(
    work: (trx: Transaction<Database>, audit: LifecycleAuditTransaction) => Promise<T>,
  ): Promise<T>;
}

/** The store alone: changes commit without audit events (unit tests and read-only tools only). */
export function unrecordedLifecycle(store: Store): LifecycleAudit {
  return {
    transaction: (work) =>
      store.db.transaction().execute((trx) => work(trx, { append: () => undefined, write: async () => {} })),
  };
}

/** The agent an offboarding step works on. */
export interface OffboardSubject {
  readonly id: string;
  readonly name: string;
  readonly owner: string;
}

/**
 * One thing offboarding removes, registered by the capability that owns it (approvals cancels
 * pending requests, the vault deletes per-agent bindings). Every step runs inside the one
 * offboarding transaction, with the epoch bump, the credential deletion and the audit event:
 * a step that throws rolls all of it back. The result is recorded in the audit event under
 * the step's name, so it must not hold secret material (counts and ids only).
 */
export interface OffboardStep {
  /** Stable name, e.g. "approvals"; the key of its result in the audit event. */
  readonly name: string;
  run(trx: Transaction<Database>, agent: OffboardSubject, now: number): Promise<Record<string, unknown>>;
}

/** An event of the agent lifecycle, as appended to the audit log. */
export function lifecycleEvent(
  verb: LifecycleVerb,
  agent: { id: string; name: string; owner: string },
  now: number,
  by: string,
  details: Record<string, unknown>,
  reasons: readonly string[] = [],
): AuditEventInput {
  return {
    time: now,
    agentId: agent.id,
    owner: agent.owner,
    taskId: null,
    method: `agents/${verb}`,
    server: null,
    target: agent.name,
    argsHash: null,
    effect: 'allow',
    policyIds: [],
    reasons: [`${verb} by ${by}`, ...reasons],
    outcome: 'executed',
    errorCode: null,
    latencyUs: 0,
    traceId: null,
    arguments: { by, ...details },
  };
}
