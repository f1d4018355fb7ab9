/**
 * The contract between the gateway and the upstream MCP servers it governs. Results and
 * definitions pass through as plain JSON objects: Custos forwards what the upstream said,
 * unvalidated beyond JSON-RPC framing, so newer fields survive the trip.
 */
export type Json = Record<string, unknown>;

export interface ToolDefinition extends Json {
  name: string;
  description?: string;
  inputSchema?: Json;
  annotations?: {
    readOnlyHint?: boolean;
    destructiveHint?: boolean;
    idempotentHint?: boolean;
    openWorldHint?: boolean;
    [key: string]: unknown;
  };
}

export interface PromptDefinition extends Json {
  name: string;
}

export interface ResourceDefinition extends Json {
  uri: string;
  name?: string;
}

export interface ResourceTemplateDefinition extends Json {
  uriTemplate: string;
  name?: string;
}

/** What an upstream offers, as last listed. */
export interface UpstreamCatalog {
  serverInfo: Json;
  capabilities: Json;
  instructions?: string;
  tools: readonly ToolDefinition[];
  prompts: readonly PromptDefinition[];
  resources: readonly ResourceDefinition[];
  resourceTemplates: readonly ResourceTemplateDefinition[];
}

export type UpstreamStatus = 'starting' | 'ready' | 'restarting' | 'failed' | 'closed';

export interface Progress {
  progress: number;
  total?: number;
  message?: string;
  /**
   * The caller's own token from `params._meta.progressToken`, when it sent one. Custos
   * sends the upstream a token of its own and maps notifications back to this one.
   */
  progressToken?: string | number;
}

export interface UpstreamRequestOptions {
  signal?: AbortSignal;
  /** Progress notifications for this request, already mapped back to the caller. */
  onProgress?: (progress: Progress) => void;
  /**
   * Other notifications the upstream relates to this request (e.g. notifications/message).
   * Called for notifications on the request's own Streamable HTTP response stream (2025-era
   * HTTP sessions); stdio and the SDK path cannot tell, so there they arrive as
   * UpstreamNotification, as they do here when this is not given.
   */
  onNotification?: (method: string, params: Json | undefined) => void;
  /**
   * Credential headers from the vault for this request (HTTP upstreams); they override any
   * header of the same name and are never logged.
   */
  headers?: Readonly<Record<string, string>>;
  /** Overrides the server's configured timeout; the whole request, progress does not extend it. */
  timeoutMs?: number;
}

/** A notification from the upstream not tied to one request. */
export interface UpstreamNotification {
  server: string;
  method: string;
  params: Json | undefined;
}

/** The JSON-RPC error an upstream answered with, forwarded as it is. */
export class UpstreamRpcError extends Error {
  constructor(
    readonly rpcCode: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'UpstreamRpcError';
  }
}

export interface Upstream {
  readonly name: string;
  readonly transport: 'stdio' | 'http';
  status(): UpstreamStatus;
  /** The cached catalog, or undefined before the first successful listing. */
  catalog(): UpstreamCatalog | undefined;
  /**
   * Send one request and resolve with the upstream's raw result object. Rejects with
   * UpstreamRpcError for a JSON-RPC error answer, or CustosError('upstream_unavailable')
   * when the upstream cannot be reached, times out or the signal aborts.
   */
  request(method: string, params: Json | undefined, options?: UpstreamRequestOptions): Promise<Json>;
  /** Send a notification (e.g. notifications/roots/list_changed); best effort. */
  notify(method: string, params?: Json): Promise<void>;
}

/** The parts of a catalog that list separately (resources include resource templates). */
export type CatalogPart = 'tools' | 'prompts' | 'resources';

/** A catalog was (re)listed: after each (re)connection, and on a list_changed notification. */
export interface CatalogChange {
  server: string;
  parts: readonly CatalogPart[];
  catalog: UpstreamCatalog;
}

export interface StatusChange {
  server: string;
  status: UpstreamStatus;
  /** Why the upstream left 'ready' or failed to reach it, without secrets. */
  reason?: string;
}

export type Unsubscribe = () => void;

/** The subset of pino's logger the upstream layer uses. */
export interface UpstreamLogger {
  debug?(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** An upstream with its lifecycle: what the registry holds and hands out. */
export interface ManagedUpstream extends Upstream {
  /** Connect (or spawn) and list the catalog; resolves after the first attempt, never rejects. */
  start(): Promise<void>;
  /** Stop supervising, fail in-flight requests, and end the connection (and child process). */
  close(): Promise<void>;
  /** Resolves true once ready, false when timeoutMs passes or the upstream closes first. */
  waitReady(timeoutMs: number): Promise<boolean>;
  /** The last connection or listing failure, for diagnostics. */
  lastError(): string | undefined;
  onNotification(listener: (notification: UpstreamNotification) => void): Unsubscribe;
  onCatalogChanged(listener: (change: CatalogChange) => void): Unsubscribe;
  onStatusChanged(listener: (change: StatusChange) => void): Unsubscribe;
}
