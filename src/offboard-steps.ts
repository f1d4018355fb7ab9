import { approvalsOffboardStep } from './approvals/index.js';
import type { OffboardStep } from './identity/index.js';
import { deleteAgentBindings } from './vault/index.js';

/**
 * What offboarding removes besides the agent's own rows, in order, inside its one transaction:
 * approvals (pending requests cancelled, grants revoked) and the vault's per-agent bindings.
 * A capability with per-agent state adds its step here. The server (app.ts) and the offline CLI
 * use this one list; it has a module of its own so the CLI does not load the server for it.
 */
export function offboardSteps(): OffboardStep[] {
  return [
    approvalsOffboardStep,
    {
      name: 'vault',
      run: async (trx, agent) => ({ bindingsDeleted: await deleteAgentBindings(trx, agent.id) }),
    },
  ];
}
