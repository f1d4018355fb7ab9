import type { FastifyInstance } from 'fastify';
import { CustosError } from '../core/errors.js';
import type { AgentService } from '../identity/index.js';
import { type BindingService, parseHeaderTemplate, type Vault } from '../vault/index.js';
import { requireRole } from './actor.js';

export interface VaultAdminDeps {
  vault: Vault;
  bindings: BindingService;
  agents: AgentService;
}

/** Secrets (metadata only: no route returns a value) and bindings. */
export function vaultRoutes(deps: VaultAdminDeps) {
  return (api: FastifyInstance) => {
    api.get('/vault/secrets', async (request) => {
      requireRole(request, 'admin', 'auditor');
      return { secrets: await deps.vault.list() };
    });
    api.put('/vault/secrets/:name', async (request) => {
      requireRole(request, 'admin');
      const { name } = request.params as { name: string };
      const body = (request.body ?? {}) as { value?: unknown; kind?: unknown };
      if (typeof body.value !== 'string' || body.value === '') {
        throw new CustosError('bad_request', 'value (a non-empty string) is required');
      }
      const kind = typeof body.kind === 'string' ? body.kind : undefined;
      return { secret: await deps.vault.set(name, body.value, kind === undefined ? {} : { kind }) };
    });
    api.delete('/vault/secrets/:name', async (request) => {
      requireRole(request, 'admin');
      const { name } = request.params as { name: string };
      if (!(await deps.vault.delete(name))) throw new CustosError('not_found', `no secret named "${name}"`);
      return { deleted: name };
    });
    api.get('/vault/bindings', async (request) => {
      requireRole(request, 'admin', 'auditor');
      return { bindings: await deps.bindings.list() };
    });
    api.post('/vault/bindings', async (request) => {
      requireRole(request, 'admin');
      const b = (request.body ?? {}) as Record<string, unknown>;
      const secret = String(b.secret ?? '');
      const server = typeof b.server === 'string' ? b.server : undefined;
      const apiName = typeof b.api === 'string' ? b.api : undefined;
      if ((server === undefined) === (apiName === undefined)) {
        throw new CustosError('bad_request', 'name exactly one of server or api');
      }
      let agentId: string | null = null;
      if (typeof b.agent === 'string') {
        const agent = await deps.agents.get(b.agent);
        if (agent === undefined) throw new CustosError('not_found', `no agent "${b.agent}"`);
        agentId = agent.id;
      }
      const injectEnv = typeof b.env === 'string' ? b.env : undefined;
      const header = parseHeaderTemplate(
        typeof b.header === 'string' ? b.header : 'Authorization: Bearer {{secret}}',
      );
      const binding = await deps.bindings.bind({
        secret,
        targetKind: server === undefined ? 'api' : 'server',
        target: (server ?? apiName) as string,
        agentId,
        ...(injectEnv === undefined
          ? { inject: 'header' as const, field: header.field, template: header.template }
          : { inject: 'env' as const, field: injectEnv }),
      });
      return { binding };
    });
    api.delete('/vault/bindings/:id', async (request) => {
      requireRole(request, 'admin');
      const { id } = request.params as { id: string };
      if (!(await deps.bindings.unbind(id))) throw new CustosError('not_found', `no binding "${id}"`);
      return { deleted: id };
    });
  };
}
