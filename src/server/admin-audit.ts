import type { FastifyInstance } from 'fastify';
import { loadDecisionChain, type OcsfSinkStats } from '../audit/index.js';
import { CustosError } from '../core/errors.js';
import type { Store } from '../store/index.js';
import { requireRole } from './actor.js';

export interface AuditRouteDeps {
  store: Store;
  agentName?: (agentId: string) => string | undefined;
  /** Delivered, dropped and pending counts of each configured exporter. */
  exporterStats?: () => Record<string, OcsfSinkStats>;
}

/**
 * Audit routes beyond the event list: decision chains for the console and `custos audit trace`,
 * and the state of the configured exporters.
 */
export function auditRoutes({ store, agentName, exporterStats }: AuditRouteDeps) {
  return (api: FastifyInstance): void => {
    api.get('/audit/exports', async (request) => {
      requireRole(request, 'admin', 'auditor');
      return { exporters: exporterStats?.() ?? {} };
    });

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
