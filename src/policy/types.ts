/** The operations an agent asks Custos to perform; each is a Cedar action of the same name. */
export type PolicyAction = 'call_tool' | 'list_tools' | 'read_resource' | 'get_prompt' | 'http_request';

export const policyActions: readonly PolicyAction[] = [
  'call_tool',
  'list_tools',
  'read_resource',
  'get_prompt',
  'http_request',
];

/** The agent making the request, as authentication established it. */
export interface PolicyPrincipal {
  readonly agentId: string;
  readonly name: string;
  /** The accountable owner (an email address or team name). */
  readonly owner: string;
  readonly environment: string;
  readonly purpose: string;
}

/** The principal of an agent's own record, for checks made on its behalf outside a call (reach, previews). */
export function principalOfAgent(agent: {
  readonly id: string;
  readonly name: string;
  readonly owner: string;
  readonly environment: string;
  readonly purpose: string;
}): PolicyPrincipal {
  return {
    agentId: agent.id,
    name: agent.name,
    owner: agent.owner,
    environment: agent.environment,
    purpose: agent.purpose,
  };
}

/** The task the agent works on, when it called with a task token. */
export interface PolicyTask {
  readonly id: string;
  readonly purpose: string;
}

/** MCP tool annotations as the upstream server declared them (all optional). */
export interface ToolAnnotations {
  readonly readOnlyHint?: boolean;
  readonly destructiveHint?: boolean;
  readonly idempotentHint?: boolean;
  readonly openWorldHint?: boolean;
}

export type ResourceKind = 'tool' | 'resource' | 'prompt';

/** What the agent acts on: a tool, resource or prompt of an upstream server. */
export interface PolicyResource {
  readonly server: string;
  readonly kind: ResourceKind;
  /** Tool name, resource URI or prompt name. Ignored for `list_tools`, which acts on the server. */
  readonly name: string;
  readonly annotations?: ToolAnnotations;
}

/** Everything a decision looks at. */
export interface DecisionInput {
  readonly principal: PolicyPrincipal;
  readonly task?: PolicyTask | undefined;
  readonly action: PolicyAction;
  readonly resource: PolicyResource;
  /** The call's arguments: arbitrary JSON, normally an object. */
  readonly arguments?: unknown;
  /** Milliseconds since the Unix epoch (from the injected clock). */
  readonly time: number;
}

/** The outcome of one authorization, as a value. Deny unless a permit applies and nothing failed. */
export interface Decision {
  readonly effect: 'allow' | 'deny';
  /** The determining policies: the permits that allowed, or the forbids (or failing policies) that denied. */
  readonly policyIds: readonly string[];
  /** Evaluation and encoding errors; any error makes the effect `deny`. */
  readonly errors: readonly string[];
  /** Short human-readable explanations, suitable for logs and the agent's error message. */
  readonly reasons: readonly string[];
}

/** One policy as loaded from a file. */
export interface LoadedPolicy {
  /** `@id("...")` if present, else `<file>:<index>` (index counts from 0 within the file). */
  readonly id: string;
  readonly file: string;
  readonly index: number;
  /** 1-based line of the policy's first character in its file. */
  readonly line: number;
  readonly effect: 'permit' | 'forbid';
  /** The policy's source text, annotations included. */
  readonly text: string;
}

/** A problem found while loading policies; `policyId` is absent for file-level problems. */
export interface PolicyProblem {
  readonly file: string;
  readonly policyId?: string;
  readonly line?: number;
  readonly message: string;
}

/** The answer to "would this agent be allowed, and why" (for `custos policy test`). */
export interface PolicyExplanation {
  readonly decision: Decision;
  /** The determining policies with their text and location. */
  readonly policies: readonly LoadedPolicy[];
  /** Ids of all policies whose scope matched the request (the ones evaluated). */
  readonly applicable: readonly string[];
}
