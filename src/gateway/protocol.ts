/**
 * MCP wire constants and JSON-RPC framing for the downstream endpoint. Custos speaks
 * two eras of the protocol: the session-based "legacy" revisions (2024-11-05 through
 * 2025-11-25, with initialize and Mcp-Session-Id) and the per-request "modern"
 * revision 2026-07-28 (server/discover, context in params._meta, no sessions).
 */

export const legacyVersions = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'] as const;
export const modernVersions = ['2026-07-28'] as const;
export const latestLegacyVersion = legacyVersions[0];

export const metaKeys = {
  protocolVersion: 'io.modelcontextprotocol/protocolVersion',
  clientCapabilities: 'io.modelcontextprotocol/clientCapabilities',
  clientInfo: 'io.modelcontextprotocol/clientInfo',
  serverInfo: 'io.modelcontextprotocol/serverInfo',
  logLevel: 'io.modelcontextprotocol/logLevel',
  subscriptionId: 'io.modelcontextprotocol/subscriptionId',
  traceparent: 'io.modelcontextprotocol/traceparent',
  /** The agent's own account of why it makes this call; recorded, never forwarded. */
  reasoning: 'io.custos/reasoning',
} as const;

/** JSON-RPC and MCP error codes Custos answers with. */
export const rpcCodes = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
  /** Custos: the call was refused by governance (policy, scope, budget, revocation). */
  denied: -32003,
  /** Custos: the upstream could not be reached or did not answer. */
  upstreamUnavailable: -32004,
  headerMismatch: -32020,
  unsupportedProtocolVersion: -32022,
} as const;

export type RequestId = string | number;
export type Json = Record<string, unknown>;

export interface RpcRequest {
  jsonrpc: '2.0';
  id: RequestId;
  method: string;
  params?: Json;
}

export interface RpcNotification {
  jsonrpc: '2.0';
  method: string;
  params?: Json;
}

export interface RpcResult {
  jsonrpc: '2.0';
  id: RequestId;
  result: Json;
}

export interface RpcError {
  jsonrpc: '2.0';
  id: RequestId | null;
  error: { code: number; message: string; data?: unknown };
}

export type RpcResponse = RpcResult | RpcError;
export type RpcMessage = RpcRequest | RpcNotification | RpcResponse;

export function result(id: RequestId, value: Json): RpcResult {
  return { jsonrpc: '2.0', id, result: value };
}

export function rpcError(id: RequestId | null, code: number, message: string, data?: unknown): RpcError {
  return { jsonrpc: '2.0', id, error: data === undefined ? { code, message } : { code, message, data } };
}

export function notification(method: string, params?: Json): RpcNotification {
  return params === undefined ? { jsonrpc: '2.0', method } : { jsonrpc: '2.0', method, params };
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export type Classified =
  | { kind: 'request'; message: RpcRequest }
  | { kind: 'notification'; message: RpcNotification }
  | { kind: 'response'; message: RpcResponse }
  | { kind: 'invalid'; error: RpcError };

/** Check the JSON-RPC 2.0 framing of one parsed message. */
export function classify(body: unknown): Classified {
  if (Array.isArray(body)) {
    return {
      kind: 'invalid',
      error: rpcError(null, rpcCodes.invalidRequest, 'JSON-RPC batches are not supported'),
    };
  }
  if (!isObject(body) || body.jsonrpc !== '2.0') {
    return { kind: 'invalid', error: rpcError(null, rpcCodes.invalidRequest, 'not a JSON-RPC 2.0 message') };
  }
  const id = body.id;
  const validId = typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
  if (body.params !== undefined && !isObject(body.params)) {
    return {
      kind: 'invalid',
      error: rpcError(
        validId ? (id as RequestId) : null,
        rpcCodes.invalidRequest,
        'params must be an object',
      ),
    };
  }
  if (typeof body.method === 'string') {
    if (id === undefined) return { kind: 'notification', message: body as unknown as RpcNotification };
    if (!validId)
      return {
        kind: 'invalid',
        error: rpcError(null, rpcCodes.invalidRequest, 'id must be a string or number'),
      };
    return { kind: 'request', message: body as unknown as RpcRequest };
  }
  if (validId && ('result' in body || 'error' in body)) {
    return { kind: 'response', message: body as unknown as RpcResponse };
  }
  return {
    kind: 'invalid',
    error: rpcError(validId ? (id as RequestId) : null, rpcCodes.invalidRequest, 'no method'),
  };
}

export function metaOf(params: Json | undefined): Json | undefined {
  const meta = params?._meta;
  return isObject(meta) ? meta : undefined;
}

export { isObject };
