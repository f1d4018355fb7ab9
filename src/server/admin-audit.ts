import type { FastifyInstance } from 'fastify';
import { loadDecisionChain } from '../audit/index.js';
import { CustosError } from '../core/errors.js';
import type { Store } from '../store/index.js';
import { requireRole } from './actor.js';

/** Audit routes beyond the event list: decision chains for the console and `custos audit trace`. */
export function auditRoutes(store: Store, agentName?: (agentId: string) => string | undefined) {
  return (api: FastifyInstance): void => {
    api.get('/audit/trace/:id', async (request) => {
      requireRole(request, 'admin', 'auditor');
      const { id } = request.params as { id: string };
      const q = request.query as { limit?: string };
      const limit = q.limit === undefined ? 1000 : Number(q.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
        throw new CustosError('bad_request', 'limit must be an integer from 1 to 10000');
      }
      const chain = await loadDecisionChain(store, id, {
        limit,
        ...(agentName === undefined ? {} : { agentName }),
      });
      if (chain.steps.length === 0)
        throw new CustosError('not_found', `no audit events for task or trace ${id}`);
      return chain;
    });
  };
}
