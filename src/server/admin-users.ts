import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { CustosError } from '../core/errors.js';
import type { UserService } from '../identity/index.js';
import { actorOf, requireRole } from './actor.js';

const tokenRequest = z.strictObject({ name: z.string().min(1).max(100) });
const passwordRequest = z.strictObject({ password: z.string().min(1).max(1024) });
const rolesRequest = z.strictObject({ roles: z.array(z.enum(['admin', 'approver', 'auditor'])).min(1) });

function body<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new CustosError(
      'bad_request',
      parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '),
    );
  }
  return parsed.data;
}

/** People and their API tokens under /api/v1/users (admin only), and /api/v1/me for anyone logged in. */
export function userRoutes(users: UserService): (api: FastifyInstance) => void {
  return (api) => {
    api.get('/me', async (request) => {
      const actor = actorOf(request);
      return {
        actor: {
          id: actor.id,
          kind: actor.kind,
          name: actor.name,
          roles: [...actor.roles],
          groups: [...actor.groups],
        },
      };
    });
    api.get('/users', async (request) => {
      requireRole(request, 'admin');
      return { users: await users.list() };
    });
    api.post('/users', async (request, reply) => {
      const actor = requireRole(request, 'admin');
      // UserService validates the fields; it needs an object to start from.
      if (typeof request.body !== 'object' || request.body === null) {
        throw new CustosError('bad_request', 'send a JSON object: {email, roles, groups?, password?}');
      }
      const user = await users.add(request.body as Parameters<UserService['add']>[0], actor.name);
      return reply.code(201).send({ user });
    });
    api.get('/users/:ref', async (request) => {
      requireRole(request, 'admin');
      const { ref } = request.params as { ref: string };
      const user = await users.require(ref);
      return { user, tokens: await users.listTokens(user.id) };
    });
    for (const action of ['disable', 'enable'] as const) {
      api.post(`/users/:ref/${action}`, async (request) => {
        const actor = requireRole(request, 'admin');
        const { ref } = request.params as { ref: string };
        return { user: await users[action](ref, actor.name) };
      });
    }
    api.post('/users/:ref/roles', async (request) => {
      const actor = requireRole(request, 'admin');
      const { ref } = request.params as { ref: string };
      const { roles } = body(rolesRequest, request.body);
      return { user: await users.setRoles(ref, roles, actor.name) };
    });
    api.post('/users/:ref/password', async (request) => {
      const actor = requireRole(request, 'admin');
      const { ref } = request.params as { ref: string };
      const { password } = body(passwordRequest, request.body);
      await users.setPassword(ref, password, actor.name);
      return { user: await users.require(ref) };
    });
    api.post('/users/:ref/tokens', async (request, reply) => {
      const actor = requireRole(request, 'admin');
      const { ref } = request.params as { ref: string };
      const { name } = body(tokenRequest, request.body);
      const created = await users.createToken(ref, name, actor.name);
      reply.header('cache-control', 'no-store');
      return reply.code(201).send(created);
    });
    api.post('/users/tokens/:id/revoke', async (request, reply) => {
      const actor = requireRole(request, 'admin');
      const { id } = request.params as { id: string };
      await users.revokeToken(id, actor.name);
      return reply.code(204).send();
    });
  };
}
