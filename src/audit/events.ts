/** What one governed call produced, as the gateway hands it to the recorder. */
export interface AuditEventInput {
  time: number;
  agentId: string | null;
  owner: string | null;
  taskId: string | null;
  /** MCP method (tools/call, tools/list, resources/read, prompts/get, ...). */
  method: string;
  server: string | null;
  /** The tool, prompt or resource the call targets. */
  target: string | null;
  /** SHA-256 of the RFC 8785 canonical JSON of the arguments. */
  argsHash: string | null;
  effect: 'allow' | 'deny';
  policyIds: readonly string[];
  reasons: readonly string[];
  outcome: AuditOutcome;
  errorCode: string | null;
  latencyUs: number;
  traceId: string | null;
  /** Hash of the policy set in force when the call was decided (PolicySnapshot.hash); absent means null. */
  policySetHash?: string | null;
  /** The approval the call consumed, if any; absent means null. */
  approvalId?: string | null;
  /** The agent's W3C traceparent; passed to trace exporters, neither stored nor committed. */
  traceparent?: string | null;
  arguments?: unknown;
  reasoning?: unknown;
  result?: unknown;
}

/** executed: the upstream answered; denied: Custos stopped the call; failed: it was allowed but did not complete. */
export type AuditOutcome = 'executed' | 'denied' | 'failed';

export interface AuditEvent extends AuditEventInput {
  id: string;
  seq: number;
  policySetHash: string | null;
  approvalId: string | null;
  /** True when the event's content was erased (`custos audit erase-content`); absent otherwise, or when not read. */
  erased?: true;
}
