import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as Client1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as Transport1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

/**
 * The official MCP SDK clients an agent may use, behind one small interface:
 * the 2.x client on 2025-11-25 sessions ("legacy"), the 2.x client negotiating
 * 2026-07-28 ("modern"), and the 1.x client.
 */
export type Flavour = 'sdk2-legacy' | 'sdk2-modern' | 'sdk1';
export const flavours: readonly Flavour[] = ['sdk2-legacy', 'sdk2-modern', 'sdk1'];

export interface ToolResult {
  content?: Array<{ type: string; text?: string }>;
  isError?: boolean;
  _meta?: Record<string, unknown>;
  [key: string]: unknown;
}

/** What Custos tells an agent about a call held for approval, in `_meta["io.custos/approval"]`. */
export interface ApprovalMeta {
  id: string;
  status: string;
  retryAfterSeconds?: number;
  callHash?: string;
  reason?: string;
}

/** The approval a result names, if Custos held the call for one. */
export function approvalOf(result: ToolResult): ApprovalMeta | undefined {
  return result._meta?.['io.custos/approval'] as ApprovalMeta | undefined;
}

/** The code of Custos's refusal in `_meta["io.custos/denial"]`, if it refused the call. */
export function denialCodeOf(result: ToolResult): string | undefined {
  return (result._meta?.['io.custos/denial'] as { code?: string } | undefined)?.code;
}

export interface CallOptions {
  onprogress?: (progress: { progress: number; total?: number }) => void;
  signal?: AbortSignal;
}

export interface AgentClient {
  readonly flavour: Flavour;
  protocolVersion(): string | undefined;
  listTools(): Promise<Array<{ name: string; annotations?: Record<string, unknown> }>>;
  callTool(
    name: string,
    args?: Record<string, unknown>,
    meta?: Record<string, unknown>,
    options?: CallOptions,
  ): Promise<ToolResult>;
  /**
   * Called on notifications/tools/list_changed: from a legacy session's GET stream, or
   * (modern) from a subscriptions/listen stream this opens and awaits the acknowledgement of.
   */
  onToolsChanged(handler: () => void): Promise<void>;
  close(): Promise<void>;
}

/** Connect an agent to a Custos MCP endpoint with a bearer token (and any extra headers). */
export async function connectAgent(
  flavour: Flavour,
  url: string,
  token: string,
  headers: Record<string, string> = {},
): Promise<AgentClient> {
  const requestInit = { headers: { authorization: `Bearer ${token}`, ...headers } };
  if (flavour === 'sdk1') {
    const client = new Client1({ name: `e2e-${flavour}`, version: '1.0.0' });
    await client.connect(new Transport1(new URL(url), { requestInit }));
    return {
      flavour,
      protocolVersion: () => (client.transport as Transport1 | undefined)?.protocolVersion,
      listTools: async () => (await client.listTools()).tools,
      callTool: async (name, args = {}, meta, options = {}) =>
        (await client.callTool(
          { name, arguments: args, ...(meta ? { _meta: meta } : {}) },
          undefined,
          options,
        )) as ToolResult,
      onToolsChanged: async (handler) =>
        client.setNotificationHandler(ToolListChangedNotificationSchema, handler),
      close: () => client.close(),
    };
  }
  const client = new Client(
    { name: `e2e-${flavour}`, version: '1.0.0' },
    flavour === 'sdk2-modern' ? { versionNegotiation: { mode: 'auto' } } : {},
  );
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit }));
  return {
    flavour,
    protocolVersion: () => client.getNegotiatedProtocolVersion(),
    listTools: async () => (await client.listTools()).tools,
    callTool: async (name, args = {}, meta, options = {}) =>
      (await client.callTool(
        { name, arguments: args, ...(meta ? { _meta: meta } : {}) },
        options,
      )) as ToolResult,
    onToolsChanged: async (handler) => {
      client.setNotificationHandler('notifications/tools/list_changed', handler);
      if (flavour === 'sdk2-modern') await client.listen({ toolsListChanged: true });
    },
    close: () => client.close(),
  };
}

/** The text of a tool result's content. */
export function textOf(result: ToolResult): string {
  return (result.content ?? []).map((c) => c.text ?? '').join('\n');
}
