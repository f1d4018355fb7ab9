import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { getEvent, listEvents } from '../audit/index.js';
import { CustosError } from '../core/errors.js';
import type { AgentService } from '../identity/index.js';
import type { Store } from '../store/index.js';
import { type Actor, adminTokenActor, requireRole } from './actor.js';
import { sendError } from './errors.js';
import { openApiDocument } from './openapi.js';

export interface AdminDeps {
  adminToken: string;
  /** A human user's session or API token, when the request carries one (console and people). */
  authenticateUser?(request: FastifyRequest): Promise<Actor | undefined>;
  /** Each capability's own routes under /api/v1, registered after authentication. */
  routes?: ReadonlyArray<(api: FastifyInstance) => void>;
  store: Store;
  agents: AgentService;
  servers(): Array<Record<string, unknown>>;
}

const newAgent = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/),
  owner: z.email(),
  purpose: z.string().min(1),
  environment: z.string().min(1).optional(),
  expiresAt: z.number().int().positive().nullable().optional(),
  expiresInDays: z.number().int().positive().optional(),
});

const renewal = z.strictObject({ days: z.number().int().positive().optional() });

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The admin API under /api/v1: what the CLI and the console use. */
export function registerAdmin(app: FastifyInstance, deps: AdminDeps): void {
  app.register(
    async (api) => {
      api.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
        if (request.url === '/api/v1/openapi.json') return;
        const header = request.headers.authorization ?? '';
        const token = header.toLowerCase().startsWith('bearer ') ? header.slice(7).trim() : '';
        if (token !== '' && sameSecret(token, deps.adminToken)) {
          request.actor = adminTokenActor;
          return;
        }
        const user = await deps.authenticateUser?.(request);
        if (user === undefined) {
          return sendError(reply, new CustosError('invalid_token', 'an admin token is required'));
        }
        // Auditors read; only admins and approvers may change anything (routes narrow further).
        if (
          !['GET', 'HEAD', 'OPTIONS'].includes(request.method) &&
          // Attesting an access review is an auditor's job (the route checks the role).
          request.url.split('?')[0] !== '/api/v1/review/attest' &&
          !user.roles.has('admin') &&
          !user.roles.has('approver')
        ) {
          return sendError(reply, new CustosError('forbidden', 'the auditor role is read-only'));
        }
        request.actor = user;
      });
      for (const register of deps.routes ?? []) register(api);

      api.get('/openapi.json', async () => openApiDocument);

      api.get('/agents', async (request) => {
        const q = request.query as { status?: string; owner?: string };
        const filter = {
          ...(q.status ? { status: q.status as 'active' } : {}),
          ...(q.owner ? { owner: q.owner } : {}),
        };
        return { agents: await deps.agents.list(filter) };
      });
      api.post('/agents', async (request, reply) => {
        const parsed = newAgent.safeParse(request.body);
        if (!parsed.success) {
          throw new CustosError(
            'bad_request',
            parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
          );
        }
        const actor = requireRole(request, 'admin');
        const added = await deps.agents.add(
          { ...parsed.data, credential: { kind: 'client_secret' } },
          { by: actor.name },
        );
        return reply.code(201).send(added);
      });
      api.get('/agents/:ref', async (request) => {
        const { ref } = request.params as { ref: string };
        return { agent: await deps.agents.require(ref) };
      });
      for (const action of ['suspend', 'resume'] as const) {
        api.post(`/agents/:ref/${action}`, async (request) => {
          const actor = requireRole(request, 'admin');
          const { ref } = request.params as { ref: string };
          return { agent: await deps.agents[action](ref, { by: actor.name }) };
        });
      }
      api.post('/agents/:ref/offboard', async (request) => {
        const actor = requireRole(request, 'admin');
        const { ref } = request.params as { ref: string };
        return await deps.agents.offboardWithReport(ref, { by: actor.name });
      });
      api.post('/agents/:ref/renew', async (request) => {
        const actor = requireRole(request, 'admin');
        const { ref } = request.params as { ref: string };
        const parsed = renewal.safeParse(request.body ?? {});
        if (!parsed.success) {
          throw new CustosError(
            'bad_request',
            parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
          );
        }
        return {
          agent: await deps.agents.renew(ref, {
            by: actor.name,
            ...(parsed.data.days === undefined ? {} : { days: parsed.data.days }),
          }),
        };
      });

      api.get('/audit/events', async (request) => {
        const q = request.query as {
          agent?: string;
          task?: string;
          trace?: string;
          after?: string;
          limit?: string;
        };
        let agentId = q.agent;
        if (agentId !== undefined) agentId = (await deps.agents.require(agentId)).id;
        const events = await listEvents(deps.store, {
          ...(agentId ? { agentId } : {}),
          ...(q.task ? { taskId: q.task } : {}),
          ...(q.trace ? { traceId: q.trace } : {}),
          ...(q.after ? { afterSeq: Number(q.after) } : {}),
          limit: Math.min(Number(q.limit ?? 50) || 50, 1000),
        });
        return { events };
      });
      api.get('/audit/events/:id', async (request) => {
        const { id } = request.params as { id: string };
        const event = await getEvent(deps.store, id);
        if (event === undefined) throw new CustosError('not_found', `no audit event ${id}`);
        return { event };
      });

      api.get('/servers', async () => ({ servers: deps.servers() }));
    },
    { prefix: '/api/v1' },
  );
}
