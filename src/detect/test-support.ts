import type { CallContext, CallOutcome, Upstream } from '../gateway/index.js';
import type { Principal } from '../identity/index.js';

/** A principal for detector tests (no token involved). */
export function principal(agentId: string, name = agentId, taskId: string | null = null): Principal {
  return {
    agentId,
    agentName: name,
    owner: `${name}@example.com`,
    environment: 'test',
    purpose: 'detector tests',
    epoch: 0,
    tokenId: 'tok',
    expiresAt: Number.MAX_SAFE_INTEGER,
    task:
      taskId === null
        ? null
        : {
            id: taskId,
            purpose: 'a task',
            servers: null,
            tools: null,
            budget: null,
            expiresAt: Number.MAX_SAFE_INTEGER,
          },
  };
}

/** A resolved tools/call context as the contain and meter stages see it. */
export function callContext(
  p: Principal,
  time: number,
  server: string,
  tool: string,
  args: string,
  bytes = 64,
): CallContext {
  return {
    principal: p,
    method: 'tools/call',
    scope: null,
    target: { kind: 'tool', name: tool },
    params: {},
    arguments: { args },
    argsHash: args,
    argsBytes: bytes,
    reasoning: undefined,
    traceId: null,
    time,
    started: 0n,
    signal: undefined,
    onProgress: undefined,
    onNotification: undefined,
    upstream: { name: server } as Upstream,
    upstreamName: tool,
  };
}

export const executed: CallOutcome = { kind: 'executed', result: {} };
export const policyDenied: CallOutcome = {
  kind: 'denied',
  stop: { stop: true, code: 'policy_denied', message: 'no', reasons: [] },
  policyIds: [],
};
