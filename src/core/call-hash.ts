import { canonicalHash } from './canonical.js';

/** The parts of a tool call that an approval is bound to. */
export interface BoundCall {
  readonly agentId: string;
  readonly taskId: string | null;
  readonly server: string;
  readonly tool: string;
  readonly arguments: unknown;
}

/**
 * The SHA-256 of the RFC 8785 canonical JSON of {agent, task, server, tool, arguments}: the
 * hash an approval is bound to. The approvals engine computes it when a call asks for approval;
 * decision chains recompute it from an audited call to show that the approved hash is that call's.
 */
export function callHash(call: BoundCall): string {
  return canonicalHash({
    agent: call.agentId,
    task: call.taskId,
    server: call.server,
    tool: call.tool,
    arguments: call.arguments ?? null,
  });
}
