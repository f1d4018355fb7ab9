import type { FastifyInstance } from 'fastify';
import type { Config } from '../core/config.js';
import { isStdioServer } from '../core/config.js';
import { CustosError } from '../core/errors.js';
import type { Upstream } from '../gateway/index.js';
import type { Store } from '../store/index.js';
import {
  diffSnapshot,
  latestRuns,
  lockfilePath,
  readLockfile,
  recordRun,
  type ServerSnapshot,
  vetReportSchema,
} from '../vet/index.js';
import { requireRole } from './actor.js';

export interface VetAdminDeps {
  config: Config;
  store: Store;
  upstreams(): readonly Upstream[];
}

function snapshotOf(upstream: Upstream): ServerSnapshot | undefined {
  const c = upstream.catalog();
  if (c === undefined) return undefined;
  return {
    name: upstream.name,
    serverInfo: c.serverInfo,
    ...(c.instructions === undefined ? {} : { instructions: c.instructions }),
    tools: c.tools,
    prompts: c.prompts,
    resources: c.resources,
    resourceTemplates: c.resourceTemplates,
  };
}

/** The vet routes: the server inventory (with live pin status) and recording a vetting. */
export function vetRoutes(deps: VetAdminDeps) {
  return (api: FastifyInstance) => {
    api.get('/vet/servers', async (request) => {
      requireRole(request, 'admin', 'auditor');
      const { config } = deps;
      const lock = readLockfile(lockfilePath(config));
      const runs = await latestRuns(deps.store);
      const live = new Map(deps.upstreams().map((u) => [u.name, u]));
      const servers = Object.entries(config.servers).map(([name, s]) => {
        const run = runs.get(name);
        const pins = lock.servers[name];
        const upstream = live.get(name);
        const snapshot = upstream ? snapshotOf(upstream) : undefined;
        let status: string;
        if (pins === undefined) status = config.vet.lockfile ? 'not pinned (withheld)' : 'not pinned';
        else if (snapshot === undefined)
          status = `pinned ${pins.pinnedAt.slice(0, 10)} (server not listed yet)`;
        else {
          const drift = diffSnapshot(pins, snapshot);
          status =
            drift.length === 0
              ? `pinned ${pins.pinnedAt.slice(0, 10)}, matches`
              : `DRIFT: ${drift.length} change(s)${config.vet.lockfile ? ', withheld' : ''}`;
        }
        return {
          server: name,
          transport: isStdioServer(s) ? 'stdio' : 'http',
          owner: config.vet.servers[name]?.owner ?? null,
          tier: run?.tier ?? null,
          verdict: run?.verdict ?? null,
          lastVetted: run?.vettedAt ?? null,
          pins: status,
        };
      });
      return { servers };
    });

    api.post('/vet/runs', async (request, reply) => {
      requireRole(request, 'admin');
      const body = request.body as { report?: unknown } | undefined;
      const parsed = vetReportSchema.safeParse(body?.report);
      if (!parsed.success)
        throw new CustosError('bad_request', `not a vet report: ${parsed.error.issues[0]?.message}`);
      const run = await recordRun(deps.store, parsed.data, Date.now());
      reply.code(201);
      return { run };
    });
  };
}
