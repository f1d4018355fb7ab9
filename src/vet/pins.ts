import { canonicalHash } from '../core/canonical.js';
import type { DefinitionKind, Json, ServerSnapshot } from './types.js';

/**
 * What a pin covers for each kind of definition: everything the model reads or that shapes
 * a call. Other fields (_meta, icons, execution hints) change without being drift.
 */
const pinnedFields: Record<Exclude<DefinitionKind, 'instructions'>, readonly string[]> = {
  tool: ['name', 'title', 'description', 'inputSchema', 'outputSchema', 'annotations'],
  prompt: ['name', 'title', 'description', 'arguments'],
  resource: ['uri', 'name', 'title', 'description', 'mimeType'],
  resourceTemplate: ['uriTemplate', 'name', 'title', 'description', 'mimeType'],
};

function pick(definition: Json, fields: readonly string[]): Json {
  const out: Json = {};
  for (const f of fields) if (definition[f] !== undefined) out[f] = definition[f];
  return out;
}

/** The pinned part of a definition: the input of its hash, shown in diffs. */
export function pinnedPart(kind: DefinitionKind, definition: Json): Json {
  if (kind === 'instructions') return { instructions: definition.instructions ?? null };
  return pick(definition, pinnedFields[kind]);
}

/**
 * RFC 8785 canonical SHA-256 of a definition's pinned part, "sha256:<hex>". Key order and
 * number spelling do not change it; any change to a name, text, schema or annotation does.
 */
export function definitionHash(definition: Json, kind?: DefinitionKind): string {
  const k: DefinitionKind =
    kind ??
    ('instructions' in definition && Object.keys(definition).length === 1
      ? 'instructions'
      : 'uriTemplate' in definition
        ? 'resourceTemplate'
        : 'uri' in definition
          ? 'resource'
          : 'inputSchema' in definition || 'annotations' in definition
            ? 'tool'
            : 'arguments' in definition
              ? 'prompt'
              : 'tool');
  return `sha256:${canonicalHash(pinnedPart(k, definition))}`;
}

/** Digest of a server's approved pin state (who pinned it, when, and every definition). */
export function serverPinsDigest(pins: ServerPins): string {
  return `sha256:${canonicalHash(pins)}`;
}

export interface PinnedDefinition {
  hash: string;
  /** The pinned part itself, so a later diff can show what changed. */
  definition: Json;
}

export interface ServerPins {
  pinnedAt: string;
  /** Who pinned or approved (an email or "cli"). */
  pinnedBy: string;
  serverInfo: Json;
  instructions: PinnedDefinition | null;
  tools: Record<string, PinnedDefinition>;
  prompts: Record<string, PinnedDefinition>;
  resources: Record<string, PinnedDefinition>;
  resourceTemplates: Record<string, PinnedDefinition>;
}

export interface Lockfile {
  lockfileVersion: 1;
  servers: Record<string, ServerPins>;
}

export type PinSection = 'tools' | 'prompts' | 'resources' | 'resourceTemplates';

export const sections: ReadonlyArray<{
  section: PinSection;
  kind: DefinitionKind;
  key: (d: Json) => string;
}> = [
  { section: 'tools', kind: 'tool', key: (d) => String(d.name) },
  { section: 'prompts', kind: 'prompt', key: (d) => String(d.name) },
  { section: 'resources', kind: 'resource', key: (d) => String(d.uri) },
  { section: 'resourceTemplates', kind: 'resourceTemplate', key: (d) => String(d.uriTemplate) },
];

function pinOne(kind: DefinitionKind, definition: Json): PinnedDefinition {
  const part = pinnedPart(kind, definition);
  return { hash: `sha256:${canonicalHash(part)}`, definition: part };
}

/** Pins for every definition in a snapshot. */
export function pinSnapshot(snapshot: ServerSnapshot, at: Date, by: string): ServerPins {
  const pins: ServerPins = {
    pinnedAt: at.toISOString(),
    pinnedBy: by,
    serverInfo: snapshot.serverInfo,
    instructions:
      snapshot.instructions === undefined
        ? null
        : pinOne('instructions', { instructions: snapshot.instructions }),
    tools: {},
    prompts: {},
    resources: {},
    resourceTemplates: {},
  };
  for (const { section, kind, key } of sections) {
    for (const d of snapshot[section]) pins[section][key(d)] = pinOne(kind, d);
  }
  return pins;
}

export type DriftKind = 'added' | 'removed' | 'changed';

export interface Drift {
  kind: DefinitionKind;
  key: string;
  change: DriftKind;
  pinned?: PinnedDefinition;
  current?: PinnedDefinition;
}

/**
 * Every difference between the pins and what the server lists now. A rename shows as one
 * removal and one addition. Unpinned servers are not compared here (see PinGate).
 */
export function diffSnapshot(pins: ServerPins, snapshot: ServerSnapshot): Drift[] {
  const drift: Drift[] = [];
  const current =
    snapshot.instructions === undefined
      ? null
      : pinOne('instructions', { instructions: snapshot.instructions });
  if ((pins.instructions?.hash ?? null) !== (current?.hash ?? null)) {
    drift.push({
      kind: 'instructions',
      key: snapshot.name,
      change: pins.instructions === null ? 'added' : current === null ? 'removed' : 'changed',
      ...(pins.instructions ? { pinned: pins.instructions } : {}),
      ...(current ? { current } : {}),
    });
  }
  for (const { section, kind, key } of sections) {
    const seen = new Set<string>();
    for (const d of snapshot[section]) {
      const k = key(d);
      seen.add(k);
      const now = pinOne(kind, d);
      const was = pins[section][k];
      if (was === undefined) drift.push({ kind, key: k, change: 'added', current: now });
      else if (was.hash !== now.hash)
        drift.push({ kind, key: k, change: 'changed', pinned: was, current: now });
    }
    for (const [k, was] of Object.entries(pins[section])) {
      if (!seen.has(k)) drift.push({ kind, key: k, change: 'removed', pinned: was });
    }
  }
  return drift;
}
