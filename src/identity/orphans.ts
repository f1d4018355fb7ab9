import type { Clock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import type { Store } from '../store/index.js';
import { dayMs } from './lifecycle.js';

/** Why an agent is listed as an orphan. */
export type OrphanReason = 'owner_unknown' | 'owner_disabled' | 'expired' | 'idle';

export interface Orphan {
  readonly id: string;
  readonly name: string;
  readonly owner: string;
  readonly status: string;
  readonly expiresAt: number | null;
  /** Time of the agent's last own audit event (lifecycle events excluded), or null if none. */
  readonly lastActivity: number | null;
  readonly reasons: readonly OrphanReason[];
}

/**
 * Agents nobody answers for or uses: the owner is not a user of this Custos or is disabled,
 * the agent is past its expiry (or suspended for it), or it has done nothing for `idleDays`
 * (no audit event of its own since, or since it was created). Offboarded agents are never
 * listed. Activity is the agent's own calls: `agents/*` lifecycle events, which people cause,
 * do not count.
 */
export async function findOrphans(
  store: Store,
  clock: Clock,
  options: { idleDays: number },
): Promise<Orphan[]> {
  if (!Number.isInteger(options.idleDays) || options.idleDays < 1) {
    throw new CustosError('bad_request', 'idle days must be a positive whole number');
  }
  const now = clock.now();
  const [agents, users, activity] = await Promise.all([
    store.db
      .selectFrom('agents')
      .select(['id', 'name', 'owner', 'status', 'status_reason', 'expires_at', 'created_at'])
      .where('status', '!=', 'offboarded')
      .orderBy('name')
      .execute(),
    store.db.selectFrom('users').select(['email', 'status']).execute(),
    store.db
      .selectFrom('audit_events')
      .select(['agent_id', (eb) => eb.fn.max('time').as('last')])
      .where('agent_id', 'is not', null)
      .where('method', 'not like', 'agents/%')
      .groupBy('agent_id')
      .execute(),
  ]);
  const userStatus = new Map(users.map((u) => [u.email.toLowerCase(), u.status]));
  const lastOf = new Map(activity.map((a) => [a.agent_id, a.last === null ? null : Number(a.last)]));
  const idleSince = now - options.idleDays * dayMs;
  const orphans: Orphan[] = [];
  for (const a of agents) {
    const reasons: OrphanReason[] = [];
    const status = userStatus.get(a.owner.toLowerCase());
    if (status === undefined) reasons.push('owner_unknown');
    else if (status !== 'active') reasons.push('owner_disabled');
    const expiresAt = a.expires_at === null ? null : Number(a.expires_at);
    if (
      (expiresAt !== null && expiresAt <= now) ||
      (a.status === 'suspended' && a.status_reason === 'expired')
    ) {
      reasons.push('expired');
    }
    const lastActivity = lastOf.get(a.id) ?? null;
    if ((lastActivity ?? Number(a.created_at)) <= idleSince) reasons.push('idle');
    if (reasons.length > 0) {
      orphans.push({
        id: a.id,
        name: a.name,
        owner: a.owner,
        status: a.status,
        expiresAt,
        lastActivity,
        reasons,
      });
    }
  }
  return orphans;
}
