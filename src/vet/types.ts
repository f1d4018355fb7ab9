/**
 * What the vetting capability works on: a snapshot of one MCP server's surface (what the
 * model reads), and findings about it. Definitions are plain JSON as the server sent them.
 */
export type Json = Record<string, unknown>;

export interface ServerSnapshot {
  /** The name the server has in custos.yaml (or the name given on the command line). */
  name: string;
  serverInfo: Json;
  instructions?: string;
  tools: readonly Json[];
  prompts: readonly Json[];
  resources: readonly Json[];
  resourceTemplates: readonly Json[];
}

export type Severity = 'block' | 'warn' | 'info';

export type DefinitionKind = 'tool' | 'prompt' | 'resource' | 'resourceTemplate' | 'instructions';

export interface Location {
  server: string;
  kind: DefinitionKind;
  /** Tool or prompt name, resource URI or template; the server name for instructions. */
  name: string;
  /** Where in the definition: "description", "inputSchema.properties.path.description", ... */
  field: string;
}

export interface Evidence {
  /** The exact text matched, as it appears in the field (hidden characters included). */
  text: string;
  /** Offsets into the field's text, in UTF-16 code units, end exclusive. */
  start: number;
  end: number;
}

export interface Finding {
  rule: string;
  severity: Severity;
  message: string;
  /** OWASP MCP Top 10 ids the finding maps to (e.g. "MCP03"). */
  owasp: readonly string[];
  location: Location;
  evidence: Evidence;
  /** RFC 8785 canonical SHA-256 of the definition the finding is about. */
  definitionHash: string;
  /** Set when a suppression matched: the finding is reported but does not count. */
  suppressed?: { reason: string; expires: string };
}

/** The other servers an agent can reach next to the one being vetted: name to tool names. */
export type Neighbours = ReadonlyMap<string, readonly string[]>;
