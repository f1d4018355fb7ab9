import type { AgentTable, Store } from '../store/index.js';
import type { AgentStatus } from './agents.js';

/** What the hot path needs to know about an agent, held in memory. */
export interface AgentView {
  readonly id: string;
  readonly name: string;
  readonly owner: string;
  readonly purpose: string;
  readonly environment: string;
  readonly status: AgentStatus;
  readonly epoch: number;
  readonly expiresAt: number | null;
  readonly updatedAt: number;
  /** Its access tokens must be DPoP-bound (RFC 9449): bearer tokens are refused. */
  readonly requireDpop: boolean;
}

/** Active means status active and not past its expiry time. */
export function isAgentViewActive(view: AgentView, now: number): boolean {
  return view.status === 'active' && (view.expiresAt === null || view.expiresAt > now);
}

const columns = [
  'id',
  'name',
  'owner',
  'purpose',
  'environment',
  'status',
  'epoch',
  'expires_at',
  'updated_at',
  'require_dpop',
] as const;

type Row = Pick<AgentTable, (typeof columns)[number]>;

/** The directory's view of an agents row. */
export function agentViewFromRow(row: Row): AgentView {
  return Object.freeze({
    id: row.id,
    name: row.name,
    owner: row.owner,
    purpose: row.purpose,
    environment: row.environment,
    status: row.status,
    epoch: Number(row.epoch),
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
    updatedAt: Number(row.updated_at),
    requireDpop: Number(row.require_dpop) === 1,
  });
}

/** Whether `a` is at least as new as `b`: epochs only grow; updated_at breaks ties. */
function isNewerOrSame(a: AgentView, b: AgentView): boolean {
  return a.epoch > b.epoch || (a.epoch === b.epoch && a.updatedAt >= b.updatedAt);
}

/**
 * An in-memory view of every agent's status and revocation epoch, read on every
 * authenticated call. This process's own writes update it at once (`observe`); writes
 * by other processes (the CLI, other gateway replicas) arrive with `refresh()`, which the
 * server calls periodically and which costs one query.
 */
export class AgentDirectory {
  private agents = new Map<string, AgentView>();

  constructor(private readonly store: Store) {}

  /** Reload every agent in one query and swap the view in atomically. */
  async refresh(): Promise<void> {
    const rows = await this.store.db.selectFrom('agents').select(columns).execute();
    const next = new Map<string, AgentView>();
    for (const row of rows) {
      const fresh = agentViewFromRow(row);
      // A local write that landed while the query ran is newer than what it returned.
      const local = this.agents.get(fresh.id);
      next.set(fresh.id, local !== undefined && !isNewerOrSame(fresh, local) ? local : fresh);
    }
    this.agents = next;
  }

  /** Reload one agent (after a signed token names an agent or epoch this view lacks). */
  async reload(agentId: string): Promise<AgentView | undefined> {
    const row = await this.store.db
      .selectFrom('agents')
      .select(columns)
      .where('id', '=', agentId)
      .executeTakeFirst();
    if (row === undefined) return this.agents.get(agentId);
    this.observe(agentViewFromRow(row));
    return this.agents.get(agentId);
  }

  /** Record an agent's state as written or read by this process; older states never win. */
  observe(view: AgentView): void {
    const current = this.agents.get(view.id);
    if (current === undefined || isNewerOrSame(view, current)) this.agents.set(view.id, view);
  }

  get(agentId: string): AgentView | undefined {
    return this.agents.get(agentId);
  }

  get size(): number {
    return this.agents.size;
  }
}
