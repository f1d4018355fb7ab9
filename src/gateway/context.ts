import type { ErrorCode } from '../core/errors.js';
import type { Principal } from '../identity/index.js';
import type { Decision, PolicyAction } from '../policy/index.js';
import type { Progress, ToolDefinition, Upstream } from './upstream/types.js';

/** The MCP methods that act on one upstream target and run the whole pipeline. */
export type TargetMethod =
  | 'tools/call'
  | 'resources/read'
  | 'prompts/get'
  | 'completion/complete'
  | 'resources/subscribe'
  /** A plain HTTP call through /proxy/<api>/<path>. */
  | 'http/request';

export const policyActionOf: Record<TargetMethod, PolicyAction> = {
  'tools/call': 'call_tool',
  'resources/read': 'read_resource',
  'resources/subscribe': 'read_resource',
  'prompts/get': 'get_prompt',
  'completion/complete': 'get_prompt',
  'http/request': 'http_request',
};

/** What the agent named: a tool, prompt or resource, before resolution. */
export interface CallTarget {
  kind: 'tool' | 'prompt' | 'resource';
  /** The name as the agent used it (possibly "server.tool"), or the resource URI. */
  name: string;
}

/**
 * Everything one governed call carries through the stages. Stages read what earlier
 * stages set and add their own part; none knows about another.
 */
export interface CallContext {
  readonly principal: Principal;
  readonly method: TargetMethod;
  /** The server the endpoint is scoped to (/mcp/<server>), or null for /mcp. */
  readonly scope: string | null;
  readonly target: CallTarget;
  /** Params to forward upstream, with Custos's own _meta keys removed. */
  params: Record<string, unknown>;
  readonly arguments: unknown;
  readonly argsHash: string;
  /** Length of the arguments' canonical JSON: what the call sends out. */
  readonly argsBytes?: number;
  readonly reasoning: unknown;
  readonly traceId: string | null;
  /** The agent's valid W3C traceparent, so exported spans nest under the agent's own. */
  readonly traceparent?: string | null;
  /** Wall-clock time the call arrived (ms) and a monotonic start (ns) for latency. */
  readonly time: number;
  readonly started: bigint;
  readonly signal: AbortSignal | undefined;
  /** Abort this call's request (and so its upstream request): containment cancels calls in flight. */
  readonly abort?: ((reason: unknown) => void) | undefined;
  readonly onProgress: ((progress: Progress) => void) | undefined;
  readonly onNotification:
    | ((method: string, params: Record<string, unknown> | undefined) => void)
    | undefined;

  // set by resolve
  upstream?: Upstream;
  /** The upstream's own name for the target (tool or prompt name, or resource URI). */
  upstreamName?: string;
  tool?: ToolDefinition;
  // set by authorize
  decision?: Decision;
  /** Hash of the policy set the decision came from. */
  policySetHash?: string;
  // set by approve
  /** The approval the call consumed, if any. */
  approvalId?: string;
  // set by inject
  /** Upstream credential headers from the vault: attached at forward, never logged or recorded. */
  credentials?: Readonly<Record<string, string>>;
  // set by forward
  result?: Record<string, unknown>;
}

/** A stage either lets the call go on or stops it with a reason the agent can act on. */
export type Verdict = { readonly stop: false } | Stop;

export interface Stop {
  readonly stop: true;
  readonly code: ErrorCode;
  readonly message: string;
  /** Policy ids and other evidence for the record. */
  readonly reasons: readonly string[];
  /** For approval outcomes: what the agent sees in `_meta["io.custos/approval"]`. */
  readonly approval?: Readonly<Record<string, unknown>>;
}

export const proceed: Verdict = Object.freeze({ stop: false });

export function stop(code: ErrorCode, message: string, reasons: readonly string[] = []): Stop {
  return { stop: true, code, message, reasons };
}

/** How a call ended, as the pipeline reports it to the protocol layer. */
export type CallOutcome =
  | { kind: 'executed'; result: Record<string, unknown> }
  | { kind: 'denied'; stop: Stop; policyIds: readonly string[] }
  | { kind: 'failed'; error: unknown };
