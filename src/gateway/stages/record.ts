import type { AuditEvent, AuditRecorder } from '../../audit/index.js';
import { isCustosError } from '../../core/errors.js';
import type { CallContext, CallOutcome } from '../context.js';
import { UpstreamRpcError } from '../upstream/types.js';
import type { PolicyPort } from './authorize.js';

/**
 * Append the call's one audit event; resolves when it is durable. The event commits to the
 * policy set the decision came from or, for a call stopped before authorize, the set in force.
 */
export function record(audit: AuditRecorder, policy: Pick<PolicyPort, 'policySetHash'>) {
  return function recordStage(ctx: CallContext, outcome: CallOutcome): Promise<AuditEvent> {
    const p = ctx.principal;
    const decision = ctx.decision;
    const denied = outcome.kind === 'denied' ? outcome.stop : undefined;
    return audit.record({
      time: ctx.time,
      agentId: p.agentId,
      owner: p.owner,
      taskId: p.task?.id ?? null,
      method: ctx.method,
      server: ctx.upstream?.name ?? null,
      target: ctx.upstreamName ?? ctx.target.name,
      argsHash: ctx.argsHash,
      effect: decision?.effect === 'allow' && denied === undefined ? 'allow' : 'deny',
      policyIds: decision?.policyIds ?? [],
      reasons: denied
        ? [denied.message, ...denied.reasons.filter((r) => !decision?.policyIds.includes(r))]
        : (decision?.reasons ?? []),
      outcome: outcome.kind,
      errorCode: denied?.code ?? (outcome.kind === 'failed' ? failureCode(outcome.error, ctx.signal) : null),
      latencyUs: Number(process.hrtime.bigint() - ctx.started) / 1000,
      traceId: ctx.traceId,
      policySetHash: ctx.policySetHash ?? policy.policySetHash,
      approvalId: ctx.approvalId ?? null,
      ...(ctx.traceparent ? { traceparent: ctx.traceparent } : {}),
      arguments: ctx.arguments,
      ...(ctx.reasoning === undefined ? {} : { reasoning: ctx.reasoning }),
      // The upstream's answer, committed to by a salted hash and kept (erasably) for decision chains.
      ...(outcome.kind === 'executed' ? { result: outcome.result } : {}),
    });
  };
}

function failureCode(error: unknown, signal: AbortSignal | undefined): string {
  // A call Custos cancelled in flight (containment) says so, whatever the upstream layer made of it.
  if (signal?.aborted && isCustosError(signal.reason)) return signal.reason.code;
  if (error instanceof UpstreamRpcError) return `upstream_rpc_${error.rpcCode}`;
  return isCustosError(error) ? error.code : 'internal';
}
