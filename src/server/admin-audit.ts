import { createReadStream } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import {
  type ExportStore,
  loadDecisionChain,
  type OcsfSinkStats,
  type TransparencyLog,
} from '../audit/index.js';
import { CustosError } from '../core/errors.js';
import type { Store } from '../store/index.js';
import { requireRole } from './actor.js';

export interface AuditRouteDeps {
  store: Store;
  agentName?: (agentId: string) => string | undefined;
  /** Delivered, dropped and pending counts of each configured exporter. */
  exporterStats?: () => Record<string, OcsfSinkStats>;
  /** Export bundles made through the API, and what they need. */
  exports?: { bundles: ExportStore; log: TransparencyLog; newId: () => string; now: () => number };
}

function windowTime(name: string, value: unknown): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const ms = typeof value === 'string' ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) throw new CustosError('bad_request', `${name} must be an ISO 8601 time`);
  return ms;
}

const contentTypes: Record<string, string> = {
  'events.jsonl': 'application/x-ndjson',
  'proofs.json': 'application/json',
  'README.md': 'text/markdown; charset=utf-8',
};

/**
 * Audit routes beyond the event list: decision chains for the console and `custos audit trace`,
 * and the state of the configured exporters.
 */
export function auditRoutes({ store, agentName, exporterStats, exports }: AuditRouteDeps) {
  return (api: FastifyInstance): void => {
    api.get('/audit/exporters', async (request) => {
      requireRole(request, 'admin', 'auditor');
      return { exporters: exporterStats?.() ?? {} };
    });

    const bundles = () => {
      if (exports === undefined) throw new CustosError('not_found', 'export bundles are not available here');
      return exports;
    };

    // Writing a bundle writes files on the server: admins only. Auditors read and download.
    api.post('/audit/exports', async (request, reply) => {
      const actor = requireRole(request, 'admin');
      const { bundles: kept, log, newId, now } = bundles();
      const body = (request.body ?? {}) as { from?: unknown; to?: unknown };
      const from = windowTime('from', body.from);
      const to = windowTime('to', body.to);
      if (from !== undefined && to !== undefined && from > to)
        throw new CustosError('bad_request', 'from is after to');
      const created = await kept.create(store, log, {
        id: newId(),
        createdBy: actor.kind === 'admin-token' ? 'admin-token' : actor.name,
        now: now(),
        ...(from === undefined ? {} : { from }),
        ...(to === undefined ? {} : { to }),
      });
      reply.code(201);
      return { export: created };
    });

    api.get('/audit/exports', async (request) => {
      requireRole(request, 'admin', 'auditor');
      return { exports: bundles().bundles.list() };
    });

    api.get('/audit/exports/:id', async (request) => {
      requireRole(request, 'admin', 'auditor');
      return { export: bundles().bundles.get((request.params as { id: string }).id) };
    });

    api.get('/audit/exports/:id/files/:name', async (request, reply) => {
      requireRole(request, 'admin', 'auditor');
      const { id, name } = request.params as { id: string; name: string };
      const file = bundles().bundles.file(id, name);
      reply
        .header('content-type', contentTypes[name] ?? 'text/plain; charset=utf-8')
        .header('content-length', file.bytes)
        .header('content-disposition', `attachment; filename="${id}-${name}"`);
      return reply.send(createReadStream(file.path));
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
