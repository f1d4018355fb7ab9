import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Clock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import {
  type AccessReview,
  type Agent,
  type BindingReach,
  findOrphans,
  type ReachSources,
  type ToolAccess,
} from '../identity/index.js';
import { type PolicyResource, type PolicyStore, principalOfAgent } from '../policy/index.js';
import type { Store } from '../store/index.js';
import { actorOf, requireRole } from './actor.js';

/** The part of the policy store the review reads. */
type ReviewPolicy = Pick<PolicyStore, 'decide' | 'canSee' | 'annotationsOf'>;

/**
 * What an access review reads, from the policy in force and the upstream catalogs: a tool
 * is in an agent's reach when some call of it could be allowed (Cedar partial evaluation, as
 * for listing); it is `allowed` when a call with no arguments is allowed now, `approval` when
 * that permit asks for a person's approval (its tier), else `conditional`.
 */
export function reachSources(deps: {
  policy: ReviewPolicy;
  clock: Clock;
  servers(): ReturnType<ReachSources['servers']>;
  bindings?: ReachSources['bindings'];
}): ReachSources {
  return {
    servers: () => deps.servers(),
    access(agent: Agent, server, tool): Omit<ToolAccess, 'tool'> | undefined {
      const principal = principalOfAgent(agent);
      const resource: PolicyResource = {
        server,
        kind: 'tool',
        name: tool.name,
        ...(tool.annotations ? { annotations: tool.annotations as PolicyResource['annotations'] } : {}),
      };
      if (!deps.policy.canSee(principal, undefined, resource)) return undefined;
      const decision = deps.policy.decide({
        principal,
        action: 'call_tool',
        resource,
        arguments: {},
        time: deps.clock.now(),
      });
      if (decision.effect !== 'allow') return { access: 'conditional' };
      const tiers = decision.policyIds
        .map((id) => deps.policy.annotationsOf(id)?.approval)
        .filter((t): t is string => typeof t === 'string')
        .sort();
      return tiers.length > 0 ? { access: 'approval', tier: tiers[0]! } : { access: 'allowed' };
    },
    ...(deps.bindings === undefined ? {} : { bindings: deps.bindings }),
  };
}

/** The bindings part of a reach, from the vault's binding list (metadata only, never a value). */
export function bindingsReach(
  list: (filter: {
    agentId?: string;
  }) => Promise<
    ReadonlyArray<{ secret: string; targetKind: string; target: string; agentId: string | null }>
  >,
): NonNullable<ReachSources['bindings']> {
  return async (agentId, servers) => {
    const all = await list({});
    const reached = new Set(servers);
    return all
      .filter(
        (b) =>
          b.agentId === agentId || (b.agentId === null && b.targetKind === 'server' && reached.has(b.target)),
      )
      .map(
        (b): BindingReach => ({
          secret: b.secret,
          targetKind: b.targetKind,
          target: b.target,
          scope: b.agentId === null ? 'shared' : 'agent',
        }),
      )
      .sort((a, b) => `${a.target}\u0000${a.secret}`.localeCompare(`${b.target}\u0000${b.secret}`));
  };
}

const attestBody = z.strictObject({
  agents: z.array(z.string().min(1)).min(1).max(1000),
  reviewer: z.email().optional(),
  note: z.string().max(2000).optional(),
});

/**
 * Reviewer named by an attestation: a person attests as themselves; the admin token (the
 * CLI, automation) must name the reviewer.
 */
export function reviewerOf(actor: { kind: string; name: string }, asked: string | undefined): string {
  if (actor.kind === 'user') {
    if (asked !== undefined && asked.toLowerCase() !== actor.name.toLowerCase()) {
      throw new CustosError('forbidden', 'a person attests as themselves: leave out the reviewer');
    }
    return actor.name;
  }
  if (asked === undefined) {
    throw new CustosError('bad_request', 'reviewer: name the person who reviewed (their email)');
  }
  return asked;
}

/** Orphans, access reviews and attestations under /api/v1. */
export function lifecycleRoutes(deps: {
  store: Store;
  clock: Clock;
  review: AccessReview;
  idleDays: number;
}) {
  return (api: FastifyInstance): void => {
    api.get('/lifecycle/orphans', async (request) => {
      const q = request.query as { idleDays?: string };
      const idleDays = q.idleDays === undefined ? deps.idleDays : Number(q.idleDays);
      return { idleDays, orphans: await findOrphans(deps.store, deps.clock, { idleDays }) };
    });
    api.get('/review', async (request) => {
      const q = request.query as { owner?: string };
      return { agents: await deps.review.list(q.owner ? { owner: q.owner } : {}) };
    });
    api.get('/review/:ref/attestations', async (request) => {
      const { ref } = request.params as { ref: string };
      return { attestations: await deps.review.history(ref) };
    });
    api.post('/review/attest', async (request, reply) => {
      const actor = requireRole(request, 'admin', 'auditor');
      const parsed = attestBody.safeParse(request.body);
      if (!parsed.success) {
        throw new CustosError(
          'bad_request',
          parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
        );
      }
      const reviewer = reviewerOf(actorOf(request), parsed.data.reviewer);
      const agents = await deps.review.attest(parsed.data.agents, {
        reviewer,
        actor: actor.name,
        ...(parsed.data.note === undefined ? {} : { note: parsed.data.note }),
      });
      return reply.code(201).send({ agents });
    });
  };
}
