import { sql } from 'kysely';
import type {
  ApprovalGrantTable,
  ApprovalLinkTable,
  ApprovalStatus,
  ApprovalTable,
  ApprovalVoteTable,
  Store,
} from '../store/index.js';

/** What a containment covers: an agent, a task, a server, one tool of a server, or everything. */
export interface ContainedScope {
  readonly scope: 'agent' | 'task' | 'server' | 'tool' | 'all';
  /** Agent id, task id, server, or "server.tool"; ignored for all. */
  readonly target: string;
}

// biome-ignore lint/suspicious/noExplicitAny: one scope filter for the approvals and grants queries
function inScope<Q extends { where: (...args: any[]) => Q }>(query: Q, c: ContainedScope): Q {
  switch (c.scope) {
    case 'agent':
      return query.where('agent_id', '=', c.target);
    case 'task':
      return query.where('task_id', '=', c.target);
    case 'server':
      return query.where('server', '=', c.target);
    case 'tool': {
      const dot = c.target.indexOf('.');
      return query.where('server', '=', c.target.slice(0, dot)).where('tool', '=', c.target.slice(dot + 1));
    }
    case 'all':
      return query;
  }
}

export interface ApprovalFilter {
  status?: ApprovalStatus | undefined;
  agentId?: string | undefined;
  limit?: number | undefined;
}

/**
 * The approvals tables. Every state change is one conditional UPDATE whose WHERE clause
 * names the state it leaves, so two racing writers (two retries, two approvers, two
 * Custos processes on PostgreSQL) cannot both win.
 */
export class ApprovalRepository {
  constructor(private readonly store: Store) {}

  async insert(row: ApprovalTable): Promise<void> {
    await this.store.db.insertInto('approvals').values(row).execute();
  }

  get(id: string): Promise<ApprovalTable | undefined> {
    return this.store.db.selectFrom('approvals').selectAll().where('id', '=', id).executeTakeFirst();
  }

  list(filter: ApprovalFilter): Promise<ApprovalTable[]> {
    let query = this.store.db.selectFrom('approvals').selectAll();
    if (filter.status !== undefined) query = query.where('status', '=', filter.status);
    if (filter.agentId !== undefined) query = query.where('agent_id', '=', filter.agentId);
    return query
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(filter.limit ?? 50)
      .execute();
  }

  /** Approvals of one exact call, asked of one tier, in a state, not expired; oldest first. */
  byCall(callHash: string, tier: string, status: ApprovalStatus, now: number): Promise<ApprovalTable[]> {
    return this.store.db
      .selectFrom('approvals')
      .selectAll()
      .where('call_hash', '=', callHash)
      .where('tier', '=', tier)
      .where('status', '=', status)
      .where('expires_at', '>', now)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  }

  /** Consume an approved approval: true for exactly one caller, and only before it expires. */
  async consume(id: string, now: number): Promise<boolean> {
    const result = await this.store.db
      .updateTable('approvals')
      .set({ status: 'consumed', consumed_at: now })
      .where('id', '=', id)
      .where('status', '=', 'approved')
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** Mark approvals past their time as expired (pending ones and approved ones never used). */
  async expire(now: number, id?: string): Promise<void> {
    let query = this.store.db
      .updateTable('approvals')
      .set({ status: 'expired' })
      .where('status', 'in', ['pending', 'approved'])
      .where('expires_at', '<=', now);
    if (id !== undefined) query = query.where('id', '=', id);
    await query.execute();
  }

  /** Insert a vote; false when this person has already voted on this approval. */
  async addVote(vote: ApprovalVoteTable): Promise<boolean> {
    const existing = await this.store.db
      .selectFrom('approval_votes')
      .select('voter')
      .where('approval_id', '=', vote.approval_id)
      .where('voter', '=', vote.voter)
      .executeTakeFirst();
    if (existing !== undefined) return false;
    try {
      await this.store.db.insertInto('approval_votes').values(vote).execute();
      return true;
    } catch (error) {
      // A concurrent vote by the same person hit the primary key first.
      if (await this.hasVote(vote.approval_id, vote.voter)) return false;
      throw error;
    }
  }

  private async hasVote(approvalId: string, voter: string): Promise<boolean> {
    const row = await this.store.db
      .selectFrom('approval_votes')
      .select('voter')
      .where('approval_id', '=', approvalId)
      .where('voter', '=', voter)
      .executeTakeFirst();
    return row !== undefined;
  }

  votes(approvalIds: readonly string[]): Promise<ApprovalVoteTable[]> {
    if (approvalIds.length === 0) return Promise.resolve([]);
    return this.store.db
      .selectFrom('approval_votes')
      .selectAll()
      .where('approval_id', 'in', approvalIds)
      .orderBy('at')
      .execute();
  }

  /**
   * pending -> approved once the approve votes reach the quorum, in one statement: whichever
   * voter's statement runs after the last needed vote committed sees it and wins.
   */
  async approveIfQuorum(id: string, now: number, reason: string | null): Promise<boolean> {
    const approvals = this.store.db
      .selectFrom('approval_votes')
      .select(sql<number>`count(*)`.as('n'))
      .where('approval_id', '=', id)
      .where('decision', '=', 'approve');
    const result = await this.store.db
      .updateTable('approvals')
      .set({ status: 'approved', decided_at: now, reason })
      .where('id', '=', id)
      .where('status', '=', 'pending')
      .where('expires_at', '>', now)
      .where(sql<boolean>`(${approvals}) >= quorum`)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** pending -> denied or cancelled, before expiry. */
  async close(
    id: string,
    status: 'denied' | 'cancelled',
    now: number,
    reason: string | null,
  ): Promise<boolean> {
    const result = await this.store.db
      .updateTable('approvals')
      .set({ status, decided_at: now, reason })
      .where('id', '=', id)
      .where('status', '=', 'pending')
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** Pending approvals of the calls a containment covers. */
  pendingIn(c: ContainedScope): Promise<ApprovalTable[]> {
    return inScope(this.store.db.selectFrom('approvals').selectAll().where('status', '=', 'pending'), c)
      .orderBy('created_at')
      .execute();
  }

  /** Grants in force at `now` that a containment covers. */
  grantsIn(c: ContainedScope, now: number): Promise<ApprovalGrantTable[]> {
    return inScope(
      this.store.db
        .selectFrom('approval_grants')
        .selectAll()
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now),
      c,
    ).execute();
  }

  async insertGrant(row: ApprovalGrantTable): Promise<void> {
    await this.store.db.insertInto('approval_grants').values(row).execute();
  }

  /**
   * Grants in force for this agent, task (null: calls without a task), server and tool, given
   * on an approval of the same tier (a grant under a lenient tier never covers a stricter one).
   */
  activeGrants(
    agentId: string,
    taskId: string | null,
    server: string,
    tool: string,
    tier: string,
    now: number,
  ): Promise<ApprovalGrantTable[]> {
    let query = this.store.db
      .selectFrom('approval_grants')
      .innerJoin('approvals', 'approvals.id', 'approval_grants.approval_id')
      .selectAll('approval_grants')
      .where('approval_grants.agent_id', '=', agentId)
      .where('approval_grants.server', '=', server)
      .where('approval_grants.tool', '=', tool)
      .where('approval_grants.expires_at', '>', now)
      .where('approval_grants.revoked_at', 'is', null)
      .where('approvals.tier', '=', tier);
    query =
      taskId === null
        ? query.where('approval_grants.task_id', 'is', null)
        : query.where('approval_grants.task_id', '=', taskId);
    return query.execute();
  }

  /** Grants, newest first; only those in force at `now` when given. */
  grants(filter: {
    agentId?: string | undefined;
    activeAt?: number | undefined;
    limit: number;
  }): Promise<ApprovalGrantTable[]> {
    let query = this.store.db.selectFrom('approval_grants').selectAll();
    if (filter.agentId !== undefined) query = query.where('agent_id', '=', filter.agentId);
    if (filter.activeAt !== undefined)
      query = query.where('expires_at', '>', filter.activeAt).where('revoked_at', 'is', null);
    return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(filter.limit).execute();
  }

  grant(id: string): Promise<ApprovalGrantTable | undefined> {
    return this.store.db.selectFrom('approval_grants').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Revoke a grant still in force; false when it had expired or was already revoked. */
  async revokeGrant(id: string, now: number): Promise<boolean> {
    const result = await this.store.db
      .updateTable('approval_grants')
      .set({ revoked_at: now })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async insertLinks(rows: ApprovalLinkTable[]): Promise<void> {
    if (rows.length > 0) await this.store.db.insertInto('approval_links').values(rows).execute();
  }

  link(nonce: string): Promise<ApprovalLinkTable | undefined> {
    return this.store.db
      .selectFrom('approval_links')
      .selectAll()
      .where('nonce', '=', nonce)
      .executeTakeFirst();
  }

  /** Use a link once: true for exactly one caller, before it expires. */
  async spendLink(nonce: string, now: number): Promise<boolean> {
    const result = await this.store.db
      .updateTable('approval_links')
      .set({ used_at: now })
      .where('nonce', '=', nonce)
      .where('used_at', 'is', null)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** Votes cast since a time, with the creation time of their approval (for approver statistics). */
  votesSince(since: number): Promise<Array<{ voter: string; at: number; created_at: number }>> {
    return this.store.db
      .selectFrom('approval_votes')
      .innerJoin('approvals', 'approvals.id', 'approval_votes.approval_id')
      .select(['approval_votes.voter', 'approval_votes.at', 'approvals.created_at'])
      .where('approval_votes.at', '>=', since)
      .orderBy('approval_votes.at')
      .execute();
  }
}
