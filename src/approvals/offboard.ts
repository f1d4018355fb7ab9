import type { Transaction } from 'kysely';
import type { Database } from '../store/index.js';

/**
 * The approvals part of offboarding an agent, run inside the offboarding transaction: every
 * pending request (and every approved one not yet used) is cancelled, and every grant still in
 * force is revoked, so nothing an approver decided for the agent outlives it. Registered with
 * the agent service as the offboarding step "approvals" (app.ts and the CLI wire it).
 */
export const approvalsOffboardStep = {
  name: 'approvals',
  async run(
    trx: Transaction<Database>,
    agent: { id: string },
    now: number,
  ): Promise<{ cancelled: string[]; grantsRevoked: number }> {
    const open = await trx
      .selectFrom('approvals')
      .select('id')
      .where('agent_id', '=', agent.id)
      .where('status', 'in', ['pending', 'approved'])
      .orderBy('id')
      .execute();
    if (open.length > 0) {
      await trx
        .updateTable('approvals')
        .set({ status: 'cancelled', decided_at: now, reason: 'agent offboarded' })
        .where('agent_id', '=', agent.id)
        .where('status', 'in', ['pending', 'approved'])
        .execute();
    }
    const grants = await trx
      .updateTable('approval_grants')
      .set({ revoked_at: now })
      .where('agent_id', '=', agent.id)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return { cancelled: open.map((r) => r.id), grantsRevoked: Number(grants.numUpdatedRows) };
  },
} as const;
