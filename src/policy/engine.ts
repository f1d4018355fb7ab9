import { randomUUID } from 'node:crypto';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { allEntities, annotationsWithDefaults, type EncodedRequest, encodeRequest } from './encode.js';
import { type CompiledPolicy, type CompiledPolicySet, mergeReads, type Reads } from './load.js';
import type {
  Decision,
  DecisionInput,
  PolicyAction,
  PolicyExplanation,
  PolicyPrincipal,
  PolicyResource,
  PolicyTask,
} from './types.js';

type Uid = cedar.TypeAndId;

/** Bounds on the engine's caches; defaults suit thousands of agents and tools. */
export interface EngineLimits {
  /** Applicable-policy subsets cached per (agent, owner, action, resource). */
  readonly subsets: number;
  /** Distinct subsets kept pre-parsed inside Cedar. */
  readonly preparsed: number;
  /** Visibility answers cached. */
  readonly visibility: number;
  /** Decision plans cached per (agent, action, resource, annotations, task presence). */
  readonly plans: number;
}

const defaultLimits: EngineLimits = { subsets: 50_000, preparsed: 4_096, visibility: 20_000, plans: 50_000 };

/** A Map used as a least-recently-used cache. */
class Lru<K, V> {
  private readonly map = new Map<K, V>();
  constructor(
    private readonly max: number,
    private readonly onEvict?: (value: V) => void,
  ) {}
  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }
  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.max) {
      const oldest = this.map.keys().next().value as K;
      const evicted = this.map.get(oldest) as V;
      this.map.delete(oldest);
      this.onEvict?.(evicted);
    }
  }
  values(): IterableIterator<V> {
    return this.map.values();
  }
  clear(): void {
    this.map.clear();
  }
}

/** The policies whose scope matches one (agent, action, resource), with what their conditions read. */
interface Subset {
  readonly signature: string;
  readonly policies: readonly CompiledPolicy[];
  /** Every policy is scope-only, so the outcome is known without evaluating anything. */
  readonly unconditional: boolean;
  readonly hasPermit: boolean;
  readonly reads: Reads;
  /** Id of the pre-parsed Cedar policy set, while it is held. */
  preparsedId: string | undefined;
}

/**
 * How to decide requests for one (agent, action, resource, annotations, task presence): Cedar
 * partial evaluation over the known parts leaves the policies that depend on arguments, time or
 * task (`residual`) and settles the rest once. When nothing is left, the decision is `fixed`.
 */
interface Plan {
  readonly residual: Subset | undefined;
  readonly satisfiedPermits: readonly string[];
  readonly satisfiedForbids: readonly string[];
  readonly fixed: Decision | undefined;
}

function sameUid(a: Uid, b: cedar.EntityUidJson): boolean {
  const other = '__entity' in b ? b.__entity : b;
  return a.type === other.type && a.id === other.id;
}

function inScope(uid: Uid, ancestors: readonly Uid[], entity: cedar.EntityUidJson): boolean {
  return sameUid(uid, entity) || ancestors.some((ancestor) => sameUid(ancestor, entity));
}

function matchesEntity(
  constraint: cedar.PrincipalConstraint | cedar.ResourceConstraint,
  uid: Uid,
  ancestors: readonly Uid[],
): boolean {
  switch (constraint.op) {
    case 'All':
      return true;
    case '==':
      return 'entity' in constraint && sameUid(uid, constraint.entity);
    case 'in':
      return 'entity' in constraint && inScope(uid, ancestors, constraint.entity);
    case 'is':
      if (uid.type !== constraint.entity_type) return false;
      return (
        constraint.in === undefined ||
        ('entity' in constraint.in && inScope(uid, ancestors, constraint.in.entity))
      );
  }
}

function matchesAction(constraint: cedar.ActionConstraint, action: Uid, groups: readonly Uid[]): boolean {
  switch (constraint.op) {
    case 'All':
      return true;
    case '==':
      return 'entity' in constraint && sameUid(action, constraint.entity);
    case 'in': {
      const targets = 'entity' in constraint ? [constraint.entity] : constraint.entities;
      return targets.some((target) => inScope(action, groups, target));
    }
  }
}

function entityKey(entity: cedar.EntityUidJson): string {
  const uid = '__entity' in entity ? entity.__entity : entity;
  return `${uid.type}::${uid.id}`;
}

/**
 * Policies bucketed by the action and principal their scope names, so finding the policies that
 * apply to a request looks at a few buckets instead of every policy. The final check is exact:
 * a policy is applicable iff Cedar would find its scope satisfied for this request.
 */
class ScopeIndex {
  private readonly byAction = new Map<string, Map<string, CompiledPolicy[]>>();

  constructor(policies: readonly CompiledPolicy[]) {
    for (const policy of policies) {
      const { action, principal } = policy.json;
      const actionKeys =
        action.op === 'All'
          ? ['*']
          : action.op === '=='
            ? 'entity' in action
              ? [entityKey(action.entity)]
              : ['*']
            : 'entity' in action
              ? [entityKey(action.entity)]
              : action.entities.map(entityKey);
      const principalKey =
        (principal.op === '==' || principal.op === 'in') && 'entity' in principal
          ? entityKey(principal.entity)
          : '*';
      for (const actionKey of new Set(actionKeys)) {
        let byPrincipal = this.byAction.get(actionKey);
        if (byPrincipal === undefined) {
          byPrincipal = new Map();
          this.byAction.set(actionKey, byPrincipal);
        }
        const bucket = byPrincipal.get(principalKey) ?? [];
        bucket.push(policy);
        byPrincipal.set(principalKey, bucket);
      }
    }
  }

  applicable(request: EncodedRequest, actionGroups: readonly string[]): CompiledPolicy[] {
    const actionUids: Uid[] = [request.action, ...actionGroups.map((id) => ({ type: 'Action', id }))];
    const actionKeys = ['*', ...actionUids.map((uid) => `${uid.type}::${uid.id}`)];
    const principalKeys = [
      '*',
      ...[request.principal, ...request.principalAncestors].map((u) => `${u.type}::${u.id}`),
    ];
    const found = new Map<number, CompiledPolicy>();
    for (const actionKey of actionKeys) {
      const byPrincipal = this.byAction.get(actionKey);
      if (byPrincipal === undefined) continue;
      for (const principalKey of principalKeys) {
        for (const policy of byPrincipal.get(principalKey) ?? []) {
          if (found.has(policy.ordinal)) continue;
          const { principal, action, resource } = policy.json;
          if (
            matchesAction(action, request.action, actionUids.slice(1)) &&
            matchesEntity(principal, request.principal, request.principalAncestors) &&
            matchesEntity(resource, request.resource, request.resourceAncestors)
          ) {
            found.set(policy.ordinal, policy);
          }
        }
      }
    }
    return [...found.values()].sort((a, b) => a.ordinal - b.ordinal);
  }
}

function freezeDecision(decision: Decision): Decision {
  Object.freeze(decision.policyIds);
  Object.freeze(decision.errors);
  Object.freeze(decision.reasons);
  return Object.freeze(decision);
}

function quoted(ids: readonly string[]): string {
  return ids.map((id) => JSON.stringify(id)).join(', ');
}

function describeTarget(request: EncodedRequest): string {
  return `${request.action.id} on ${request.resource.type}::${JSON.stringify(request.resource.id)}`;
}

function defaultDeny(request: EncodedRequest): Decision {
  return freezeDecision({
    effect: 'deny',
    policyIds: [],
    errors: [],
    reasons: [`no policy permits ${describeTarget(request)} (deny by default)`],
  });
}

function denial(forbids: readonly string[]): Decision {
  return freezeDecision({
    effect: 'deny',
    policyIds: [...forbids],
    errors: [],
    reasons: [`forbidden by ${quoted(forbids)}`],
  });
}

function permission(permits: readonly string[]): Decision {
  return freezeDecision({
    effect: 'allow',
    policyIds: [...permits],
    errors: [],
    reasons: [`permitted by ${quoted(permits)}`],
  });
}

function projectEntity(entity: cedar.EntityJson, attributes: ReadonlySet<string> | 'all'): cedar.EntityJson {
  if (attributes === 'all') return entity;
  const attrs: Record<string, cedar.CedarValueJson> = {};
  for (const name of attributes) {
    const value = entity.attrs[name];
    if (value !== undefined) attrs[name] = value;
  }
  return { uid: entity.uid, attrs, parents: entity.parents };
}

/**
 * Decides requests against one compiled policy set. Each request is matched against the scope
 * index; only the applicable policies, pre-parsed once per distinct subset, are evaluated by
 * Cedar, with the request encoded only as far as those policies read it. Any evaluation error
 * denies. Synchronous throughout, so a snapshot swap can never interleave with a decision.
 */
export class PolicyEngine {
  private readonly index: ScopeIndex;
  private readonly namespace = `custos:${randomUUID()}`;
  private nextSetId = 0;
  private readonly subsets: Lru<string, Subset>;
  private readonly bySignature: Lru<string, Subset>;
  private readonly visibility: Lru<string, boolean>;
  private readonly plans: Lru<string, Plan>;
  private fullSetId: string | undefined;
  private schemaId: string | undefined;
  /** Whether the schema puts actions in groups (only then do evaluations need action entities). */
  private readonly hasActionGroups: boolean;

  constructor(
    readonly policySet: CompiledPolicySet,
    limits: Partial<EngineLimits> = {},
  ) {
    const bounds = { ...defaultLimits, ...limits };
    this.index = new ScopeIndex(policySet.policies);
    this.hasActionGroups = [...policySet.encoding.actionGroups.values()].some((groups) => groups.length > 0);
    this.subsets = new Lru(bounds.subsets);
    this.bySignature = new Lru(bounds.preparsed, (subset) => this.release(subset));
    this.visibility = new Lru(bounds.visibility);
    this.plans = new Lru(bounds.plans);
  }

  /** Decide one request. Never throws for a policy outcome: failures are deny decisions with errors. */
  decide(input: DecisionInput): Decision {
    const request = encodeRequest(input, this.policySet.encoding);
    return this.decideEncoded(request, this.subsetFor(request));
  }

  /** The decision plus the text of the determining policies, for `custos policy test`. */
  explain(input: DecisionInput): PolicyExplanation {
    const request = encodeRequest(input, this.policySet.encoding);
    const subset = this.subsetFor(request);
    const decision = this.decideEncoded(request, subset);
    const policies = decision.policyIds
      .map((id) => this.policySet.byId.get(id))
      .filter((policy): policy is CompiledPolicy => policy !== undefined)
      .map(({ id, file, index, line, effect, text }) =>
        Object.freeze({ id, file, index, line, effect, text }),
      );
    return Object.freeze({
      decision,
      policies: Object.freeze(policies),
      applicable: Object.freeze(subset.policies.map((policy) => policy.id)),
    });
  }

  /**
   * Could some call of this tool (resource, prompt) be allowed for this agent and task, at some
   * time and with some arguments? Uses Cedar partial evaluation with the arguments and time
   * unknown: a tool is hidden only when Cedar can show that every such request is denied. For
   * tools, the agent must also possibly be allowed `list_tools` on the server.
   */
  canSee(principal: PolicyPrincipal, task: PolicyTask | undefined, resource: PolicyResource): boolean {
    const annotations = annotationsWithDefaults(resource.annotations);
    const key = [
      principal.agentId,
      principal.owner,
      principal.name,
      principal.environment,
      principal.purpose,
      task?.id ?? '',
      task?.purpose ?? '',
      resource.server,
      resource.kind,
      resource.name,
      annotations.readOnlyHint,
      annotations.destructiveHint,
      annotations.idempotentHint,
      annotations.openWorldHint,
    ].join('\u0000');
    const cached = this.visibility.get(key);
    if (cached !== undefined) return cached;
    const actions: PolicyAction[] =
      resource.kind === 'tool'
        ? ['list_tools', 'call_tool']
        : [resource.kind === 'resource' ? 'read_resource' : 'get_prompt'];
    const visible = actions.every((action) =>
      this.couldAllow({ principal, task, action, resource, time: 0 }),
    );
    this.visibility.set(key, visible);
    return visible;
  }

  /** Evaluate against the whole policy set with the complete encoding, bypassing index and caches. */
  decideUnindexed(input: DecisionInput): Decision {
    const request = encodeRequest(input, this.policySet.encoding);
    if (request.errors.length > 0) return encodingDenial(request);
    if (this.fullSetId === undefined) {
      const id = this.newSetId();
      const staticPolicies: Record<string, string> = {};
      for (const policy of this.policySet.policies) staticPolicies[policy.id] = policy.text;
      preparseOrThrow(id, staticPolicies);
      this.fullSetId = id;
    }
    const answer = cedar.statefulIsAuthorized({
      principal: request.principal,
      action: request.action,
      resource: request.resource,
      context: request.context,
      entities: allEntities(request),
      preparsedPolicySetId: this.fullSetId,
      preparsedSchemaName: this.schema(),
      validateRequest: false,
    });
    return this.toDecision(request, answer);
  }

  /** Release everything held inside Cedar. The engine still answers afterwards, rebuilding on demand. */
  dispose(): void {
    for (const subset of this.bySignature.values()) this.release(subset);
    this.bySignature.clear();
    this.subsets.clear();
    this.visibility.clear();
    this.plans.clear();
    if (this.fullSetId !== undefined) cedar.preparsePolicySet(this.fullSetId, { staticPolicies: {} });
    this.fullSetId = undefined;
  }

  private decideEncoded(request: EncodedRequest, subset: Subset): Decision {
    if (request.errors.length > 0) return encodingDenial(request);
    if (subset.unconditional) return this.unconditionalDecision(request, subset);
    const plan = this.planFor(request, subset);
    if (plan.fixed !== undefined) return plan.fixed;
    return this.evaluate(request, plan.residual as Subset, plan);
  }

  /** Settle what the known parts of the request settle, once per plan key (see Plan). */
  private planFor(request: EncodedRequest, subset: Subset): Plan {
    const attrs = request.agent.attrs;
    const annotations = request.context.annotations as Record<string, boolean>;
    const key = [
      subset.signature,
      request.principal.id,
      request.principalAncestors.map((uid) => uid.id).join('\u0001'),
      attrs.name,
      attrs.environment,
      attrs.purpose,
      request.action.id,
      request.resource.type,
      request.resource.id,
      annotations.readOnlyHint,
      annotations.destructiveHint,
      annotations.idempotentHint,
      annotations.openWorldHint,
      request.taskEntity !== undefined,
    ].join('\u0000');
    const cached = this.plans.get(key);
    if (cached !== undefined) return cached;
    const plan = this.makePlan(request, subset);
    this.plans.set(key, plan);
    return plan;
  }

  private makePlan(request: EncodedRequest, subset: Subset): Plan {
    const unplanned: Plan = {
      residual: subset,
      satisfiedPermits: [],
      satisfiedForbids: [],
      fixed: undefined,
    };
    // Partial evaluation cannot carry the schema's action entities; evaluate such subsets whole.
    if (subset.reads.action && this.hasActionGroups) return unplanned;
    const answer = this.partial(request, subset, true);
    // Errors on the known parts are rare: leave them to full evaluation, which reports them as Cedar does.
    if (answer.type === 'failure' || answer.response.errored.length > 0) return unplanned;
    const satisfied = new Set(answer.response.satisfied);
    const remaining = new Set(answer.response.nontrivialResiduals);
    const settled = (effect: 'permit' | 'forbid') =>
      subset.policies.filter((p) => satisfied.has(p.id) && p.effect === effect).map((p) => p.id);
    const satisfiedPermits = settled('permit');
    const satisfiedForbids = settled('forbid');
    const residualPolicies = subset.policies.filter((p) => remaining.has(p.id));
    if (residualPolicies.length === 0) {
      const fixed =
        satisfiedForbids.length > 0
          ? denial(satisfiedForbids)
          : satisfiedPermits.length > 0
            ? permission(satisfiedPermits)
            : defaultDeny(request);
      return { residual: undefined, satisfiedPermits, satisfiedForbids, fixed };
    }
    return {
      residual: this.subsetOf(residualPolicies),
      satisfiedPermits,
      satisfiedForbids,
      fixed: undefined,
    };
  }

  /** Cedar partial evaluation with arguments, time and (if `taskUnknown`) the task left unknown. */
  private partial(
    request: EncodedRequest,
    subset: Subset,
    taskUnknown: boolean,
  ): cedar.PartialAuthorizationAnswer {
    const unknown = (name: string): cedar.CedarValueJson => ({ __extn: { fn: 'unknown', arg: name } });
    const staticPolicies: Record<string, string> = {};
    for (const policy of subset.policies) staticPolicies[policy.id] = policy.text;
    const context: Record<string, cedar.CedarValueJson> = {
      ...request.context,
      arguments: unknown('arguments'),
      argumentNames: unknown('argumentNames'),
      time: unknown('time'),
    };
    const entities = [request.agent];
    if (request.resourceEntity !== undefined) entities.push(request.resourceEntity);
    if (request.taskEntity !== undefined) {
      if (taskUnknown) context.task = unknown('task');
      else entities.push(request.taskEntity);
    }
    return cedar.isAuthorizedPartial({
      principal: request.principal,
      action: request.action,
      resource: request.resource,
      context,
      entities,
      policies: { staticPolicies },
      validateRequest: false,
    });
  }

  /** Scope-only policies: every applicable one is satisfied, so Cedar's answer is known. */
  private unconditionalDecision(request: EncodedRequest, subset: Subset): Decision {
    const forbids = subset.policies.filter((policy) => policy.effect === 'forbid').map((policy) => policy.id);
    if (forbids.length > 0) return denial(forbids);
    const permits = subset.policies.map((policy) => policy.id);
    if (permits.length === 0) return defaultDeny(request);
    return permission(permits);
  }

  private evaluate(request: EncodedRequest, subset: Subset, plan?: Plan): Decision {
    const reads = subset.reads;
    const entities: cedar.EntityJson[] = [];
    let context: Record<string, cedar.CedarValueJson>;
    let schemaName: string | undefined;
    if (reads.action && this.hasActionGroups) {
      // Action groups in conditions need the schema's action entities; the schema then checks
      // entities too, so send the complete encoding.
      schemaName = this.schema();
      entities.push(...allEntities(request));
      context = request.context;
    } else {
      if (reads.principal !== null) entities.push(projectEntity(request.agent, reads.principal));
      if (reads.resource !== null && request.resourceEntity !== undefined) {
        entities.push(projectEntity(request.resourceEntity, reads.resource));
      }
      if (reads.context === 'all') context = request.context;
      else {
        context = {};
        for (const name of reads.context ?? []) {
          const value = request.context[name];
          if (value !== undefined) context[name] = value;
        }
      }
      const readsTask = reads.context === 'all' || (reads.context?.has('task') ?? false);
      if (readsTask && request.taskEntity !== undefined) entities.push(request.taskEntity);
    }
    const answer = cedar.statefulIsAuthorized({
      principal: request.principal,
      action: request.action,
      resource: request.resource,
      context,
      entities,
      preparsedPolicySetId: this.preparsed(subset),
      ...(schemaName === undefined ? {} : { preparsedSchemaName: schemaName }),
      validateRequest: false,
    });
    return this.toDecision(request, answer, plan);
  }

  /** Combine Cedar's answer for the evaluated policies with what the plan settled in advance. */
  private toDecision(request: EncodedRequest, answer: cedar.AuthorizationAnswer, plan?: Plan): Decision {
    if (answer.type === 'failure') {
      const errors = answer.errors.map((error) => error.message);
      return freezeDecision({
        effect: 'deny',
        policyIds: [],
        errors,
        reasons: [`the request could not be evaluated, so it is denied: ${errors.join('; ')}`],
      });
    }
    const { decision, diagnostics } = answer.response;
    const order = (ids: string[]) =>
      ids.sort(
        (a, b) => (this.policySet.byId.get(a)?.ordinal ?? 0) - (this.policySet.byId.get(b)?.ordinal ?? 0),
      );
    if (diagnostics.errors.length > 0) {
      const failing = order([...new Set(diagnostics.errors.map((error) => error.policyId))]);
      return freezeDecision({
        effect: 'deny',
        policyIds: failing,
        errors: diagnostics.errors.map(
          (error) => `policy ${JSON.stringify(error.policyId)}: ${error.error.message}`,
        ),
        reasons: [`${quoted(failing)} failed to evaluate, so the request is denied (fail closed)`],
      });
    }
    const forbids = [...(plan?.satisfiedForbids ?? []), ...(decision === 'deny' ? diagnostics.reason : [])];
    if (forbids.length > 0) return denial(order(forbids));
    const permits = [...(plan?.satisfiedPermits ?? []), ...(decision === 'allow' ? diagnostics.reason : [])];
    if (permits.length > 0) return permission(order(permits));
    return defaultDeny(request);
  }

  private couldAllow(input: DecisionInput): boolean {
    const request = encodeRequest({ ...input, arguments: undefined }, this.policySet.encoding);
    if (request.errors.length > 0) return false;
    const subset = this.subsetFor(request);
    if (!subset.hasPermit) return false;
    if (subset.unconditional) return this.unconditionalDecision(request, subset).effect === 'allow';
    // Partial evaluation cannot carry the schema's action entities; answer "maybe" (show the tool).
    if (subset.reads.action && this.hasActionGroups) return true;
    const answer = this.partial(request, subset, false);
    if (answer.type === 'failure') return false;
    const { decision, errored } = answer.response;
    if (decision !== null) return decision === 'allow';
    // A policy that fails on the known parts fails on every call, and any failure denies.
    return errored.length === 0;
  }

  private subsetFor(request: EncodedRequest): Subset {
    const key = [
      request.principal.id,
      request.principalAncestors.map((uid) => uid.id).join('\u0001'),
      request.action.id,
      request.resource.type,
      request.resource.id,
    ].join('\u0000');
    const cached = this.subsets.get(key);
    if (cached !== undefined) return cached;
    const groups = this.policySet.encoding.actionGroups.get(request.action.id) ?? [];
    const subset = this.subsetOf(this.index.applicable(request, groups));
    this.subsets.set(key, subset);
    return subset;
  }

  /** The shared Subset object for a list of policies (sorted by ordinal). */
  private subsetOf(policies: readonly CompiledPolicy[]): Subset {
    const signature = policies.map((policy) => policy.ordinal).join(',');
    let subset = this.bySignature.get(signature);
    if (subset === undefined) {
      subset = {
        signature,
        policies,
        unconditional: policies.every((policy) => !policy.hasConditions),
        hasPermit: policies.some((policy) => policy.effect === 'permit'),
        reads: mergeReads(policies.map((policy) => policy.reads)),
        preparsedId: undefined,
      };
      this.bySignature.set(signature, subset);
    }
    return subset;
  }

  private preparsed(subset: Subset): string {
    if (subset.preparsedId !== undefined) return subset.preparsedId;
    const id = this.newSetId();
    const staticPolicies: Record<string, string> = {};
    for (const policy of subset.policies) staticPolicies[policy.id] = policy.text;
    preparseOrThrow(id, staticPolicies);
    subset.preparsedId = id;
    // A subset evicted earlier comes back here; hold it again so its Cedar copy stays bounded.
    if (this.bySignature.get(subset.signature) === undefined) this.bySignature.set(subset.signature, subset);
    return id;
  }

  private release(subset: Subset): void {
    if (subset.preparsedId === undefined) return;
    // Cedar keeps pre-parsed sets until replaced; replacing with an empty set frees the memory.
    cedar.preparsePolicySet(subset.preparsedId, { staticPolicies: {} });
    subset.preparsedId = undefined;
  }

  private schema(): string {
    if (this.schemaId === undefined) {
      const id = `${this.namespace}:schema`;
      const answer = cedar.preparseSchema(id, this.policySet.schemaText);
      if (answer.type === 'failure')
        throw new Error(`schema failed to pre-parse: ${answer.errors[0]?.message}`);
      this.schemaId = id;
    }
    return this.schemaId;
  }

  private newSetId(): string {
    return `${this.namespace}:${this.nextSetId++}`;
  }
}

function preparseOrThrow(id: string, staticPolicies: Record<string, cedar.Policy>): void {
  const answer = cedar.preparsePolicySet(id, { staticPolicies });
  // The policies parsed and validated at load, so a failure here is a bug, not a policy outcome.
  if (answer.type === 'failure')
    throw new Error(`policy set failed to pre-parse: ${answer.errors[0]?.message}`);
}

function encodingDenial(request: EncodedRequest): Decision {
  return freezeDecision({
    effect: 'deny',
    policyIds: [],
    errors: [...request.errors],
    reasons: [`the request could not be evaluated, so it is denied: ${request.errors.join('; ')}`],
  });
}
