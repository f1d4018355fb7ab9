import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { CustosError } from '../core/errors.js';
import type { AgentService } from '../identity/index.js';
import { requireRole } from './actor.js';

const dpopBody = z.strictObject({ require: z.boolean() });
const keyBody = z.strictObject({ jwk: z.record(z.string(), z.unknown()) });

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    throw new CustosError(
      'bad_request',
      parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '),
    );
  }
  return parsed.data;
}

/**
 * How agents authenticate, over the admin API: registered public keys for private_key_jwt
 * (RFC 7523) and the per-agent DPoP requirement (RFC 9449).
 */
export function agentAuthRoutes(agents: AgentService) {
  return (api: FastifyInstance) => {
    api.get('/agents/:ref/credentials', async (request) => {
      const { ref } = request.params as { ref: string };
      return { credentials: await agents.listCredentials(ref) };
    });
    api.post('/agents/:ref/keys', async (request, reply) => {
      requireRole(request, 'admin');
      const { ref } = request.params as { ref: string };
      const { jwk } = parse(keyBody, request.body);
      const issued = await agents.addCredential(ref, { kind: 'public_key', jwk });
      return reply.code(201).send({ credential: issued.credential });
    });
    api.post('/agents/:ref/credentials/:id/revoke', async (request) => {
      requireRole(request, 'admin');
      const { ref, id } = request.params as { ref: string; id: string };
      const owned = (await agents.listCredentials(ref)).some((c) => c.id === id);
      if (!owned) throw new CustosError('not_found', `agent "${ref}" has no credential ${id}`);
      return { credential: await agents.revokeCredential(id) };
    });
    api.post('/agents/:ref/dpop', async (request) => {
      requireRole(request, 'admin');
      const { ref } = request.params as { ref: string };
      const { require } = parse(dpopBody, request.body);
      return { agent: await agents.setRequireDpop(ref, require) };
    });
  };
}
