/**
 * Erasure of audit content (crypto-shredding): deleting an event's plaintext together
 * with its salt leaves its leaf, every proof and every checkpoint valid, while the
 * salted hashes in the leaf can no longer be linked to any guessed plaintext.
 */
import { CustosError } from '../core/errors.js';
import type { Store } from '../store/index.js';

export interface ErasureSelector {
  /** Erase the content of every event of this agent. */
  readonly agentId?: string;
  /**
   * Erase the content of every event about this data subject: events whose owner is the
   * subject, and events whose arguments, reasoning or result mention it (exact,
   * case-sensitive substring, matched in JavaScript so both backends agree).
   */
  readonly subject?: string;
}

const pageSize = 5000;

/** Delete the plaintext and salt of the selected events; returns how many events lost their content. */
export async function eraseContent(store: Store, selector: ErasureSelector): Promise<{ erased: number }> {
  const { agentId, subject } = selector;
  if ((agentId === undefined || agentId === '') && (subject === undefined || subject === '')) {
    throw new CustosError('usage', 'erase-content needs an agent or a subject');
  }
  let erased = 0;
  const count = (result: { numDeletedRows: bigint }[]) =>
    result.reduce((sum, r) => sum + Number(r.numDeletedRows), 0);
  if (agentId !== undefined && agentId !== '') {
    erased += count(
      await store.db
        .deleteFrom('audit_content')
        .where('event_id', 'in', (eb) =>
          eb.selectFrom('audit_events').select('id').where('agent_id', '=', agentId),
        )
        .execute(),
    );
  }
  if (subject !== undefined && subject !== '') {
    erased += count(
      await store.db
        .deleteFrom('audit_content')
        .where('event_id', 'in', (eb) =>
          eb.selectFrom('audit_events').select('id').where('owner', '=', subject),
        )
        .execute(),
    );
    // O(content rows): a full scan, acceptable for a rare, deliberate command.
    for (let after = ''; ; ) {
      const rows = await store.db
        .selectFrom('audit_content')
        .selectAll()
        .where('event_id', '>', after)
        .orderBy('event_id')
        .limit(pageSize)
        .execute();
      if (rows.length === 0) break;
      const ids = rows
        .filter((row) => [row.arguments, row.reasoning, row.result].some((text) => text?.includes(subject)))
        .map((row) => row.event_id);
      if (ids.length > 0)
        erased += count(await store.db.deleteFrom('audit_content').where('event_id', 'in', ids).execute());
      after = rows[rows.length - 1]!.event_id;
    }
  }
  return { erased };
}
