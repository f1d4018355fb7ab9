import type { CedarValueJson, EntityJson, SchemaJson, TypeAndId } from '@cedar-policy/cedar-wasm/nodejs';
import type { DecisionInput, PolicyAction, ResourceKind, ToolAnnotations } from './types.js';

// The Cedar encoding of a request lives here and nowhere else: entity type names, uid
// formats and the context layout must match schema.cedarschema.

/** The declared type of a tool argument, as far as the encoder needs to know it. */
export type ArgumentType =
  | { readonly kind: 'String' }
  | { readonly kind: 'Long' }
  | { readonly kind: 'Bool' }
  | { readonly kind: 'Set'; readonly element: ArgumentType }
  | { readonly kind: 'Record'; readonly attributes: ReadonlyMap<string, ArgumentAttribute> }
  | { readonly kind: 'Unsupported'; readonly name: string };

export interface ArgumentAttribute {
  readonly type: ArgumentType;
  readonly required: boolean;
}

/** What the encoder and the scope index take from the schema. */
export interface EncodingSchema {
  /** Declared attributes of `context.arguments` (empty when the schema declares none). */
  readonly arguments: ReadonlyMap<string, ArgumentAttribute>;
  /** For each action, the action groups it is `in` (transitively), as Cedar ids. */
  readonly actionGroups: ReadonlyMap<string, readonly string[]>;
}

const resourceTypes: Record<ResourceKind, string> = { tool: 'Tool', resource: 'Resource', prompt: 'Prompt' };
const actionKinds: Record<PolicyAction, ResourceKind | 'server'> = {
  call_tool: 'tool',
  list_tools: 'server',
  read_resource: 'resource',
  get_prompt: 'prompt',
  http_request: 'resource',
};

/** A request encoded for Cedar, before projection to what the applicable policies read. */
export interface EncodedRequest {
  readonly principal: TypeAndId;
  readonly principalAncestors: readonly TypeAndId[];
  readonly action: TypeAndId;
  readonly resource: TypeAndId;
  readonly resourceAncestors: readonly TypeAndId[];
  readonly agent: EntityJson;
  /** Absent when the resource is a server (servers carry no attributes). */
  readonly resourceEntity: EntityJson | undefined;
  readonly taskEntity: EntityJson | undefined;
  readonly context: Record<string, CedarValueJson>;
  /** Problems that make the request undecidable (for example an argument of the wrong type): deny. */
  readonly errors: readonly string[];
}

/** Fill in MCP's defaults for missing hints; destructive defaults to "not read-only" (the spec ties them). */
export function annotationsWithDefaults(annotations: ToolAnnotations | undefined): Record<string, boolean> {
  const readOnlyHint = annotations?.readOnlyHint ?? false;
  return {
    readOnlyHint,
    destructiveHint: annotations?.destructiveHint ?? !readOnlyHint,
    idempotentHint: annotations?.idempotentHint ?? false,
    openWorldHint: annotations?.openWorldHint ?? true,
  };
}

/** `context.time`: UTC hour, minute and weekday (0 = Sunday) plus epoch seconds. */
export function encodeTime(ms: number): Record<string, number> {
  const date = new Date(ms);
  return {
    hour: date.getUTCHours(),
    minute: date.getUTCMinutes(),
    weekday: date.getUTCDay(),
    epochSeconds: Math.floor(ms / 1000),
  };
}

export function resourceUid(
  action: PolicyAction,
  server: string,
  kind: ResourceKind,
  name: string,
): TypeAndId {
  if (action === 'list_tools') return { type: 'Server', id: server };
  return { type: resourceTypes[kind], id: `${server}/${name}` };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/** Convert one JSON value to the declared Cedar type, or explain why it does not fit. */
function encodeArgument(
  value: unknown,
  type: ArgumentType,
  at: string,
  errors: string[],
): CedarValueJson | undefined {
  switch (type.kind) {
    case 'String':
      if (typeof value === 'string') return value;
      break;
    case 'Long':
      if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
      break;
    case 'Bool':
      if (typeof value === 'boolean') return value;
      break;
    case 'Set': {
      if (!Array.isArray(value)) break;
      const out: CedarValueJson[] = [];
      for (let i = 0; i < value.length; i++) {
        const element = encodeArgument(value[i], type.element, `${at}[${i}]`, errors);
        if (element === undefined) return undefined;
        out.push(element);
      }
      return out;
    }
    case 'Record': {
      if (!isPlainObject(value)) break;
      return encodeRecord(value, type.attributes, at, errors);
    }
    case 'Unsupported':
      errors.push(`argument ${at}: the schema declares type ${type.name}, which Custos cannot encode`);
      return undefined;
  }
  errors.push(`argument ${at}: expected ${type.kind}, got ${describe(value)}`);
  return undefined;
}

function encodeRecord(
  value: Record<string, unknown>,
  attributes: ReadonlyMap<string, ArgumentAttribute>,
  at: string,
  errors: string[],
): Record<string, CedarValueJson> | undefined {
  const out: Record<string, CedarValueJson> = {};
  for (const [name, attribute] of attributes) {
    const path = at === '' ? name : `${at}.${name}`;
    const raw = Object.hasOwn(value, name) ? value[name] : undefined;
    // JSON null means "not given": MCP clients send it for omitted optional arguments.
    if (raw === undefined || raw === null) {
      if (attribute.required) {
        errors.push(`argument ${path}: required by the schema but missing`);
        return undefined;
      }
      continue;
    }
    const encoded = encodeArgument(raw, attribute.type, path, errors);
    if (encoded === undefined) return undefined;
    out[name] = encoded;
  }
  return out;
}

/** Encode a decision input as Cedar entities and context (the complete request). */
export function encodeRequest(input: DecisionInput, schema: EncodingSchema): EncodedRequest {
  const errors: string[] = [];
  const { principal, resource, action } = input;
  const ownerUid = { type: 'Owner', id: principal.owner };
  const principalUid = { type: 'Agent', id: principal.agentId };
  const agent: EntityJson = {
    uid: principalUid,
    attrs: {
      name: principal.name,
      owner: { __entity: ownerUid },
      environment: principal.environment,
      purpose: principal.purpose,
    },
    parents: [ownerUid],
  };

  const expected = actionKinds[action];
  if (expected === undefined) errors.push(`unknown action ${JSON.stringify(action)}`);
  else if (expected !== 'server' && expected !== resource.kind) {
    errors.push(`action ${action} applies to a ${expected}, not a ${resource.kind}`);
  }
  const resourceId = resourceUid(action, resource.server, resource.kind, resource.name);
  const serverUid = { type: 'Server', id: resource.server };
  const resourceEntity: EntityJson | undefined =
    resourceId.type === 'Server'
      ? undefined
      : { uid: resourceId, attrs: { name: resource.name, server: resource.server }, parents: [serverUid] };

  let args: Record<string, CedarValueJson> = {};
  let argumentNames: string[] = [];
  if (isPlainObject(input.arguments)) {
    argumentNames = Object.keys(input.arguments);
    args = encodeRecord(input.arguments, schema.arguments, '', errors) ?? {};
  } else if (input.arguments !== undefined && input.arguments !== null) {
    errors.push(`arguments must be a JSON object, got ${describe(input.arguments)}`);
  }

  const context: Record<string, CedarValueJson> = {
    arguments: args,
    argumentNames,
    time: encodeTime(input.time),
    annotations: annotationsWithDefaults(resource.annotations),
  };
  let taskEntity: EntityJson | undefined;
  if (input.task !== undefined) {
    const taskUid = { type: 'Task', id: input.task.id };
    context.task = { __entity: taskUid };
    taskEntity = { uid: taskUid, attrs: { purpose: input.task.purpose }, parents: [] };
  }

  return {
    principal: principalUid,
    principalAncestors: [ownerUid],
    action: { type: 'Action', id: action },
    resource: resourceId,
    resourceAncestors: resourceId.type === 'Server' ? [] : [serverUid],
    agent,
    resourceEntity,
    taskEntity,
    context,
    errors,
  };
}

/** The complete entity list of a request (used for full evaluation and load-time self checks). */
export function allEntities(request: EncodedRequest): EntityJson[] {
  const entities = [request.agent];
  if (request.resourceEntity !== undefined) entities.push(request.resourceEntity);
  if (request.taskEntity !== undefined) entities.push(request.taskEntity);
  return entities;
}

// ---- reading the schema ----

type SchemaType = Record<string, unknown>;

const builtInTypeNames = new Set([
  'String',
  'Long',
  'Bool',
  'Boolean',
  'Set',
  'Record',
  'Entity',
  'Extension',
]);

/** Follow common-type references (`{ "type": "Arguments" }`) to the type they name. */
function resolve(
  type: SchemaType | undefined,
  commonTypes: Record<string, SchemaType>,
  depth = 0,
): SchemaType | undefined {
  if (type === undefined || depth > 32) return undefined;
  const name = String(type.type);
  if (builtInTypeNames.has(name)) return type;
  return resolve(commonTypes[name], commonTypes, depth + 1);
}

function toArgumentType(type: SchemaType | undefined, commonTypes: Record<string, SchemaType>): ArgumentType {
  const resolved = resolve(type, commonTypes);
  switch (resolved?.type) {
    case 'String':
      return { kind: 'String' };
    case 'Long':
      return { kind: 'Long' };
    case 'Bool':
    case 'Boolean':
      return { kind: 'Bool' };
    case 'Set':
      return { kind: 'Set', element: toArgumentType(resolved.element as SchemaType, commonTypes) };
    case 'Record':
      return { kind: 'Record', attributes: toAttributes(resolved, commonTypes) };
    default:
      return { kind: 'Unsupported', name: String(resolved?.name ?? resolved?.type ?? 'unknown') };
  }
}

function toAttributes(
  record: SchemaType,
  commonTypes: Record<string, SchemaType>,
): Map<string, ArgumentAttribute> {
  const out = new Map<string, ArgumentAttribute>();
  const attributes = (record.attributes ?? {}) as Record<string, SchemaType>;
  for (const [name, attribute] of Object.entries(attributes)) {
    out.set(name, { type: toArgumentType(attribute, commonTypes), required: attribute.required !== false });
  }
  return out;
}

/** Extract the argument types and action groups from a schema in Cedar's JSON form (types resolved). */
export function readEncodingSchema(json: SchemaJson<string>): EncodingSchema {
  const namespace = json[''] ?? { entityTypes: {}, actions: {} };
  const commonTypes = (namespace.commonTypes ?? {}) as Record<string, SchemaType>;
  let argumentsAttributes = new Map<string, ArgumentAttribute>();
  const context = resolve(
    namespace.actions.call_tool?.appliesTo?.context as SchemaType | undefined,
    commonTypes,
  );
  const argumentsType = (context?.attributes as Record<string, SchemaType> | undefined)?.arguments;
  const resolvedArguments = resolve(argumentsType, commonTypes);
  if (resolvedArguments?.type === 'Record')
    argumentsAttributes = toAttributes(resolvedArguments, commonTypes);

  const parents = new Map<string, string[]>();
  for (const [name, action] of Object.entries(namespace.actions)) {
    parents.set(
      name,
      (action.memberOf ?? []).map((member) => member.id),
    );
  }
  const actionGroups = new Map<string, string[]>();
  for (const name of parents.keys()) {
    const seen = new Set<string>();
    const stack = [...(parents.get(name) ?? [])];
    while (stack.length > 0) {
      const next = stack.pop() as string;
      if (seen.has(next)) continue;
      seen.add(next);
      stack.push(...(parents.get(next) ?? []));
    }
    actionGroups.set(name, [...seen]);
  }
  return { arguments: argumentsAttributes, actionGroups };
}
