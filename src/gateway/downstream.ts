import { canonicalJson, sha256Hex } from '../core/canonical.js';
import type { Clock } from '../core/clock.js';
import { isCustosError } from '../core/errors.js';
import type { Principal } from '../identity/index.js';
import { taskAllows, taskReachesServer } from '../identity/index.js';
import type { CallContext, CallOutcome, CallTarget, TargetMethod } from './context.js';
import type { Pipeline } from './pipeline.js';
import {
  type Json,
  latestLegacyVersion,
  legacyVersions,
  metaKeys,
  metaOf,
  modernVersions,
  type RequestId,
  type RpcNotification,
  type RpcRequest,
  type RpcResponse,
  result,
  rpcCodes,
  rpcError,
} from './protocol.js';
import { type PolicyPort, policyPrincipal, policyTask } from './stages/authorize.js';
import { UpstreamRpcError } from './upstream/types.js';
import type { CatalogView } from './view.js';

export type Era = 'legacy' | 'modern';

/** What one downstream client negotiated; a legacy session keeps it, a modern request carries it. */
export interface ClientState {
  era: Era;
  protocolVersion: string;
  /** The endpoint's server (/mcp/<server>) or null for /mcp. */
  scope: string | null;
  /** Minimum level of upstream log messages to pass on, or null for none. */
  logLevel: string | null;
}

/** The reply channel of one request: notifications related to it travel here. */
export interface Exchange {
  readonly signal: AbortSignal;
  /** Abort this request (containment cancels calls in flight this way). */
  abort?(reason: unknown): void;
  /** The W3C traceparent header of the HTTP request, if any. */
  readonly traceparent: string | undefined;
  notify(message: RpcNotification): void;
}

export const serverInfo = { name: 'custos', title: 'Custos gateway', version: '0.1.0' } as const;

/** Results the 2026-07-28 revision requires to carry ttlMs and cacheScope. */
const cacheable = new Set([
  'tools/list',
  'prompts/list',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'server/discover',
]);

const logLevels = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

/** Keys of params._meta that belong to Custos or to the modern envelope and are not forwarded. */
const strippedMeta = new Set<string>([
  metaKeys.reasoning,
  metaKeys.protocolVersion,
  metaKeys.clientCapabilities,
  metaKeys.clientInfo,
  metaKeys.logLevel,
]);

export interface DownstreamDeps {
  clock: Clock;
  view: CatalogView;
  pipeline: Pipeline;
  policy: PolicyPort;
  instructions?: string;
}

/**
 * Answers MCP requests from agents. Methods that act on one upstream target run the
 * whole pipeline; listings show only what the agent may use; everything else is
 * answered by Custos itself. Transport concerns (HTTP, sessions, SSE) live elsewhere.
 */
export class Downstream {
  constructor(private readonly deps: DownstreamDeps) {}

  /** The capabilities Custos offers behind an endpoint: the union of its upstreams'. */
  capabilities(scope: string | null): Json {
    const caps: Json = { tools: { listChanged: true } };
    for (const upstream of this.deps.view.servers(scope)) {
      const c = upstream.catalog()?.capabilities ?? {};
      if (c.prompts !== undefined) caps.prompts = { listChanged: true };
      if (c.resources !== undefined) {
        const subscribe =
          (c.resources as Json).subscribe === true ||
          (caps.resources as Json | undefined)?.subscribe === true;
        caps.resources = { listChanged: true, ...(subscribe ? { subscribe: true } : {}) };
      }
      if (c.completions !== undefined) caps.completions = {};
      if (c.logging !== undefined) caps.logging = {};
    }
    return caps;
  }

  /** Legacy handshake: pick the protocol version and describe this endpoint. */
  initialize(request: RpcRequest, scope: string | null): { response: RpcResponse; state: ClientState } {
    const asked = request.params?.protocolVersion;
    const version =
      typeof asked === 'string' && (legacyVersions as readonly string[]).includes(asked)
        ? asked
        : latestLegacyVersion;
    const body: Json = { protocolVersion: version, capabilities: this.capabilities(scope), serverInfo };
    if (this.deps.instructions) body.instructions = this.deps.instructions;
    return {
      response: result(request.id, body),
      state: { era: 'legacy', protocolVersion: version, scope, logLevel: null },
    };
  }

  /** Answer one request. Never throws for an expected failure: the answer is a JSON-RPC message. */
  async handle(
    principal: Principal,
    state: ClientState,
    request: RpcRequest,
    exchange: Exchange,
  ): Promise<RpcResponse> {
    const started = process.hrtime.bigint();
    const params = request.params ?? {};
    try {
      switch (request.method) {
        case 'ping':
          return state.era === 'legacy' ? result(request.id, {}) : methodNotFound(request);
        case 'server/discover':
          return result(request.id, {
            ttlMs: 0,
            cacheScope: 'private',
            supportedVersions: [...modernVersions],
            capabilities: this.capabilities(state.scope),
            ...(this.deps.instructions ? { instructions: this.deps.instructions } : {}),
            _meta: { [metaKeys.serverInfo]: serverInfo },
          });
        case 'logging/setLevel': {
          const level = params.level;
          if (typeof level !== 'string' || !logLevels.includes(level)) {
            return rpcError(
              request.id,
              rpcCodes.invalidParams,
              `level must be one of ${logLevels.join(', ')}`,
            );
          }
          state.logLevel = level;
          await this.forEachUpstream(state.scope, (u) =>
            u.request('logging/setLevel', { level }).then(() => {}),
          );
          return result(request.id, {});
        }
        case 'tools/list':
          return this.finish(
            state,
            request.id,
            await this.listTools(principal, state, started),
            request.method,
          );
        case 'prompts/list':
          return this.finish(
            state,
            request.id,
            await this.listPrompts(principal, state, started),
            request.method,
          );
        case 'resources/list':
          return this.finish(
            state,
            request.id,
            await this.listResources(principal, state, started, 'resources'),
            request.method,
          );
        case 'resources/templates/list':
          return this.finish(
            state,
            request.id,
            await this.listResources(principal, state, started, 'resourceTemplates'),
            request.method,
          );
        case 'tools/call':
        case 'prompts/get':
        case 'resources/read':
        case 'resources/subscribe':
        case 'completion/complete':
          return await this.call(principal, state, request, exchange, started);
        case 'resources/unsubscribe': {
          const uri = params.uri;
          const upstream =
            typeof uri === 'string' ? this.deps.view.resolveResource(state.scope, uri) : undefined;
          if (upstream === undefined) return rpcError(request.id, rpcCodes.invalidParams, 'unknown resource');
          return result(request.id, await upstream.request('resources/unsubscribe', { uri }));
        }
        default:
          return methodNotFound(request);
      }
    } catch (error) {
      return this.failure(request.id, error);
    }
  }

  private async call(
    principal: Principal,
    state: ClientState,
    request: RpcRequest,
    exchange: Exchange,
    started: bigint,
  ): Promise<RpcResponse> {
    const method = request.method as TargetMethod;
    const params = request.params ?? {};
    const target = targetOf(method, params);
    if (target === undefined)
      return rpcError(request.id, rpcCodes.invalidParams, `${method}: missing name or uri`);
    const meta = metaOf(params);
    const progressToken = meta?.progressToken;
    const args =
      method === 'tools/call' || method === 'prompts/get'
        ? (params.arguments ?? {})
        : paramsWithoutMeta(params);
    const canonical = canonicalJson(args ?? null);
    const ctx: CallContext = {
      principal,
      method,
      scope: state.scope,
      target,
      params: forwardable(params),
      arguments: args,
      argsHash: sha256Hex(canonical),
      argsBytes: canonical.length,
      reasoning: meta?.[metaKeys.reasoning],
      traceId: traceIdOf(meta, exchange),
      traceparent: traceparentOf(meta, exchange),
      time: this.deps.clock.now(),
      started,
      signal: exchange.signal,
      abort: exchange.abort,
      onProgress:
        typeof progressToken === 'string' || typeof progressToken === 'number'
          ? (p) =>
              exchange.notify({
                jsonrpc: '2.0',
                method: 'notifications/progress',
                params: { progressToken, ...p },
              })
          : undefined,
      onNotification: (m, p) => {
        if (m === 'notifications/message' && !passesLevel(state.logLevel, p?.level)) return;
        exchange.notify(
          p === undefined ? { jsonrpc: '2.0', method: m } : { jsonrpc: '2.0', method: m, params: p },
        );
      },
    };
    const outcome = await this.deps.pipeline.run(ctx);
    return this.answer(state, request.id, method, outcome);
  }

  private answer(state: ClientState, id: RequestId, method: TargetMethod, outcome: CallOutcome): RpcResponse {
    if (outcome.kind === 'executed') return this.finish(state, id, outcome.result, method);
    if (outcome.kind === 'failed') return this.failure(id, outcome.error);
    const approval = outcome.stop.approval;
    const denial = {
      code: outcome.stop.code,
      message: outcome.stop.message,
      ...(outcome.policyIds.length > 0 ? { policyIds: outcome.policyIds } : {}),
      ...(approval === undefined ? {} : { approval }),
    };
    // A refused tool call is a tool result the model can read and act on, not a protocol failure.
    if (method === 'tools/call') {
      const { approval: _, ...plain } = denial;
      return this.finish(state, id, {
        content: [
          {
            type: 'text',
            text:
              denial.code === 'approval_pending'
                ? `Custos has not run this call yet: ${denial.message} [${denial.code}]`
                : `Custos refused this call: ${denial.message} [${denial.code}]`,
          },
        ],
        isError: true,
        _meta: {
          'io.custos/denial': plain,
          ...(approval === undefined ? {} : { 'io.custos/approval': approval }),
        },
      });
    }
    const code = outcome.stop.code.startsWith('unknown_') ? rpcCodes.invalidParams : rpcCodes.denied;
    return rpcError(id, code, denial.message, denial);
  }

  /** Shape a result for the client's era: modern results say they are complete and who answered. */
  private finish(state: ClientState, id: RequestId, body: Json, method?: string): RpcResponse {
    if (state.era === 'legacy') return result(id, body);
    const meta = { ...((body._meta as Json | undefined) ?? {}), [metaKeys.serverInfo]: serverInfo };
    // What an agent sees depends on its identity and on policy that may change at any time.
    const cache = method !== undefined && cacheable.has(method) ? { ttlMs: 0, cacheScope: 'private' } : {};
    return result(id, { resultType: 'complete', ...body, ...cache, _meta: meta });
  }

  private failure(id: RequestId, error: unknown): RpcResponse {
    if (error instanceof UpstreamRpcError) return rpcError(id, error.rpcCode, error.message, error.data);
    if (isCustosError(error) && error.code === 'upstream_unavailable') {
      return rpcError(id, rpcCodes.upstreamUnavailable, error.message, { code: error.code });
    }
    if (isCustosError(error) && error.code !== 'internal') {
      return rpcError(id, rpcCodes.internalError, error.message, { code: error.code });
    }
    return rpcError(id, rpcCodes.internalError, 'internal error', { code: 'internal' });
  }

  private async listTools(principal: Principal, state: ClientState, started: bigint): Promise<Json> {
    const pp = policyPrincipal({ principal });
    const pt = policyTask({ principal });
    const tools = this.deps.view
      .tools(state.scope)
      .filter(
        (t) =>
          taskAllows(principal.task, t.server, t.definition.name) &&
          this.deps.policy.canSee(pp, pt, {
            server: t.server,
            kind: 'tool',
            name: t.definition.name,
            ...(t.definition.annotations ? { annotations: t.definition.annotations } : {}),
          }),
      )
      .map((t) => (t.name === t.definition.name ? t.definition : { ...t.definition, name: t.name }));
    await this.deps.pipeline.recordListing(
      principal,
      'tools/list',
      state.scope,
      tools.length,
      this.deps.clock.now(),
      started,
    );
    return { tools };
  }

  private async listPrompts(principal: Principal, state: ClientState, started: bigint): Promise<Json> {
    const pp = policyPrincipal({ principal });
    const pt = policyTask({ principal });
    const prompts = this.deps.view
      .prompts(state.scope)
      .filter(
        (p) =>
          taskReachesServer(principal.task, p.server) &&
          this.deps.policy.canSee(pp, pt, { server: p.server, kind: 'prompt', name: p.definition.name }),
      )
      .map((p) => (p.name === p.definition.name ? p.definition : { ...p.definition, name: p.name }));
    await this.deps.pipeline.recordListing(
      principal,
      'prompts/list',
      state.scope,
      prompts.length,
      this.deps.clock.now(),
      started,
    );
    return { prompts };
  }

  private async listResources(
    principal: Principal,
    state: ClientState,
    started: bigint,
    key: 'resources' | 'resourceTemplates',
  ): Promise<Json> {
    const pp = policyPrincipal({ principal });
    const pt = policyTask({ principal });
    const out: Json[] = [];
    for (const upstream of this.deps.view.servers(state.scope)) {
      if (!taskReachesServer(principal.task, upstream.name)) continue;
      for (const item of this.deps.view.resources(upstream, key)) {
        const name = 'uri' in item ? String(item.uri) : String(item.uriTemplate);
        if (this.deps.policy.canSee(pp, pt, { server: upstream.name, kind: 'resource', name }))
          out.push(item);
      }
    }
    const method = key === 'resources' ? 'resources/list' : 'resources/templates/list';
    await this.deps.pipeline.recordListing(
      principal,
      method,
      state.scope,
      out.length,
      this.deps.clock.now(),
      started,
    );
    return { [key]: out };
  }

  private async forEachUpstream(
    scope: string | null,
    action: (u: NonNullable<ReturnType<CatalogView['servers']>[number]>) => Promise<void>,
  ): Promise<void> {
    await Promise.all(
      this.deps.view
        .servers(scope)
        .filter((u) => u.status() === 'ready' && u.catalog()?.capabilities.logging !== undefined)
        .map((u) => action(u).catch(() => {})),
    );
  }
}

function methodNotFound(request: RpcRequest): RpcResponse {
  return rpcError(request.id, rpcCodes.methodNotFound, `method not found: ${request.method}`);
}

function targetOf(method: TargetMethod, params: Json): CallTarget | undefined {
  if (method === 'tools/call')
    return typeof params.name === 'string' ? { kind: 'tool', name: params.name } : undefined;
  if (method === 'prompts/get')
    return typeof params.name === 'string' ? { kind: 'prompt', name: params.name } : undefined;
  if (method === 'completion/complete') {
    const ref = params.ref as Json | undefined;
    if (ref?.type === 'ref/prompt' && typeof ref.name === 'string') return { kind: 'prompt', name: ref.name };
    if (ref?.type === 'ref/resource' && typeof ref.uri === 'string')
      return { kind: 'resource', name: ref.uri };
    return undefined;
  }
  return typeof params.uri === 'string' ? { kind: 'resource', name: params.uri } : undefined;
}

/** Params without Custos's own and the envelope's _meta keys. */
function forwardable(params: Json): Json {
  const meta = metaOf(params);
  if (meta === undefined) return params;
  const kept: Json = {};
  let changed = false;
  for (const [k, v] of Object.entries(meta)) {
    if (strippedMeta.has(k)) changed = true;
    else kept[k] = v;
  }
  if (!changed) return params;
  const { _meta: _, ...rest } = params;
  return Object.keys(kept).length === 0 ? rest : { ...rest, _meta: kept };
}

function paramsWithoutMeta(params: Json): Json {
  const { _meta: _, ...rest } = params;
  return rest;
}

function traceIdOf(meta: Json | undefined, exchange: Exchange): string | null {
  const header =
    exchange.traceparent ?? (typeof meta?.traceparent === 'string' ? meta.traceparent : undefined);
  const parts = header?.split('-');
  return parts?.length === 4 && /^[0-9a-f]{32}$/.test(parts[1] ?? '') ? (parts[1] as string) : null;
}

/** The traceparent (header, else _meta) when it is a valid W3C version-00 value with non-zero ids. */
function traceparentOf(meta: Json | undefined, exchange: Exchange): string | null {
  const header =
    exchange.traceparent ?? (typeof meta?.traceparent === 'string' ? meta.traceparent : undefined);
  if (header === undefined) return null;
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(header.trim());
  if (match === null || /^0+$/.test(match[1] ?? '') || /^0+$/.test(match[2] ?? '')) return null;
  return header.trim();
}

/** Whether a log message at `level` passes a client's minimum level (null: the client asked for none). */
export function passesLevel(min: string | null, level: unknown): boolean {
  if (min === null) return false;
  const index = logLevels.indexOf(String(level));
  return index === -1 || index >= logLevels.indexOf(min);
}
