import type { Store } from '../../store/index.js';
import type { CallContext, Verdict } from '../context.js';
import { proceed, stop } from '../context.js';

/** Error codes of calls that stopped before or at the meter, so used none of a budget. */
const notMetered = ['budget_exhausted', 'unknown_tool', 'unknown_prompt', 'unknown_resource'];

/**
 * Call budgets of task tokens. A budget of N lets N calls past this stage; the count
 * starts from the audit log the first time this process sees the task, so a restart
 * does not refill a budget.
 */
export class TaskBudgets {
  private readonly used = new Map<string, number>();
  private readonly loading = new Map<string, Promise<number>>();

  constructor(private readonly store: Store) {}

  /** Count one call against the task; false when the budget is spent. */
  async take(taskId: string, budget: number): Promise<boolean> {
    let used = this.used.get(taskId);
    if (used === undefined) {
      used = await this.load(taskId);
    }
    const current = this.used.get(taskId) ?? used;
    if (current >= budget) return false;
    this.used.set(taskId, current + 1);
    return true;
  }

  private load(taskId: string): Promise<number> {
    let pending = this.loading.get(taskId);
    if (pending === undefined) {
      pending = this.store.db
        .selectFrom('audit_events')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('task_id', '=', taskId)
        // Count what passed this stage before: calls refused earlier (unknown target) or here never did.
        .where((eb) => eb.or([eb('error_code', 'is', null), eb('error_code', 'not in', notMetered)]))
        .where('method', 'in', ['tools/call', 'resources/read', 'prompts/get'])
        .executeTakeFirst()
        .then((row) => {
          const n = Number(row?.n ?? 0);
          if (!this.used.has(taskId)) this.used.set(taskId, n);
          this.loading.delete(taskId);
          return n;
        });
      this.loading.set(taskId, pending);
    }
    return pending;
  }
}

/** Rate and budget limits. Today: the task's call budget. */
export function meter(budgets: TaskBudgets) {
  return async function meterStage(ctx: CallContext): Promise<Verdict> {
    const task = ctx.principal.task;
    if (task === null || task.budget === null || ctx.method === 'completion/complete') return proceed;
    if (await budgets.take(task.id, task.budget)) return proceed;
    return stop('budget_exhausted', `task ${task.id} has used its budget of ${task.budget} calls`, [
      `task budget ${task.budget}`,
    ]);
  };
}
