import type { AuditEvent, AuditRecorder } from '../../audit/index.js';
import { isCustosError } from '../../core/errors.js';
import type { CallContext, CallOutcome } from '../context.js';
import { UpstreamRpcError } from '../upstream/types.js';

/** Append the call's one audit event; resolves when it is durable. */
export function record(audit: AuditRecorder) {
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
      arguments: ctx.arguments,
      ...(ctx.reasoning === undefined ? {} : { reasoning: ctx.reasoning }),
    });
  };
}

function failureCode(error: unknown, signal: AbortSignal | undefined): string {
  // A call Custos cancelled in flight (containment) says so, whatever the upstream layer made of it.
  if (signal?.aborted && isCustosError(signal.reason)) return signal.reason.code;
  if (error instanceof UpstreamRpcError) return `upstream_rpc_${error.rpcCode}`;
  return isCustosError(error) ? error.code : 'internal';
}
