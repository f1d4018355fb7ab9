import type { CallContext, Verdict } from '../context.js';
import { proceed } from '../context.js';

/** The call an approval is bound to, as the gateway describes it. */
export interface ApprovalSubject {
  agent: { id: string; name: string; owner: string };
  task: { id: string; purpose: string } | null;
  server: string;
  tool: string;
  arguments: unknown;
  reasoning: unknown;
  policyIds: readonly string[];
}

/** The approvals service as the gateway uses it. */
export interface ApprovalPort {
  /** Approval tiers the determining policies ask for; empty when none does. */
  tiersFor(policyIds: readonly string[]): readonly string[];
  gate(
    call: ApprovalSubject,
    tiers: readonly string[],
    hold: {
      signal?: AbortSignal | undefined;
      onProgress?: ((p: { progress: number; total?: number; message?: string }) => void) | undefined;
    },
  ): Promise<
    | { kind: 'proceed'; approvalId: string; grantId?: string }
    | { kind: 'stop'; code: ApprovalStopCode; message: string; approval: Readonly<Record<string, unknown>> }
  >;
}

/** Why a call that needs approval does not run now. */
export type ApprovalStopCode =
  | 'approval_pending'
  | 'approval_denied'
  | 'approval_expired'
  | 'approval_cancelled'
  | 'approval_misconfigured'
  /** The containment of the agent, task, server or tool ended the hold. */
  | 'contained';

/**
 * For calls a policy allowed only with human approval: use an approval (or grant) of exactly
 * this call, or hold the call for a decision, or answer with what the agent can do next.
 */
export function approve(approvals: ApprovalPort) {
  return function approveStage(ctx: CallContext): Verdict | Promise<Verdict> {
    const decision = ctx.decision;
    if (decision === undefined || decision.effect !== 'allow') return proceed;
    const tiers = approvals.tiersFor(decision.policyIds);
    if (tiers.length === 0) return proceed;
    const p = ctx.principal;
    return approvals
      .gate(
        {
          agent: { id: p.agentId, name: p.agentName, owner: p.owner },
          task: p.task === null ? null : { id: p.task.id, purpose: p.task.purpose },
          server: ctx.upstream?.name ?? '',
          tool: ctx.upstreamName ?? ctx.target.name,
          arguments: ctx.arguments ?? null,
          reasoning: ctx.reasoning,
          policyIds: decision.policyIds,
        },
        tiers,
        { signal: ctx.signal, onProgress: ctx.onProgress },
      )
      .then((gate): Verdict => {
        if (gate.kind === 'proceed') {
          ctx.approvalId = gate.approvalId;
          const via = gate.grantId === undefined ? [] : [`grant ${gate.grantId}`];
          ctx.decision = {
            ...decision,
            reasons: [...decision.reasons, `approval ${gate.approvalId}`, ...via],
          };
          return proceed;
        }
        const id = gate.approval.id;
        return {
          stop: true,
          code: gate.code,
          message: gate.message,
          reasons: typeof id === 'string' ? [`approval ${id}`] : [],
          approval: gate.approval,
        };
      });
  };
}
