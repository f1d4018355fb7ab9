import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { CustosError, errorMessage } from '../core/errors.js';
import { allEntities, type EncodingSchema, encodeRequest, readEncodingSchema } from './encode.js';
import { builtInSchema } from './schema.js';
import type { LoadedPolicy, PolicyProblem } from './types.js';

/** One file's name (relative to the policy directory) and text. */
export interface PolicySource {
  readonly name: string;
  readonly text: string;
}

/** The inputs of a policy set: *.cedar files and an optional schema that replaces the built-in one. */
export interface PolicySources {
  readonly files: readonly PolicySource[];
  readonly schema?: PolicySource | undefined;
}

export const schemaFileName = 'schema.cedarschema';

/** A policy set failed to load; `problems` names the file, policy and message of each problem. */
export class PolicyLoadError extends CustosError {
  readonly problems: readonly PolicyProblem[];

  constructor(problems: readonly PolicyProblem[]) {
    const first = problems[0];
    const where =
      first === undefined
        ? ''
        : `${first.file}${first.policyId === undefined ? '' : ` (${first.policyId})`}: `;
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
    super('policy_invalid', `invalid policies: ${where}${first?.message ?? 'unknown problem'}${more}`, {
      detail: { problems },
    });
    this.name = 'PolicyLoadError';
    this.problems = problems;
  }
}

/** Which parts of the request a policy's conditions read; drives what each evaluation must encode. */
export interface Reads {
  /** Attribute names of the principal read; `null` when the principal is not read at all. */
  readonly principal: ReadonlySet<string> | 'all' | null;
  readonly resource: ReadonlySet<string> | 'all' | null;
  /** Top-level context attributes read. */
  readonly context: ReadonlySet<string> | 'all' | null;
  /** The conditions mention `action` (action groups then need the schema's action entities). */
  readonly action: boolean;
}

/** A loaded policy with what the engine needs to index and evaluate it. */
export interface CompiledPolicy extends LoadedPolicy {
  readonly ordinal: number;
  readonly json: cedar.PolicyJson;
  readonly hasConditions: boolean;
  readonly reads: Reads;
}

/** A validated, frozen policy set. */
export interface CompiledPolicySet {
  readonly policies: readonly CompiledPolicy[];
  readonly byId: ReadonlyMap<string, CompiledPolicy>;
  /** `built-in` or the schema file's name. */
  readonly schemaName: string;
  readonly schemaText: string;
  readonly encoding: EncodingSchema;
}

/** Read *.cedar files (sorted by name) and an optional schema.cedarschema from a directory. */
export async function readPolicyDirectory(directory: string): Promise<PolicySources> {
  let names: string[];
  try {
    names = (await readdir(directory)).sort();
  } catch (error) {
    throw new PolicyLoadError([
      { file: directory, message: `cannot read policy directory: ${errorMessage(error)}` },
    ]);
  }
  const files: PolicySource[] = [];
  let schema: PolicySource | undefined;
  for (const name of names) {
    if (!name.endsWith('.cedar') && name !== schemaFileName) continue;
    let text: string;
    try {
      text = await readFile(join(directory, name), 'utf8');
    } catch (error) {
      // A file deleted between readdir and readFile is simply gone; anything else is a problem.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new PolicyLoadError([{ file: name, message: `cannot read file: ${errorMessage(error)}` }]);
    }
    if (name === schemaFileName) schema = { name, text };
    else files.push({ name, text });
  }
  return { files, schema };
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function firstLocation(error: cedar.DetailedError): number | undefined {
  return error.sourceLocations?.[0]?.start;
}

function detailedMessage(error: cedar.DetailedError): string {
  return error.help ? `${error.message} (${error.help})` : error.message;
}

// ---- what conditions read ----

interface ReadsBuilder {
  principal: Set<string> | 'all' | null;
  resource: Set<string> | 'all' | null;
  context: Set<string> | 'all' | null;
  action: boolean;
}

function pathOf(expr: unknown): string[] | null {
  if (typeof expr !== 'object' || expr === null) return null;
  const node = expr as Record<string, unknown>;
  if (typeof node.Var === 'string') return [node.Var];
  const dot = node['.'] as { left: unknown; attr: string } | undefined;
  if (dot !== undefined) {
    const left = pathOf(dot.left);
    return left === null ? null : [...left, dot.attr];
  }
  return null;
}

function note(reads: ReadsBuilder, path: readonly string[]): void {
  const [root, attribute] = path;
  if (root === 'action') {
    reads.action = true;
    return;
  }
  if (root !== 'principal' && root !== 'resource' && root !== 'context') return;
  const current = reads[root];
  if (current === 'all') return;
  if (attribute === undefined) {
    // The whole variable: for entities that means uid and parents, for context every attribute.
    if (root === 'context') reads.context = 'all';
    else reads[root] = current ?? new Set();
    return;
  }
  const set = current ?? new Set<string>();
  set.add(attribute);
  reads[root] = set;
}

function walk(expr: unknown, reads: ReadsBuilder): void {
  if (Array.isArray(expr)) {
    for (const item of expr) walk(item, reads);
    return;
  }
  if (typeof expr !== 'object' || expr === null) return;
  for (const [key, value] of Object.entries(expr as Record<string, unknown>)) {
    if (key === 'Value') continue;
    if (key === 'Var') {
      note(reads, [String(value)]);
    } else if (key === '.' || key === 'has') {
      const { left, attr } = value as { left: unknown; attr: string | string[] };
      const base = pathOf(left);
      if (base === null) {
        // An attribute of a computed value: we cannot tell which entity it reads, so encode everything.
        reads.principal = 'all';
        reads.resource = 'all';
        reads.context = 'all';
        walk(left, reads);
      } else {
        note(reads, [...base, ...(Array.isArray(attr) ? attr : [attr])].slice(0, 2));
      }
    } else {
      walk(value, reads);
    }
  }
}

function readsOf(json: cedar.PolicyJson): Reads {
  const reads: ReadsBuilder = { principal: null, resource: null, context: null, action: false };
  for (const clause of json.conditions) walk(clause.body, reads);
  // Cedar evaluates the scope again, and an `in` scope needs the entity with its parents.
  // (The policy text, not its JSON form, is what Cedar evaluates: JSON numbers lose precision
  // beyond 2^53 on the way through JavaScript.)
  const needsParents = (constraint: cedar.PrincipalConstraint | cedar.ResourceConstraint) =>
    constraint.op === 'in' || (constraint.op === 'is' && constraint.in !== undefined);
  if (needsParents(json.principal)) reads.principal ??= new Set();
  if (needsParents(json.resource)) reads.resource ??= new Set();
  if (json.action.op === 'in') reads.action = true;
  return reads;
}

/** Union of what several policies read. */
export function mergeReads(all: readonly Reads[]): Reads {
  const merged: ReadsBuilder = { principal: null, resource: null, context: null, action: false };
  for (const reads of all) {
    merged.action ||= reads.action;
    for (const part of ['principal', 'resource', 'context'] as const) {
      const incoming = reads[part];
      const current = merged[part];
      if (incoming === null || current === 'all') continue;
      if (incoming === 'all') merged[part] = 'all';
      else merged[part] = new Set([...(current ?? []), ...incoming]);
    }
  }
  return merged;
}

// ---- compiling ----

interface ParsedFile {
  readonly name: string;
  readonly policies: { index: number; line: number; text: string; json: cedar.PolicyJson }[];
}

function parseFile(source: PolicySource, problems: PolicyProblem[]): ParsedFile | undefined {
  const parts = cedar.policySetTextToParts(source.text);
  if (parts.type === 'failure') {
    for (const error of parts.errors) {
      const offset = firstLocation(error);
      problems.push({
        file: source.name,
        ...(offset === undefined ? {} : { line: lineAt(source.text, offset) }),
        message: detailedMessage(error),
      });
    }
    return undefined;
  }
  if (parts.policy_templates.length > 0) {
    problems.push({
      file: source.name,
      message: 'policy templates (?principal or ?resource slots) are not supported; write static policies',
    });
    return undefined;
  }
  // Cedar names the policies of a text policy0, policy1, ... and returns them sorted by that name
  // (so policy10 comes before policy2); undo the sort to recover each policy's position in the file.
  const generatedIds = parts.policies.map((_, i) => `policy${i}`).sort();
  const byIndex: string[] = [];
  parts.policies.forEach((text, k) => {
    byIndex[Number((generatedIds[k] as string).slice('policy'.length))] = text;
  });
  const policies: ParsedFile['policies'] = [];
  let cursor = 0;
  for (let index = 0; index < byIndex.length; index++) {
    const text = byIndex[index] as string;
    const at = source.text.indexOf(text, cursor);
    const offset = at >= 0 ? at : cursor;
    if (at >= 0) cursor = at + text.length;
    const json = cedar.policyToJson(text);
    if (json.type === 'failure') {
      for (const error of json.errors) problems.push({ file: source.name, message: detailedMessage(error) });
      continue;
    }
    policies.push({ index, line: lineAt(source.text, offset), text, json: json.json });
  }
  return { name: source.name, policies };
}

/** A sample request with every optional part present, to check that a schema fits Custos's encoding. */
function checkEncodingFits(schemaText: string, encoding: EncodingSchema): string | undefined {
  const request = encodeRequest(
    {
      principal: {
        agentId: 'agt_check',
        name: 'check',
        owner: 'owner@example.com',
        environment: 'test',
        purpose: 'check',
      },
      task: { id: 'task_check', purpose: 'check' },
      action: 'call_tool',
      resource: { server: 'server', kind: 'tool', name: 'tool', annotations: {} },
      arguments: {},
      time: 0,
    },
    encoding,
  );
  if (request.errors.length > 0) return request.errors.join('; ');
  const answer = cedar.isAuthorized({
    principal: request.principal,
    action: request.action,
    resource: request.resource,
    context: request.context,
    entities: allEntities(request),
    policies: { staticPolicies: {} },
    schema: schemaText,
    validateRequest: true,
  });
  return answer.type === 'failure' ? answer.errors.map(detailedMessage).join('; ') : undefined;
}

/**
 * Parse, identify and validate a policy set against its schema. Throws PolicyLoadError listing
 * every problem (file, policy id, line, message); a set with any problem is not loaded at all.
 */
export function compilePolicySet(sources: PolicySources): CompiledPolicySet {
  const problems: PolicyProblem[] = [];
  const schemaName = sources.schema?.name ?? 'built-in';
  const schemaText = sources.schema?.text ?? builtInSchema;

  const schemaJson = cedar.schemaToJsonWithResolvedTypes(schemaText);
  if (schemaJson.type === 'failure') {
    throw new PolicyLoadError(
      schemaJson.errors.map((error) => ({ file: schemaName, message: detailedMessage(error) })),
    );
  }
  const encoding = readEncodingSchema(schemaJson.json);
  const misfit = checkEncodingFits(schemaText, encoding);
  if (misfit !== undefined) {
    throw new PolicyLoadError([
      { file: schemaName, message: `the schema does not describe the requests Custos makes: ${misfit}` },
    ]);
  }

  const policies: CompiledPolicy[] = [];
  const byId = new Map<string, CompiledPolicy>();
  for (const source of [...sources.files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const parsed = parseFile(source, problems);
    if (parsed === undefined) continue;
    for (const { index, line, text, json } of parsed.policies) {
      const annotated = json.annotations?.id;
      if (annotated !== undefined && annotated.trim() === '') {
        problems.push({ file: source.name, line, message: '@id annotation is empty' });
        continue;
      }
      const id = annotated ?? `${source.name}:${index}`;
      const existing = byId.get(id);
      if (existing !== undefined) {
        problems.push({
          file: source.name,
          policyId: id,
          line,
          message: `duplicate policy id (also ${existing.file} line ${existing.line})`,
        });
        continue;
      }
      const policy: CompiledPolicy = Object.freeze({
        id,
        file: source.name,
        index,
        line,
        effect: json.effect,
        text,
        ordinal: policies.length,
        json,
        hasConditions: json.conditions.length > 0,
        reads: readsOf(json),
      });
      policies.push(policy);
      byId.set(id, policy);
    }
  }

  if (policies.length > 0) {
    const staticPolicies: Record<string, string> = {};
    for (const policy of policies) staticPolicies[policy.id] = policy.text;
    const answer = cedar.validate({ schema: schemaText, policies: { staticPolicies } });
    if (answer.type === 'failure') {
      for (const error of answer.errors) problems.push({ file: schemaName, message: detailedMessage(error) });
    } else {
      // Warnings count as problems: "policy is impossible" usually means a test of an undeclared
      // argument (always false, so a forbid would silently never fire), and the others flag
      // confusable or invisible characters in policy text.
      for (const { policyId, error } of [...answer.validationErrors, ...answer.validationWarnings]) {
        const policy = byId.get(policyId);
        const offset = firstLocation(error);
        const line =
          policy === undefined
            ? undefined
            : policy.line + (offset === undefined ? 0 : lineAt(policy.text, offset) - 1);
        problems.push({
          file: policy?.file ?? '(unknown)',
          policyId,
          ...(line === undefined ? {} : { line }),
          message: error.message.includes('policy is impossible')
            ? `${detailedMessage(error)} (does it test an argument or attribute the schema does not declare?)`
            : detailedMessage(error),
        });
      }
    }
  }

  if (problems.length > 0) throw new PolicyLoadError(problems);
  return Object.freeze({ policies: Object.freeze(policies), byId, schemaName, schemaText, encoding });
}
