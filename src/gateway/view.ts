import type {
  Json,
  PromptDefinition,
  ResourceDefinition,
  ResourceTemplateDefinition,
  ToolDefinition,
  Upstream,
} from './upstream/types.js';

/** Where the gateway finds upstreams; the upstream registry satisfies it. */
export interface UpstreamDirectory {
  get(name: string): Upstream | undefined;
  list(): readonly Upstream[];
}

export type GatedKind = 'tool' | 'prompt' | 'resource' | 'resourceTemplate';

/**
 * Decides which upstream definitions agents may see (the vet capability's pin gate: a
 * definition that drifted from its approved pin is withheld). Without one, all are admitted.
 */
export interface DefinitionGate {
  admits(server: string, kind: GatedKind, definition: Json, instructions: string | undefined): boolean;
}

export interface Exposed<T> {
  /** The name the agent sees: the upstream's own, or "server.name" where names collide. */
  name: string;
  server: string;
  upstream: Upstream;
  definition: T;
}

interface Index {
  tools: Map<string, Exposed<ToolDefinition>>;
  prompts: Map<string, Exposed<PromptDefinition>>;
  toolList: Exposed<ToolDefinition>[];
  promptList: Exposed<PromptDefinition>[];
}

/**
 * The agent's view of the upstreams behind one endpoint: /mcp (all servers) or
 * /mcp/<server>. Names are prefixed with the server only where they collide; the
 * qualified "server.name" form is always accepted. Rebuilt when a catalog changes.
 */
export class CatalogView {
  private readonly indexes = new Map<string, Index>();

  constructor(
    private readonly upstreams: UpstreamDirectory,
    private readonly gate?: DefinitionGate,
  ) {}

  /** The upstream's definitions of one kind that the gate admits. */
  admitted<T extends Json>(upstream: Upstream, kind: GatedKind, list: readonly T[]): T[] {
    const gate = this.gate;
    if (gate === undefined) return [...list];
    const instructions = upstream.catalog()?.instructions;
    return list.filter((d) => gate.admits(upstream.name, kind, d, instructions));
  }

  /** Resources (or templates) of an upstream that agents may see. */
  resources(upstream: Upstream, key: 'resources' | 'resourceTemplates'): Json[] {
    const catalog = upstream.catalog();
    if (catalog === undefined) return [];
    return key === 'resources'
      ? this.admitted<ResourceDefinition>(upstream, 'resource', catalog.resources)
      : this.admitted<ResourceTemplateDefinition>(upstream, 'resourceTemplate', catalog.resourceTemplates);
  }

  /**
   * Whether an upstream behind the endpoint offers this tool or prompt but the gate withholds
   * it (it drifted from its approved pin): the call is denied as drift, not as unknown.
   */
  withheld(scope: string | null, name: string, kind: 'tool' | 'prompt'): boolean {
    if (this.gate === undefined) return false;
    const key = kind === 'tool' ? 'tools' : 'prompts';
    const dot = name.indexOf('.');
    const candidates: Array<[Upstream, string]> = this.servers(scope).map((u) => [u, name]);
    if (dot > 0) {
      const u = this.upstreams.get(name.slice(0, dot));
      if (u !== undefined && (scope === null || scope === u.name)) candidates.push([u, name.slice(dot + 1)]);
    }
    return candidates.some(([u, own]) => {
      const definition = u.catalog()?.[key].find((d) => d.name === own);
      return definition !== undefined && this.admitted(u, kind, [definition]).length === 0;
    });
  }

  /** Whether a resource URI is listed by an upstream behind the endpoint but withheld by the gate. */
  withheldResource(scope: string | null, uri: string): boolean {
    if (this.gate === undefined) return false;
    return this.servers(scope).some((u) => {
      const listed = u.catalog()?.resources.filter((r) => r.uri === uri) ?? [];
      return listed.length > 0 && this.admitted(u, 'resource', listed).length === 0;
    });
  }

  /** Drop cached indexes; call when any upstream's catalog changes. */
  invalidate(): void {
    this.indexes.clear();
  }

  /** Servers an endpoint covers. */
  servers(scope: string | null): Upstream[] {
    if (scope === null) return [...this.upstreams.list()];
    const one = this.upstreams.get(scope);
    return one === undefined ? [] : [one];
  }

  tools(scope: string | null): readonly Exposed<ToolDefinition>[] {
    return this.index(scope).toolList;
  }

  prompts(scope: string | null): readonly Exposed<PromptDefinition>[] {
    return this.index(scope).promptList;
  }

  resolveTool(scope: string | null, name: string): Exposed<ToolDefinition> | undefined {
    return this.index(scope).tools.get(name) ?? this.qualified(scope, name, 'tools');
  }

  resolvePrompt(scope: string | null, name: string): Exposed<PromptDefinition> | undefined {
    return this.index(scope).prompts.get(name) ?? this.qualified(scope, name, 'prompts');
  }

  /**
   * The upstream that serves a resource URI: the one that listed it, else the one whose
   * template it fits, else the only server behind the endpoint that offers resources.
   */
  resolveResource(scope: string | null, uri: string): Upstream | undefined {
    const servers = this.servers(scope).filter((u) => u.catalog()?.capabilities.resources !== undefined);
    const listed = servers.find((u) => this.resources(u, 'resources').some((r) => r.uri === uri));
    if (listed) return listed;
    const templated = servers.find((u) =>
      this.resources(u, 'resourceTemplates').some((t) => fitsTemplate(String(t.uriTemplate), uri)),
    );
    if (templated) return templated;
    return servers.length === 1 ? servers[0] : undefined;
  }

  private qualified<K extends 'tools' | 'prompts'>(
    scope: string | null,
    name: string,
    kind: K,
  ): Exposed<K extends 'tools' ? ToolDefinition : PromptDefinition> | undefined {
    const dot = name.indexOf('.');
    if (dot <= 0) return undefined;
    const server = name.slice(0, dot);
    const own = name.slice(dot + 1);
    if (scope !== null && scope !== server) return undefined;
    const upstream = this.upstreams.get(server);
    const definition = upstream?.catalog()?.[kind].find((d) => d.name === own);
    if (upstream === undefined || definition === undefined) return undefined;
    if (this.admitted(upstream, kind === 'tools' ? 'tool' : 'prompt', [definition]).length === 0)
      return undefined;
    return { name, server, upstream, definition } as Exposed<
      K extends 'tools' ? ToolDefinition : PromptDefinition
    >;
  }

  private index(scope: string | null): Index {
    const key = scope ?? '';
    let index = this.indexes.get(key);
    if (index === undefined) {
      index = buildIndex(this.servers(scope), this);
      this.indexes.set(key, index);
    }
    return index;
  }
}

function buildIndex(servers: Upstream[], view: CatalogView): Index {
  const tools = expose(servers, (u) => view.admitted(u, 'tool', u.catalog()?.tools ?? []));
  const prompts = expose(servers, (u) => view.admitted(u, 'prompt', u.catalog()?.prompts ?? []));
  return {
    tools: new Map(tools.map((t) => [t.name, t])),
    prompts: new Map(prompts.map((p) => [p.name, p])),
    toolList: tools,
    promptList: prompts,
  };
}

function expose<T extends { name: string }>(
  servers: Upstream[],
  list: (u: Upstream) => readonly T[],
): Exposed<T>[] {
  const count = new Map<string, number>();
  for (const u of servers) for (const d of list(u)) count.set(d.name, (count.get(d.name) ?? 0) + 1);
  const out: Exposed<T>[] = [];
  for (const u of servers) {
    for (const definition of list(u)) {
      const name = (count.get(definition.name) ?? 0) > 1 ? `${u.name}.${definition.name}` : definition.name;
      out.push({ name, server: u.name, upstream: u, definition });
    }
  }
  return out;
}

/** Whether a URI fits an RFC 6570 template, matching each {expression} loosely. */
function fitsTemplate(template: string, uri: string): boolean {
  const pattern = template
    .split(/\{[^}]*\}/)
    .map((literal) => literal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.+');
  return new RegExp(`^${pattern}$`).test(uri);
}
