import { performance } from 'node:perf_hooks';
import type { AuditEvent, AuditEventInput } from '../audit/index.js';
import { listEvents } from '../audit/index.js';
import { callHash } from '../core/call-hash.js';
import { canonicalJson } from '../core/canonical.js';
import type { Clock } from '../core/clock.js';
import type { ApprovalsConfig, ApprovalTierConfig } from '../core/config.js';
import { CustosError, isCustosError } from '../core/errors.js';
import type { IdGenerator } from '../core/ids.js';
import type { ApprovalGrantTable, ApprovalTable, ApprovalVoteTable, Store } from '../store/index.js';
import { argumentsMatch, compilePattern } from './grants.js';
import type { LinkClaim, LinkSigner } from './links.js';
import { type ApprovalFilter, ApprovalRepository, type ContainedScope } from './repository.js';
import type {
  Approval,
  ApprovalCall,
  ApprovalGate,
  Approver,
  ApproverStats,
  DecideInput,
  Grant,
  HoldChannel,
} from './types.js';
import type { WebhookChannel } from './webhook.js';

export interface ApprovalServiceDeps {
  store: Store;
  clock: Clock;
  ids: IdGenerator;
  config: ApprovalsConfig;
  /** Appends an audit event (the recorder); resolves when it is durable. */
  audit: { record(input: AuditEventInput): Promise<AuditEvent> };
  /** The annotations of a policy in force, by id (reads `@approval("tier")`). */
  annotationsOf(policyId: string): Readonly<Record<string, string>> | undefined;
  /** The webhook channel, when one is configured. */
  webhook?: WebhookChannel;
  /** Signs one-time decision links (webhook channel). */
  links?: LinkSigner;
  /** How often a held call is told it is still waiting (MCP progress), in ms. */
  progressIntervalMs?: number;
}

/** The SHA-256 of the RFC 8785 canonical JSON of {agent, task, server, tool, arguments}. */
export function callHashOf(call: Pick<ApprovalCall, 'agent' | 'task' | 'server' | 'tool' | 'arguments'>) {
  return callHash({
    agentId: call.agent.id,
    taskId: call.task?.id ?? null,
    server: call.server,
    tool: call.tool,
    arguments: call.arguments,
  });
}

/** The person behind an actor: a user's lower-cased email, or "admin-token". */
export function voterOf(approver: Approver): string {
  return approver.kind === 'admin-token' ? 'admin-token' : approver.name.toLowerCase();
}

const retryAfterSeconds = 5;
const pollMs = 1000;

/**
 * Human approval as a security primitive: policy asks for it, the approval is bound to the
 * exact call by its hash, it is used at most once, and a decision after expiry runs nothing.
 */
export class ApprovalService {
  private readonly repo: ApprovalRepository;
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly patterns = new Map<string, Map<string, RegExp> | undefined>();

  constructor(private readonly deps: ApprovalServiceDeps) {
    this.repo = new ApprovalRepository(deps.store);
  }

  /** The approval tiers the determining policies ask for (their `@approval` annotations). */
  tiersFor(policyIds: readonly string[]): readonly string[] {
    const tiers: string[] = [];
    for (const id of policyIds) {
      const tier = this.deps.annotationsOf(id)?.approval;
      if (tier !== undefined) tiers.push(tier);
    }
    return tiers;
  }

  /**
   * The approve stage for one call: use a grant or an approval of exactly this call, else open
   * (or join) a pending request and hold the call until a decision or the hold bound.
   */
  async gate(call: ApprovalCall, tiers: readonly string[], hold: HoldChannel = {}): Promise<ApprovalGate> {
    const chosen = this.chooseTier(tiers);
    if (chosen === undefined) {
      return {
        kind: 'stop',
        code: 'approval_misconfigured',
        message: `policy asks for approval tier ${tiers.join(', ')}, which is not configured in approvals.tiers`,
        approval: { status: 'unavailable', tiers: [...tiers] },
      };
    }
    const callHash = callHashOf(call);
    const holdMs = (chosen.tier.holdSeconds ?? this.deps.config.holdSeconds) * 1000;
    const holdEnd = performance.now() + holdMs;
    const started = performance.now();
    let progress: NodeJS.Timeout | undefined;
    try {
      for (;;) {
        const usable = await this.usable(call, callHash, chosen.name);
        if (usable !== undefined) return usable;
        const pending = await this.pendingFor(call, callHash, chosen.name, chosen.tier);
        if (hold.onProgress !== undefined && progress === undefined && holdMs > 0) {
          const report = () =>
            hold.onProgress?.({
              progress: Math.round((performance.now() - started) / 100) / 10,
              total: holdMs / 1000,
              message: `waiting for approval ${pending.id} (tier ${pending.tier})`,
            });
          report();
          progress = setInterval(report, this.deps.progressIntervalMs ?? 5000);
        }
        const settled = await this.hold(pending.id, holdEnd, hold.signal);
        if (settled === undefined) {
          // A containment aborts the calls it covers: the held call is answered with it at once,
          // while the containment's listener cancels the request itself.
          const why = hold.signal?.aborted ? hold.signal.reason : undefined;
          if (isCustosError(why) && why.code === 'contained') {
            return {
              kind: 'stop',
              code: 'contained',
              message: `${why.message}; approval ${pending.id} is cancelled and the call was not run`,
              approval: { id: pending.id, status: 'cancelled', tier: pending.tier },
            };
          }
          return this.pendingAnswer(pending);
        }
        if (settled.status === 'approved') {
          if (await this.repo.consume(settled.id, this.deps.clock.now()))
            return { kind: 'proceed', approvalId: settled.id };
          continue; // another identical call used it first: look again while the hold lasts
        }
        if (settled.status === 'consumed') continue;
        if (settled.status === 'cancelled') {
          return {
            kind: 'stop',
            code: 'approval_cancelled',
            message: `approval ${settled.id} was cancelled${settled.reason ? `: ${settled.reason}` : ''}; the call was not run`,
            approval: { id: settled.id, status: 'cancelled', reason: settled.reason, tier: settled.tier },
          };
        }
        if (settled.status === 'denied') {
          return {
            kind: 'stop',
            code: 'approval_denied',
            message: `approval ${settled.id} was denied${settled.reason ? `: ${settled.reason}` : ''}`,
            approval: { id: settled.id, status: 'denied', reason: settled.reason, tier: settled.tier },
          };
        }
        return {
          kind: 'stop',
          code: 'approval_expired',
          message: `approval ${settled.id} is ${settled.status}; the call was not run (retry to ask again)`,
          approval: { id: settled.id, status: settled.status, tier: settled.tier },
        };
      }
    } finally {
      if (progress !== undefined) clearInterval(progress);
    }
  }

  /** Record one person's vote; the approval is decided when a deny arrives or approvals reach the quorum. */
  async decide(approver: Approver, id: string, input: DecideInput): Promise<Approval> {
    const now = this.deps.clock.now();
    const row = await this.repo.get(id);
    if (row === undefined) throw new CustosError('not_found', `no approval ${id}`);
    const tier = this.deps.config.tiers[row.tier];
    if (tier === undefined)
      throw new CustosError('approval_misconfigured', `approval tier ${row.tier} is no longer configured`);
    if (row.status === 'pending' && row.expires_at <= now) {
      await this.repo.expire(now, id);
      throw new CustosError('approval_expired', `approval ${id} expired; the call will not run`);
    }
    if (row.status !== 'pending')
      throw new CustosError('approval_closed', `approval ${id} is already ${row.status}`);
    this.checkEligible(approver, row, tier);
    const reason = input.reason?.trim() || null;
    if (input.decision === 'deny' && reason === null)
      throw new CustosError('bad_request', 'a denial needs a reason (the agent is told it)');
    let pattern: Map<string, RegExp> | undefined;
    if (input.decision === 'approve' && input.grant !== undefined) {
      if (row.quorum !== 1)
        throw new CustosError(
          'bad_request',
          `tier ${row.tier} needs ${row.quorum} approvers; grants need a quorum of 1`,
        );
      const minutes = input.grant.minutes;
      if (!Number.isInteger(minutes) || minutes < 1 || minutes > tier.maxGrantMinutes) {
        throw new CustosError(
          'bad_request',
          `grant.minutes must be a whole number from 1 to ${tier.maxGrantMinutes} (approvals.tiers.${row.tier}.maxGrantMinutes)`,
        );
      }
      if (input.grant.argumentsPattern !== undefined) pattern = compilePattern(input.grant.argumentsPattern);
    }
    const voter = voterOf(approver);
    const vote: ApprovalVoteTable = {
      approval_id: id,
      voter,
      actor_id: approver.id,
      decision: input.decision,
      reason,
      channel: input.channel ?? 'api',
      at: now,
    };
    if (!(await this.repo.addVote(vote)))
      throw new CustosError(
        'approval_ineligible',
        `${voter} has already decided on approval ${id}; one person counts once`,
      );
    const changed =
      input.decision === 'deny'
        ? await this.repo.close(id, 'denied', now, reason)
        : await this.repo.approveIfQuorum(id, now, reason);
    let grantId: string | undefined;
    if (changed && input.decision === 'approve' && input.grant !== undefined) {
      grantId = this.deps.ids.next('grt');
      await this.repo.insertGrant({
        id: grantId,
        approval_id: id,
        agent_id: row.agent_id,
        task_id: row.task_id,
        server: row.server,
        tool: row.tool,
        arguments: row.arguments,
        arguments_pattern: pattern === undefined ? null : JSON.stringify(input.grant.argumentsPattern),
        granted_by: voter,
        created_at: now,
        expires_at: now + input.grant.minutes * 60_000,
        revoked_at: null,
      });
    }
    const after = (await this.repo.get(id)) ?? row;
    await this.deps.audit.record({
      time: now,
      agentId: row.agent_id,
      owner: row.owner,
      taskId: row.task_id,
      method: 'approvals/decide',
      server: row.server,
      target: row.tool,
      // For decisions the hash is the call hash approved or denied, not an arguments hash.
      argsHash: row.call_hash,
      effect: input.decision === 'approve' ? 'allow' : 'deny',
      policyIds: JSON.parse(row.policy_ids) as string[],
      reasons: [
        `approval ${id}`,
        `${input.decision} by ${voter} (${approver.id}) via ${vote.channel}`,
        `call ${row.call_hash}`,
        `status ${after.status}`,
        ...(grantId === undefined ? [] : [`grant ${grantId} for ${input.grant?.minutes} minutes`]),
      ],
      outcome: 'executed',
      errorCode: null,
      latencyUs: 0,
      traceId: null,
      // Committed in the leaf, so the decision stays linked to the call that consumes it.
      approvalId: id,
      arguments: {
        approvalId: id,
        decision: input.decision,
        approver: { id: approver.id, name: approver.name },
        callHash: row.call_hash,
        reason,
        ...(input.grant === undefined ? {} : { grant: input.grant }),
      },
    });
    this.notify(id);
    if (!changed && after.status === 'pending' && after.expires_at <= this.deps.clock.now()) {
      throw new CustosError('approval_expired', `approval ${id} expired; the call will not run`);
    }
    return this.view(after, await this.repo.votes([id]));
  }

  /** Withdraw a pending request (admin). */
  async cancel(approver: Approver, id: string, reason: string | null): Promise<Approval> {
    const now = this.deps.clock.now();
    const row = await this.repo.get(id);
    if (row === undefined) throw new CustosError('not_found', `no approval ${id}`);
    if (!(await this.repo.close(id, 'cancelled', now, reason)))
      throw new CustosError('approval_closed', `approval ${id} is ${row.status}, not pending`);
    await this.recordCancel(row, now, `${voterOf(approver)} (${approver.id})`);
    this.notify(id);
    return this.view((await this.repo.get(id)) ?? row, await this.repo.votes([id]));
  }

  /**
   * A containment (kill or quarantine) ends what was asked or granted for what it covers:
   * its pending approvals are cancelled (a held call is answered at once) and its grants
   * revoked, each recorded in the audit log. Approved but unused approvals need nothing:
   * the contain stage refuses their retry, and they expire.
   */
  async cancelContained(
    containment: ContainedScope & { readonly id: string; readonly reason: string; readonly actor: string },
  ): Promise<{ cancelled: string[]; revokedGrants: string[] }> {
    const now = this.deps.clock.now();
    const reason = `contained: ${containment.reason} (containment ${containment.id})`;
    const cancelled: string[] = [];
    for (const row of await this.repo.pendingIn(containment)) {
      if (!(await this.repo.close(row.id, 'cancelled', now, reason))) continue;
      cancelled.push(row.id);
      this.notify(row.id);
      await this.recordCancel(
        row,
        now,
        `containment ${containment.id} (${containment.scope} ${containment.target}) of ${containment.actor}`,
      );
    }
    const revokedGrants: string[] = [];
    for (const grant of await this.repo.grantsIn(containment, now)) {
      if (!(await this.repo.revokeGrant(grant.id, now))) continue;
      revokedGrants.push(grant.id);
      await this.recordGrantRevoke(
        grant,
        now,
        `containment ${containment.id} (${containment.scope} ${containment.target}) of ${containment.actor}`,
      );
    }
    return { cancelled, revokedGrants };
  }

  /** Approvals, newest first, each with the agent's recent activity (10 events; `show` gives 20). */
  async list(filter: ApprovalFilter = {}): Promise<Approval[]> {
    await this.repo.expire(this.deps.clock.now());
    const rows = await this.repo.list({ ...filter, limit: Math.min(filter.limit ?? 50, 500) });
    const votes = await this.repo.votes(rows.map((r) => r.id));
    // One query per distinct agent and task, not per approval.
    const activity = new Map<string, Promise<AuditEvent[]>>();
    const recentOf = (row: ApprovalTable) => {
      const key = `${row.agent_id}\u0000${row.task_id ?? ''}`;
      let events = activity.get(key);
      if (events === undefined) {
        events = this.recentActivity(row, 10);
        activity.set(key, events);
      }
      return events;
    };
    return Promise.all(
      rows.map(async (row) => ({
        ...this.view(
          row,
          votes.filter((v) => v.approval_id === row.id),
        ),
        recentActivity: await recentOf(row),
      })),
    );
  }

  /** One approval with the agent's recent activity (in the task, when the call had one). */
  async show(id: string): Promise<Approval> {
    await this.repo.expire(this.deps.clock.now(), id);
    const row = await this.repo.get(id);
    if (row === undefined) throw new CustosError('not_found', `no approval ${id}`);
    return {
      ...this.view(row, await this.repo.votes([id])),
      recentActivity: await this.recentActivity(row, 20),
    };
  }

  private recentActivity(row: ApprovalTable, limit: number): Promise<AuditEvent[]> {
    return listEvents(this.deps.store, {
      agentId: row.agent_id,
      ...(row.task_id === null ? {} : { taskId: row.task_id }),
      limit,
    });
  }

  /** Grants, newest first (`active`: only those in force now). */
  async grants(
    filter: { agentId?: string | undefined; active?: boolean; limit?: number } = {},
  ): Promise<Grant[]> {
    const rows = await this.repo.grants({
      agentId: filter.agentId,
      activeAt: filter.active ? this.deps.clock.now() : undefined,
      limit: Math.min(filter.limit ?? 50, 500),
    });
    return rows.map(grantView);
  }

  /** End a grant before its time; recorded in the audit log. */
  async revokeGrant(approver: Approver, id: string): Promise<Grant> {
    const now = this.deps.clock.now();
    const row = await this.repo.grant(id);
    if (row === undefined) throw new CustosError('not_found', `no grant ${id}`);
    if (!(await this.repo.revokeGrant(id, now)))
      throw new CustosError('conflict', `grant ${id} is no longer in force`);
    await this.recordGrantRevoke(row, now, `${voterOf(approver)} (${approver.id})`);
    return grantView((await this.repo.grant(id)) ?? row);
  }

  /** An approvals/cancel event, linked to the approval and the exact call it was for. */
  private recordCancel(row: ApprovalTable, now: number, by: string): Promise<unknown> {
    return this.deps.audit.record({
      time: now,
      agentId: row.agent_id,
      owner: row.owner,
      taskId: row.task_id,
      method: 'approvals/cancel',
      server: row.server,
      target: row.tool,
      argsHash: row.call_hash,
      effect: 'deny',
      policyIds: JSON.parse(row.policy_ids) as string[],
      reasons: [`approval ${row.id}`, `cancelled by ${by}`, `call ${row.call_hash}`],
      outcome: 'executed',
      errorCode: null,
      latencyUs: 0,
      traceId: null,
      approvalId: row.id,
    });
  }

  /** An approvals/revoke-grant event, linked to the approval the grant came from. */
  private recordGrantRevoke(grant: ApprovalGrantTable, now: number, by: string): Promise<unknown> {
    return this.deps.audit.record({
      time: now,
      agentId: grant.agent_id,
      owner: null,
      taskId: grant.task_id,
      method: 'approvals/revoke-grant',
      server: grant.server,
      target: grant.tool,
      argsHash: null,
      effect: 'deny',
      policyIds: [],
      reasons: [`grant ${grant.id}`, `approval ${grant.approval_id}`, `revoked by ${by}`],
      outcome: 'executed',
      errorCode: null,
      latencyUs: 0,
      traceId: null,
      approvalId: grant.approval_id,
    });
  }

  /** Per approver: votes per hour over the last `hours` hours, and the median time to decide. */
  async stats(hours = 24): Promise<ApproverStats[]> {
    const now = this.deps.clock.now();
    const since = Math.floor((now - hours * 3_600_000) / 3_600_000) * 3_600_000;
    const rows = await this.repo.votesSince(since);
    const byVoter = new Map<string, { hours: Map<number, number>; waits: number[] }>();
    for (const r of rows) {
      let entry = byVoter.get(r.voter);
      if (entry === undefined) {
        entry = { hours: new Map(), waits: [] };
        byVoter.set(r.voter, entry);
      }
      const hour = Math.floor(Number(r.at) / 3_600_000) * 3_600_000;
      entry.hours.set(hour, (entry.hours.get(hour) ?? 0) + 1);
      entry.waits.push((Number(r.at) - Number(r.created_at)) / 1000);
    }
    return [...byVoter.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([approver, { hours: perHour, waits }]) => ({
        approver,
        perHour: [...perHour.entries()]
          .sort(([a], [b]) => a - b)
          .map(([hour, count]) => ({ hour: new Date(hour).toISOString(), count })),
        medianSeconds: median(waits),
      }));
  }

  /** Check a webhook link and show what it would decide (the GET confirmation page). */
  async inspectLink(token: string): Promise<{ claim: LinkClaim; approval: Approval }> {
    const claim = await this.checkLink(token);
    return { claim, approval: await this.show(claim.approvalId) };
  }

  /** Decide through a webhook link: the link is used up first, so it works at most once. */
  async decideByLink(token: string): Promise<{ claim: LinkClaim; approval: Approval }> {
    const claim = await this.checkLink(token);
    if (!(await this.repo.spendLink(claim.nonce, this.deps.clock.now())))
      throw new CustosError('approval_link_invalid', 'this link has been used or has expired');
    const approver: Approver = {
      id: `link:${claim.approver}`,
      kind: 'user',
      name: claim.approver,
      groups: new Set(),
    };
    const approval = await this.decide(approver, claim.approvalId, {
      decision: claim.decision,
      reason: `${claim.decision === 'approve' ? 'approved' : 'denied'} from the webhook link`,
      channel: 'webhook',
    });
    return { claim, approval };
  }

  private async checkLink(token: string): Promise<LinkClaim> {
    const parsed = this.deps.links?.parse(token);
    const stored = parsed === undefined ? undefined : await this.repo.link(parsed.nonce);
    if (parsed === undefined || stored === undefined)
      throw new CustosError('approval_link_invalid', 'this link is not valid');
    const claim: LinkClaim = {
      nonce: stored.nonce,
      approvalId: stored.approval_id,
      approver: stored.approver,
      decision: stored.decision,
      expiresAt: Number(stored.expires_at),
    };
    if (!this.deps.links?.check(claim, parsed.signature))
      throw new CustosError('approval_link_invalid', 'this link is not valid');
    if (stored.used_at !== null)
      throw new CustosError('approval_link_invalid', 'this link has already been used');
    if (claim.expiresAt <= this.deps.clock.now())
      throw new CustosError('approval_link_invalid', 'this link has expired');
    return claim;
  }

  /** The tier to ask: the strictest (largest quorum) of those named, ties by name; undefined if any is unknown. */
  private chooseTier(tiers: readonly string[]): { name: string; tier: ApprovalTierConfig } | undefined {
    let chosen: { name: string; tier: ApprovalTierConfig } | undefined;
    for (const name of [...new Set(tiers)].sort()) {
      const tier = this.deps.config.tiers[name];
      if (tier === undefined) return undefined;
      if (chosen === undefined || tier.quorum > chosen.tier.quorum) chosen = { name, tier };
    }
    return chosen;
  }

  private checkEligible(approver: Approver, row: ApprovalTable, tier: ApprovalTierConfig): void {
    const voter = voterOf(approver);
    if (!tier.ownerMayApprove && voter === row.owner.toLowerCase()) {
      throw new CustosError(
        'approval_ineligible',
        `separation of duties: ${voter} owns agent ${row.agent_name} and may not approve its calls`,
      );
    }
    if (tier.approvers !== undefined) {
      const listed = tier.approvers.some((a) =>
        a.startsWith('group:') ? approver.groups.has(a.slice('group:'.length)) : a.toLowerCase() === voter,
      );
      if (!listed)
        throw new CustosError('approval_ineligible', `${voter} is not an approver of tier ${row.tier}`);
    }
  }

  /** An approved, unused approval of exactly this call (consumed now), else a grant covering it. */
  private async usable(
    call: ApprovalCall,
    callHash: string,
    tier: string,
  ): Promise<ApprovalGate | undefined> {
    const now = this.deps.clock.now();
    // The approval of this very call first, so it is used up and a revoked grant leaves nothing behind.
    for (const approved of await this.repo.byCall(callHash, tier, 'approved', now)) {
      if (await this.repo.consume(approved.id, now)) return { kind: 'proceed', approvalId: approved.id };
    }
    const grants = await this.repo.activeGrants(
      call.agent.id,
      call.task?.id ?? null,
      call.server,
      call.tool,
      tier,
      now,
    );
    for (const grant of grants) {
      let pattern = this.patterns.get(grant.id);
      if (!this.patterns.has(grant.id)) {
        pattern =
          grant.arguments_pattern === null
            ? undefined
            : compilePattern(JSON.parse(grant.arguments_pattern) as Record<string, string>);
        this.patterns.set(grant.id, pattern);
      }
      if (argumentsMatch(JSON.parse(grant.arguments), call.arguments ?? null, pattern))
        return { kind: 'proceed', approvalId: grant.approval_id, grantId: grant.id };
    }
    return undefined;
  }

  /** The open request for this exact call, or a new one (announced on the tier's channels). */
  private async pendingFor(
    call: ApprovalCall,
    callHash: string,
    tierName: string,
    tier: ApprovalTierConfig,
  ): Promise<ApprovalTable> {
    const now = this.deps.clock.now();
    const [open] = await this.repo.byCall(callHash, tierName, 'pending', now);
    if (open !== undefined) return open;
    const row: ApprovalTable = {
      id: this.deps.ids.next('apr'),
      status: 'pending',
      tier: tierName,
      call_hash: callHash,
      agent_id: call.agent.id,
      agent_name: call.agent.name,
      owner: call.agent.owner,
      task_id: call.task?.id ?? null,
      task_purpose: call.task?.purpose ?? null,
      server: call.server,
      tool: call.tool,
      arguments: canonicalJson(call.arguments ?? null),
      reasoning: call.reasoning === undefined ? null : JSON.stringify(call.reasoning),
      policy_ids: JSON.stringify(call.policyIds),
      quorum: tier.quorum,
      created_at: now,
      expires_at: now + tier.ttlSeconds * 1000,
      decided_at: null,
      reason: null,
      consumed_at: null,
    };
    await this.repo.insert(row);
    if (tier.channels.includes('webhook') && this.deps.webhook !== undefined) {
      const view = this.view(row, []);
      const links = this.deps.links;
      void this.deps.webhook.announce(view, tier, links, (rows) => this.repo.insertLinks(rows));
    }
    return row;
  }

  /** Wait for the approval to leave pending, up to the hold bound; undefined when it did not. */
  private async hold(
    id: string,
    holdEnd: number,
    signal: AbortSignal | undefined,
  ): Promise<ApprovalTable | undefined> {
    for (;;) {
      const row = await this.repo.get(id);
      if (row === undefined) return undefined;
      const now = this.deps.clock.now();
      if (row.status === 'pending' || row.status === 'approved') {
        if (row.expires_at <= now) {
          await this.repo.expire(now, id);
          return { ...row, status: 'expired' };
        }
      }
      if (row.status !== 'pending') return row;
      const remaining = holdEnd - performance.now();
      if (remaining <= 0 || signal?.aborted) return undefined;
      // Decisions in this process wake the call at once; the poll catches other processes.
      await this.waitFor(id, Math.min(remaining, pollMs), signal);
      // An abort (the client left, or a containment) ends the hold whatever the row says by now.
      if (signal?.aborted) return undefined;
    }
  }

  private waitFor(id: string, ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      let waiters = this.waiters.get(id);
      if (waiters === undefined) {
        waiters = new Set();
        this.waiters.set(id, waiters);
      }
      const set = waiters;
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        set.delete(done);
        if (set.size === 0 && this.waiters.get(id) === set) this.waiters.delete(id);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
      set.add(done);
    });
  }

  private notify(id: string): void {
    for (const wake of [...(this.waiters.get(id) ?? [])]) wake();
  }

  private pendingAnswer(row: ApprovalTable): ApprovalGate {
    const remaining = Math.max(0, Math.ceil((row.expires_at - this.deps.clock.now()) / 1000));
    return {
      kind: 'stop',
      code: 'approval_pending',
      message:
        `this call needs human approval (tier ${row.tier}); request ${row.id} is pending. ` +
        `Retry the identical call in ${retryAfterSeconds} seconds or later; the request expires in ${remaining} seconds`,
      approval: {
        id: row.id,
        status: 'pending',
        tier: row.tier,
        callHash: row.call_hash,
        retryAfterSeconds,
        expiresAt: new Date(row.expires_at).toISOString(),
      },
    };
  }

  private view(row: ApprovalTable, votes: readonly ApprovalVoteTable[]): Approval {
    return {
      id: row.id,
      status: row.status,
      tier: row.tier,
      callHash: row.call_hash,
      agent: { id: row.agent_id, name: row.agent_name, owner: row.owner },
      task: row.task_id === null ? null : { id: row.task_id, purpose: row.task_purpose ?? '' },
      server: row.server,
      tool: row.tool,
      arguments: JSON.parse(row.arguments),
      reasoning: row.reasoning === null ? null : JSON.parse(row.reasoning),
      policyIds: JSON.parse(row.policy_ids) as string[],
      createdAt: Number(row.created_at),
      expiresAt: Number(row.expires_at),
      quorum: {
        required: row.quorum,
        votes: votes.map((v) => ({
          by: v.voter,
          at: Number(v.at),
          decision: v.decision,
          reason: v.reason,
          channel: v.channel,
        })),
      },
      decidedAt: row.decided_at === null ? null : Number(row.decided_at),
      reason: row.reason,
    };
  }
}

function grantView(row: ApprovalGrantTable): Grant {
  return {
    id: row.id,
    approvalId: row.approval_id,
    agentId: row.agent_id,
    taskId: row.task_id,
    server: row.server,
    tool: row.tool,
    arguments: JSON.parse(row.arguments),
    argumentsPattern: row.arguments_pattern === null ? null : JSON.parse(row.arguments_pattern),
    grantedBy: row.granted_by,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const value =
    sorted.length % 2 === 1
      ? (sorted[mid] as number)
      : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return Math.round(value * 1000) / 1000;
}
