import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { CustosError } from './errors.js';

const name = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9_-]{0,62}$/,
    'use lower-case letters, digits, "-" and "_" (no dots), up to 63 characters',
  );

const stdioServer = z.strictObject({
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  env: z.record(z.string(), z.string()).default({}),
  cwd: z.string().optional(),
  /** Seconds a request may wait for the upstream before it fails. */
  timeout: z.number().positive().default(60),
});

const httpServer = z.strictObject({
  url: z.url({ protocol: /^https?$/ }),
  headers: z.record(z.string(), z.string()).default({}),
  timeout: z.number().positive().default(60),
});

const server = z.union([stdioServer, httpServer], {
  error: 'a server needs either "command" (stdio) or "url" (Streamable HTTP), and only the keys of that kind',
});

const agent = z.strictObject({
  name,
  owner: z.email({ error: "owner must be the accountable human's email address" }),
  purpose: z.string().min(1, { error: 'purpose is required: say what the agent is for' }),
  environment: z.string().min(1).default('development'),
});

export const configSchema = z.strictObject({
  listen: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(7400),
      /** The public base URL, when Custos sits behind a proxy; defaults to http://host:port. */
      publicUrl: z.url().optional(),
    })
    .default({ host: '127.0.0.1', port: 7400 }),
  storage: z.strictObject({ url: z.string().min(1) }).optional(),
  servers: z.record(name, server).default({}),
  policies: z.string().min(1).default('./policies'),
  agents: z.array(agent).default([]),
  limits: z
    .strictObject({
      /** Largest request body accepted, in bytes. */
      maxBodyBytes: z
        .number()
        .int()
        .positive()
        .default(4 * 1024 * 1024),
    })
    .default({ maxBodyBytes: 4 * 1024 * 1024 }),
  tokens: z
    .strictObject({
      ttlSeconds: z.number().int().min(30).max(86_400).default(600),
      taskTtlSeconds: z.number().int().min(10).max(86_400).default(300),
    })
    .default({ ttlSeconds: 600, taskTtlSeconds: 300 }),
  /** Vendor risk for MCP servers (src/vet): the pin lockfile the gateway enforces, owners, suppressions. */
  vet: z
    .strictObject({
      /** The pin lockfile (custos vet pin). When set, the gateway hides definitions that drifted from it. */
      lockfile: z.string().min(1).optional(),
      /** Suppressions file (rule or definition hash, reason, expiry). */
      suppressions: z.string().min(1).optional(),
      /** Accountable owner and vendor answers per server, for the inventory and the risk tier. */
      servers: z
        .record(
          name,
          z.strictObject({
            owner: z.email({ error: "owner must be the accountable human's email address" }).optional(),
            answers: z.string().min(1).optional(),
          }),
        )
        .default({}),
    })
    .default({ servers: {} }),
  audit: z
    .strictObject({
      /** Longest wait, in milliseconds, to gather events into one commit. */
      commitDelayMs: z.number().min(0).max(100).default(0),
    })
    .default({ commitDelayMs: 0 }),
});

export type ServerConfig = z.infer<typeof server>;
export type StdioServerConfig = z.infer<typeof stdioServer>;
export type HttpServerConfig = z.infer<typeof httpServer>;
export type AgentConfig = z.infer<typeof agent>;

/** A validated, resolved, frozen configuration. */
export type Config = Readonly<
  Omit<z.infer<typeof configSchema>, 'storage'> & {
    storage: { url: string };
    /** Directory for the database, keys and runtime files. */
    dataDir: string;
    /** Directory the relative paths in the file were resolved against. */
    baseDir: string;
    /** Absolute path of the policies directory. */
    policies: string;
  }
>;

export function isStdioServer(server: ServerConfig): server is StdioServerConfig {
  return 'command' in server;
}

const hints: Array<[RegExp, string]> = [
  [
    /^servers\.[^.]+\.credential$/,
    'upstream credentials come with the vault (not yet available); remove the key',
  ],
  [/^agents\.\d+\.owner$/, 'set owner to the email address of the human who answers for this agent'],
  [/^agents\.\d+\.purpose$/, 'set purpose to one sentence saying what the agent is for'],
  [/^storage\.url$/, 'use sqlite:./.custos/custos.db or postgres://user@host:5432/db'],
];

function hintFor(path: string): string | undefined {
  return hints.find(([pattern]) => pattern.test(path))?.[1];
}

/** Turn zod issues into one readable message, one line per problem, each with its key path. */
function describeIssues(error: z.ZodError): {
  message: string;
  problems: Array<{ path: string; problem: string; fix?: string }>;
} {
  const problems = error.issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    let problem = issue.message;
    if (issue.code === 'unrecognized_keys') {
      const keys = issue.keys;
      return keys.map((key) => {
        const full = path === '' ? key : `${path}.${key}`;
        const fix = hintFor(full) ?? 'remove it, or check its spelling against docs/configuration.md';
        return { path: full, problem: 'unknown key', fix };
      });
    }
    if (issue.code === 'invalid_type' && issue.input === undefined) problem = 'is required';
    const fix = hintFor(path);
    return [{ path: path === '' ? '(top level)' : path, problem, ...(fix ? { fix } : {}) }];
  });
  const flat = problems.flat();
  const lines = flat.map((p) => `  ${p.path}: ${p.problem}${p.fix ? ` (fix: ${p.fix})` : ''}`);
  return { message: `configuration is invalid:\n${lines.join('\n')}`, problems: flat };
}

export interface LoadOptions {
  /** Path of custos.yaml; when absent, the defaults are used. */
  file?: string;
  /** Overrides from the command line. */
  port?: number;
  dataDir?: string;
  env?: NodeJS.ProcessEnv;
}

/** Validate a parsed configuration object and resolve its paths against baseDir. */
export function buildConfig(raw: unknown, baseDir: string, options: LoadOptions = {}): Config {
  const parsed = configSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const { message, problems } = describeIssues(parsed.error);
    throw new CustosError('config_invalid', message, { detail: { problems } });
  }
  const value = parsed.data;
  const env = options.env ?? process.env;
  const dataDir = resolve(baseDir, options.dataDir ?? './.custos');
  const storageUrl =
    env.CUSTOS_DATABASE_URL ?? value.storage?.url ?? `sqlite:${resolve(dataDir, 'custos.db')}`;
  const names = new Set<string>();
  for (const [index, a] of value.agents.entries()) {
    if (names.has(a.name)) {
      throw new CustosError(
        'config_invalid',
        `configuration is invalid:\n  agents.${index}.name: "${a.name}" appears twice`,
      );
    }
    names.add(a.name);
  }
  const config = {
    ...value,
    listen: { ...value.listen, ...(options.port === undefined ? {} : { port: options.port }) },
    storage: { url: storageUrl },
    policies: isAbsolute(value.policies) ? value.policies : resolve(baseDir, value.policies),
    dataDir,
    baseDir,
  };
  return deepFreeze(config);
}

/** Read, parse and validate custos.yaml. */
export function loadConfig(options: LoadOptions = {}): Config {
  if (options.file === undefined) return buildConfig({}, process.cwd(), options);
  const file = resolve(options.file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CustosError('config_invalid', `cannot read configuration file ${file}`, { cause: error });
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    const where = error instanceof YAMLParseError ? ` at line ${error.linePos?.[0].line ?? '?'}` : '';
    throw new CustosError(
      'config_invalid',
      `${file} is not valid YAML${where}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  return buildConfig(raw, dirname(file), options);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as object)) deepFreeze(child);
  }
  return value;
}
