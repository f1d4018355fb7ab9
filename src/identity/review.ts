import { canonicalHash } from '../core/canonical.js';
import type { Clock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import type { IdGenerator } from '../core/ids.js';
import type { AccessReviewTable, Store } from '../store/index.js';
import type { Agent, AgentService } from './agents.js';
import type { LifecycleAudit } from './lifecycle.js';

/**
 * How the policy in force treats one tool for one agent: `allowed` (a call with no arguments
 * is allowed now), `approval` (allowed once a person approves; `tier` names who), or
 * `conditional` (some arguments or times are allowed, others not). Tools no call could reach
 * are not listed.
 */
export interface ToolAccess {
  readonly tool: string;
  readonly access: 'allowed' | 'approval' | 'conditional';
  readonly tier?: string;
}

export interface ServerReach {
  readonly server: string;
  /** False when the upstream's tool list is not known (it did not start or answer). */
  readonly catalogKnown: boolean;
  readonly tools: readonly ToolAccess[];
}

/** A credential binding the vault injects for the agent: the secret's name, never its value. */
export interface BindingReach {
  readonly secret: string;
  /** 'server' (an MCP server) or 'api' (an HTTP API behind /proxy). */
  readonly targetKind: string;
  readonly target: string;
  /** The agent's own binding, or one shared by every agent. */
  readonly scope: 'agent' | 'shared';
}

export interface Attestation {
  readonly id: string;
  readonly reviewer: string;
  readonly actor: string;
  readonly note: string | null;
  readonly at: number;
  readonly reachDigest: string;
}

/** One agent's reach for an access review, with its last attestation. */
export interface AgentReach {
  readonly agent: Pick<Agent, 'id' | 'name' | 'owner' | 'purpose' | 'status' | 'expiresAt'>;
  readonly servers: readonly ServerReach[];
  /** Null when no vault is wired (the capability is not present). */
  readonly bindings: readonly BindingReach[] | null;
  /** SHA-256 of the RFC 8785 JSON of {servers, bindings}: equal digests mean equal reach. */
  readonly digest: string;
  readonly lastAttestation: Attestation | null;
  /** True when the reach differs from what was last attested (or nothing was). */
  readonly changedSinceAttestation: boolean;
}

/** What the review reads: the catalog, the policy and the vault, wired by the composition root. */
export interface ReachSources {
  /** Every upstream server with its tools, or null tools when the catalog is not known. */
  servers(): ReadonlyArray<{
    name: string;
    tools: ReadonlyArray<{ name: string; annotations?: Record<string, unknown> }> | null;
  }>;
  /** How the policy in force treats the tool for the agent; undefined when no call could reach it. */
  access(
    agent: Agent,
    server: string,
    tool: { name: string; annotations?: Record<string, unknown> },
  ): Omit<ToolAccess, 'tool'> | undefined;
  /**
   * The bindings injected for the agent: its own, and shared ones of the servers in its reach
   * (`servers`). Absent when there is no vault.
   */
  bindings?(agentId: string, servers: readonly string[]): Promise<readonly BindingReach[]>;
}

export interface AccessReviewOptions {
  store: Store;
  clock: Clock;
  ids: IdGenerator;
  agents: AgentService;
  sources: ReachSources;
  /** Records each attestation with its audit event in one transaction. */
  audit: LifecycleAudit;
}

function toAttestation(row: AccessReviewTable): Attestation {
  return {
    id: row.id,
    reviewer: row.reviewer,
    actor: row.actor,
    note: row.note,
    at: Number(row.created_at),
    reachDigest: row.reach_digest,
  };
}

/**
 * Access reviews: each agent's reach (servers, tools the policy lets it call over the live
 * upstream catalog, vault bindings), and a reviewer's attestation of it, kept in
 * `access_reviews` with the digest of the reach attested and recorded as a `review/attest`
 * audit event in the same transaction.
 */
export class AccessReview {
  constructor(private readonly options: AccessReviewOptions) {}

  /** The reach of every agent not offboarded (of one owner, when given), by name. */
  async list(filter: { owner?: string } = {}): Promise<AgentReach[]> {
    const agents = (
      await this.options.agents.list(filter.owner === undefined ? {} : { owner: filter.owner })
    ).filter((a) => a.status !== 'offboarded');
    const last = await this.lastAttestations(agents.map((a) => a.id));
    return Promise.all(agents.map((a) => this.reachOf(a, last.get(a.id) ?? null)));
  }

  /** One agent's reach. */
  async reach(ref: string): Promise<AgentReach> {
    const agent = await this.options.agents.require(ref);
    const last = await this.lastAttestations([agent.id]);
    return this.reachOf(agent, last.get(agent.id) ?? null);
  }

  /**
   * Record that `reviewer` reviewed each agent's reach as it is now. All agents are attested
   * in one transaction (all or none), each with a `review/attest` event.
   */
  async attest(
    refs: readonly string[],
    input: { reviewer: string; actor: string; note?: string | null },
  ): Promise<AgentReach[]> {
    if (refs.length === 0) throw new CustosError('bad_request', 'name at least one agent to attest');
    if (!/^[^@\s]+@[^@\s]+$/.test(input.reviewer)) {
      throw new CustosError('bad_request', "reviewer must be the reviewer's email address");
    }
    const note = input.note?.trim() ? input.note.trim().slice(0, 2000) : null;
    const reaches: AgentReach[] = [];
    for (const ref of refs) {
      const agent = await this.options.agents.require(ref);
      if (agent.status === 'offboarded') {
        throw new CustosError(
          'agent_offboarded',
          `agent "${agent.name}" is offboarded; there is nothing to review`,
        );
      }
      reaches.push(await this.reachOf(agent, null));
    }
    const now = this.options.clock.now();
    const rows: AccessReviewTable[] = reaches.map((r) => ({
      id: this.options.ids.next('rev'),
      agent_id: r.agent.id,
      reviewer: input.reviewer.toLowerCase(),
      actor: input.actor,
      note,
      reach_digest: r.digest,
      reach: JSON.stringify({ servers: r.servers, bindings: r.bindings }),
      created_at: now,
    }));
    await this.options.audit.transaction(async (trx, audit) => {
      for (const [i, row] of rows.entries()) {
        const reach = reaches[i]!;
        await trx.insertInto('access_reviews').values(row).execute();
        audit.append({
          time: now,
          agentId: row.agent_id,
          owner: reach.agent.owner,
          taskId: null,
          method: 'review/attest',
          server: null,
          target: reach.agent.name,
          argsHash: row.reach_digest,
          effect: 'allow',
          policyIds: [],
          reasons: [
            `reach attested by ${row.reviewer} (recorded by ${row.actor})`,
            `reach ${row.reach_digest}`,
          ],
          outcome: 'executed',
          errorCode: null,
          latencyUs: 0,
          traceId: null,
          arguments: {
            attestation: row.id,
            reviewer: row.reviewer,
            by: row.actor,
            note,
            servers: reach.servers.map((s) => ({ server: s.server, tools: s.tools.map((t) => t.tool) })),
            bindings: reach.bindings?.map((b) => `${b.secret} -> ${b.targetKind}:${b.target}`) ?? null,
          },
        });
      }
    });
    return reaches.map((r, i) => ({
      ...r,
      lastAttestation: toAttestation(rows[i]!),
      changedSinceAttestation: false,
    }));
  }

  /** Attestations of one agent, newest first. */
  async history(ref: string): Promise<Attestation[]> {
    const agent = await this.options.agents.require(ref);
    const rows = await this.options.store.db
      .selectFrom('access_reviews')
      .selectAll()
      .where('agent_id', '=', agent.id)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
    return rows.map(toAttestation);
  }

  private async lastAttestations(agentIds: readonly string[]): Promise<Map<string, Attestation>> {
    const last = new Map<string, Attestation>();
    if (agentIds.length === 0) return last;
    const rows = await this.options.store.db
      .selectFrom('access_reviews')
      .selectAll()
      .where('agent_id', 'in', agentIds)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    for (const row of rows) last.set(row.agent_id, toAttestation(row));
    return last;
  }

  private async reachOf(agent: Agent, lastAttestation: Attestation | null): Promise<AgentReach> {
    const { sources } = this.options;
    const servers: ServerReach[] = [];
    for (const server of sources.servers()) {
      if (server.tools === null) {
        servers.push({ server: server.name, catalogKnown: false, tools: [] });
        continue;
      }
      const tools: ToolAccess[] = [];
      for (const tool of server.tools) {
        const access = sources.access(agent, server.name, tool);
        if (access !== undefined) tools.push({ tool: tool.name, ...access });
      }
      tools.sort((a, b) => (a.tool < b.tool ? -1 : a.tool > b.tool ? 1 : 0));
      if (tools.length > 0) servers.push({ server: server.name, catalogKnown: true, tools });
    }
    servers.sort((a, b) => (a.server < b.server ? -1 : a.server > b.server ? 1 : 0));
    const reached = servers.filter((s) => s.tools.length > 0).map((s) => s.server);
    const bindings = sources.bindings === undefined ? null : [...(await sources.bindings(agent.id, reached))];
    const digest = canonicalHash({ servers, bindings });
    return {
      agent: {
        id: agent.id,
        name: agent.name,
        owner: agent.owner,
        purpose: agent.purpose,
        status: agent.status,
        expiresAt: agent.expiresAt,
      },
      servers,
      bindings,
      digest,
      lastAttestation,
      changedSinceAttestation: lastAttestation === null || lastAttestation.reachDigest !== digest,
    };
  }
}
