import type { Clock } from '../../core/clock.js';
import { taskAllows, taskReachesServer } from '../../identity/index.js';
import type {
  Decision,
  DecisionInput,
  PolicyPrincipal,
  PolicyResource,
  PolicyTask,
} from '../../policy/index.js';
import type { CallContext, Verdict } from '../context.js';
import { policyActionOf, proceed, stop } from '../context.js';

/** The policy engine as the gateway uses it. */
export interface PolicyPort {
  /** Hash of the policy set decide() answers from; the audit record commits to it. */
  readonly policySetHash: string;
  decide(input: DecisionInput): Decision;
  canSee(principal: PolicyPrincipal, task: PolicyTask | undefined, resource: PolicyResource): boolean;
}

export function policyPrincipal(ctx: Pick<CallContext, 'principal'>): PolicyPrincipal {
  const p = ctx.principal;
  return {
    agentId: p.agentId,
    name: p.agentName,
    owner: p.owner,
    environment: p.environment,
    purpose: p.purpose,
  };
}

export function policyTask(ctx: Pick<CallContext, 'principal'>): PolicyTask | undefined {
  const task = ctx.principal.task;
  return task === null ? undefined : { id: task.id, purpose: task.purpose };
}

/**
 * Least privilege in the path: the task token's reach first (it can only narrow), then
 * the Cedar decision. Any evaluation error has already turned the decision into deny.
 */
export function authorize(policy: PolicyPort, clock: Clock) {
  return function authorizeStage(ctx: CallContext): Verdict {
    const server = ctx.upstream?.name;
    const name = ctx.upstreamName;
    if (server === undefined || name === undefined)
      return stop('internal', 'call reached authorize unresolved');
    const task = ctx.principal.task;
    if (task !== null && ctx.target.kind === 'tool' && !taskAllows(task, server, name)) {
      return stop('insufficient_scope', `task ${task.id} does not include ${server}.${name}`, ['task scope']);
    }
    if (task !== null && ctx.target.kind !== 'tool' && !taskReachesServer(task, server)) {
      return stop('insufficient_scope', `task ${task.id} does not include server ${server}`, ['task scope']);
    }
    const resource: PolicyResource = {
      server,
      kind: ctx.target.kind,
      name,
      ...(ctx.tool?.annotations ? { annotations: ctx.tool.annotations } : {}),
    };
    // Read in the same synchronous turn as decide(), so a reload cannot slip between them.
    ctx.policySetHash = policy.policySetHash;
    const decision = policy.decide({
      principal: policyPrincipal(ctx),
      task: policyTask(ctx),
      action: policyActionOf[ctx.method],
      resource,
      arguments: ctx.arguments ?? {},
      time: clock.now(),
    });
    ctx.decision = decision;
    if (decision.effect === 'allow') return proceed;
    const why = decision.errors.length > 0 ? 'a policy failed to evaluate' : 'no policy permits it';
    const message =
      decision.policyIds.length > 0 && decision.errors.length === 0
        ? `denied by policy ${decision.policyIds.join(', ')}`
        : `denied: ${why}`;
    return stop('policy_denied', message, [...decision.policyIds, ...decision.errors]);
  };
}
