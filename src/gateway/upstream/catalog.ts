import { type Client, ProtocolError, ProtocolErrorCode } from '@modelcontextprotocol/client';
import { z } from 'zod';
import { CustosError } from '../../core/errors.js';
import type {
  CatalogPart,
  Json,
  PromptDefinition,
  ResourceDefinition,
  ResourceTemplateDefinition,
  ToolDefinition,
  UpstreamCatalog,
  UpstreamLogger,
} from './types.js';

/** Any JSON object: results pass through with every field the upstream sent. */
export const anyResult = z.looseObject({});

/** A server that keeps handing out cursors is broken or hostile; stop well before memory is. */
const maxPages = 1000;

export function isJson(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

interface ListContext {
  client: Client;
  server: string;
  timeoutMs: number;
  logger: UpstreamLogger;
}

/** Walk every page of one list method, following nextCursor, and keep the well-formed items. */
async function listAll(
  context: ListContext,
  method: string,
  key: string,
  isItem: (item: Json) => boolean,
): Promise<Json[]> {
  const items: Json[] = [];
  const seen = new Set<string>();
  let cursor: string | undefined;
  for (let page = 0; page < maxPages; page++) {
    const result = await context.client.request(
      cursor === undefined ? { method } : { method, params: { cursor } },
      anyResult,
      { timeout: context.timeoutMs },
    );
    const list = result[key];
    if (!Array.isArray(list)) {
      throw new CustosError(
        'upstream_error',
        `upstream "${context.server}" answered ${method} without "${key}"`,
      );
    }
    for (const item of list) {
      if (isJson(item) && isItem(item)) items.push(item);
      else
        context.logger.warn({ server: context.server, method, item }, 'ignoring a malformed catalog entry');
    }
    const next = result.nextCursor;
    if (typeof next !== 'string') return items;
    if (seen.has(next)) {
      throw new CustosError('upstream_error', `upstream "${context.server}" repeated cursor in ${method}`);
    }
    seen.add(next);
    cursor = next;
  }
  throw new CustosError(
    'upstream_error',
    `upstream "${context.server}" returned more than ${maxPages} pages of ${method}`,
  );
}

const named = (item: Json) => typeof item.name === 'string';
const withUri = (item: Json) => typeof item.uri === 'string';
const withTemplate = (item: Json) => typeof item.uriTemplate === 'string';

/** The catalog of a freshly connected upstream before anything is listed. */
export function emptyCatalog(client: Client): UpstreamCatalog {
  const instructions = client.getInstructions();
  return {
    serverInfo: { ...(client.getServerVersion() ?? {}) },
    capabilities: { ...(client.getServerCapabilities() ?? {}) },
    ...(instructions === undefined ? {} : { instructions }),
    tools: [],
    prompts: [],
    resources: [],
    resourceTemplates: [],
  };
}

/**
 * List the given parts of the catalog and return a new, frozen catalog with them replaced.
 * Parts whose capability the server does not declare stay empty.
 */
export async function listCatalogParts(
  context: ListContext,
  base: UpstreamCatalog,
  parts: readonly CatalogPart[],
): Promise<UpstreamCatalog> {
  const capabilities = base.capabilities;
  const next: UpstreamCatalog = { ...base };
  if (parts.includes('tools')) {
    next.tools = capabilities.tools
      ? ((await listAll(context, 'tools/list', 'tools', named)) as ToolDefinition[])
      : [];
  }
  if (parts.includes('prompts')) {
    next.prompts = capabilities.prompts
      ? ((await listAll(context, 'prompts/list', 'prompts', named)) as PromptDefinition[])
      : [];
  }
  if (parts.includes('resources')) {
    if (capabilities.resources) {
      next.resources = (await listAll(
        context,
        'resources/list',
        'resources',
        withUri,
      )) as ResourceDefinition[];
      next.resourceTemplates = (await listTemplates(context)) as ResourceTemplateDefinition[];
    } else {
      next.resources = [];
      next.resourceTemplates = [];
    }
  }
  return deepFreeze(next);
}

/** Some servers declare resources but never implemented templates: treat "method not found" as none. */
async function listTemplates(context: ListContext): Promise<Json[]> {
  try {
    return await listAll(context, 'resources/templates/list', 'resourceTemplates', withTemplate);
  } catch (error) {
    if (ProtocolError.isInstance(error) && error.code === ProtocolErrorCode.MethodNotFound) return [];
    throw error;
  }
}
