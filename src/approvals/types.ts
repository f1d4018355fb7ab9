import type { AuditEvent } from '../audit/index.js';
import type { ApprovalStopCode } from '../gateway/index.js';
import type { ApprovalStatus } from '../store/index.js';

export type { ApprovalStatus };

/** The call an approval is bound to, and what an approver needs to judge it. */
export interface ApprovalCall {
  readonly agent: { readonly id: string; readonly name: string; readonly owner: string };
  readonly task: { readonly id: string; readonly purpose: string } | null;
  readonly server: string;
  readonly tool: string;
  readonly arguments: unknown;
  readonly reasoning: unknown;
  /** The determining policies of the decision that asked for approval. */
  readonly policyIds: readonly string[];
}

export interface Vote {
  /** The approver as shown to people: a user's email, or "admin-token". */
  readonly by: string;
  readonly at: number;
  readonly decision: 'approve' | 'deny';
  readonly reason: string | null;
  readonly channel: string;
}

/** An approval as the admin API, the CLI and the console see it. */
export interface Approval {
  readonly id: string;
  readonly status: ApprovalStatus;
  readonly tier: string;
  readonly callHash: string;
  readonly agent: { readonly id: string; readonly name: string; readonly owner: string };
  readonly task: { readonly id: string; readonly purpose: string } | null;
  readonly server: string;
  readonly tool: string;
  readonly arguments: unknown;
  readonly reasoning: unknown;
  readonly policyIds: readonly string[];
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly quorum: { readonly required: number; readonly votes: readonly Vote[] };
  readonly decidedAt: number | null;
  readonly reason: string | null;
  /** The agent's recent audit events (in this task when there is one): 10 in lists, 20 from `show`. */
  readonly recentActivity?: readonly AuditEvent[];
}

/** Who decides: the admin API's actor, or the person a webhook link was minted for. */
export interface Approver {
  readonly id: string;
  readonly kind: 'admin-token' | 'user';
  /** A user's email address. */
  readonly name: string;
  readonly groups: ReadonlySet<string>;
}

/** "This tool, for this task, with arguments matching this pattern, for N minutes." */
export interface GrantRequest {
  readonly minutes: number;
  /** Argument name to a regular expression its value must match in full; unnamed arguments must stay equal. */
  readonly argumentsPattern?: Readonly<Record<string, string>>;
}

export interface DecideInput {
  readonly decision: 'approve' | 'deny';
  readonly reason?: string | undefined;
  readonly grant?: GrantRequest | undefined;
  /** console, cli, webhook or api (recorded with the vote). */
  readonly channel?: string;
}

/** How the approve stage ends for one call. */
export type ApprovalGate =
  | { readonly kind: 'proceed'; readonly approvalId: string; readonly grantId?: string }
  | {
      readonly kind: 'stop';
      readonly code: ApprovalStopCode;
      readonly message: string;
      /** What the agent sees in `_meta["io.custos/approval"]`. */
      readonly approval: Readonly<Record<string, unknown>>;
    };

/** What holding a call may use: the client's cancellation and its progress channel. */
export interface HoldChannel {
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?:
    | ((progress: { progress: number; total?: number; message?: string }) => void)
    | undefined;
}

export interface ApproverStats {
  readonly approver: string;
  readonly perHour: ReadonlyArray<{ readonly hour: string; readonly count: number }>;
  /** Median seconds from the request's creation to this approver's vote. */
  readonly medianSeconds: number | null;
}

/** A grant as the admin API shows it. */
export interface Grant {
  readonly id: string;
  readonly approvalId: string;
  readonly agentId: string;
  readonly taskId: string | null;
  readonly server: string;
  readonly tool: string;
  /** The approved call's arguments; with a pattern, the named ones may vary. */
  readonly arguments: unknown;
  readonly argumentsPattern: Readonly<Record<string, string>> | null;
  readonly grantedBy: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly revokedAt: number | null;
}
