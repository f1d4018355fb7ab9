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

/**
 * A vault binding declared in the configuration: a secret name (injected with the default
 * template: `Authorization: Bearer {{secret}}` for HTTP, env for stdio needs `env`), or
 * the long form with a header template or an environment variable.
 */
const credential = z.union(
  [
    z.string().min(1),
    z.strictObject({
      secret: z.string().min(1),
      /** "Name: value with {{secret}}", e.g. "Authorization: Bearer {{secret}}" or "X-Api-Key: {{secret}}". */
      header: z.string().min(1).optional(),
      /** Environment variable of a stdio server. */
      env: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
        .optional(),
    }),
  ],
  {
    error:
      'credential is a secret name, or { secret, header: "Name: ... {{secret}}" } or { secret, env: VAR }',
  },
);

const stdioServer = z.strictObject({
  command: z.string().min(1),
  credential: credential.optional(),
  args: z.array(z.string()).default([]),
  env: z.record(z.string(), z.string()).default({}),
  cwd: z.string().optional(),
  /** Seconds a request may wait for the upstream before it fails. */
  timeout: z.number().positive().default(60),
});

const httpServer = z.strictObject({
  url: z.url({ protocol: /^https?$/ }),
  headers: z.record(z.string(), z.string()).default({}),
  credential: credential.optional(),
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
  /** Days until the agent expires when Custos creates it; lifecycle.defaultExpiryDays when absent. */
  expiresDays: z.number().int().positive().optional(),
  /**
   * Require DPoP-bound access tokens (RFC 9449). Applied at every start when set; absent,
   * the stored setting (`custos agent dpop`) is left as it is.
   */
  requireDpop: z.boolean().optional(),
});

const headers = z.record(z.string(), z.string()).default({});

/** Where audit events go besides the log: OCSF records for a SIEM, OpenTelemetry traces. */
const exportsSection = z.strictObject({
  ocsf: z
    .strictObject({
      /** JSON lines appended to this file (relative to the configuration file). */
      file: z.string().min(1).optional(),
      /** Batches POSTed as a JSON array. */
      webhook: z.strictObject({ url: z.url({ protocol: /^https?$/ }), headers }).optional(),
      /** Copy arguments, reasoning and results into the records (off: hashes and decisions only). */
      includeContent: z.boolean().default(false),
    })
    .optional(),
  otlp: z
    .strictObject({
      /** The OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces. */
      endpoint: z.url({ protocol: /^https?$/ }),
      headers,
      /** Put arguments, results and reasoning on the spans. */
      includeContent: z.boolean().default(false),
      serviceName: z.string().min(1).default('custos'),
    })
    .optional(),
});

const detectAction = z.enum(['off', 'alert', 'throttle', 'quarantine']);

/** Per-detector settings; every key has a default, so `detect: {}` is the sensible setup. */
const detectors = z.strictObject({
  /** Hard rate ceiling per agent (token bucket): `rate` calls per second, bursts of `burst`. */
  ceiling: z
    .strictObject({
      rate: z.number().positive().default(100),
      burst: z.number().int().positive().default(200),
      action: detectAction.default('throttle'),
    })
    .prefault({}),
  /** Call rate against the agent's own baseline (two exponentially weighted moving averages). */
  anomaly: z
    .strictObject({
      /** Time constant of the short-term rate, in seconds. */
      shortSeconds: z.number().positive().default(2),
      /** Time constant of the baseline, in minutes. */
      baselineMinutes: z.number().positive().default(10),
      /** The short-term rate may be this many times the baseline... */
      factor: z.number().min(1).default(5),
      /** ...and never less than this many calls per second before the detector fires. */
      minRate: z.number().positive().default(30),
      action: detectAction.default('quarantine'),
    })
    .prefault({}),
  /** A burst of denied calls (policy, scope, unknown targets). */
  denials: z
    .strictObject({
      count: z.number().int().positive().default(20),
      windowSeconds: z.number().positive().default(60),
      action: detectAction.default('quarantine'),
    })
    .prefault({}),
  /** The same call (tool and arguments) repeated `count` times in a row within the window. */
  loop: z
    .strictObject({
      count: z.number().int().min(2).default(50),
      windowSeconds: z.number().positive().default(60),
      action: detectAction.default('quarantine'),
    })
    .prefault({}),
  /** The first time an agent uses a server or tool. */
  firstUse: z.strictObject({ action: detectAction.default('alert') }).prefault({}),
  /** Bytes of arguments sent out, against the agent's baseline. */
  bytes: z
    .strictObject({
      shortSeconds: z.number().positive().default(10),
      baselineMinutes: z.number().positive().default(10),
      factor: z.number().min(1).default(10),
      minBytesPerSecond: z.number().positive().default(1_000_000),
      action: detectAction.default('quarantine'),
    })
    .prefault({}),
  /** Activity outside working hours; off unless configured. */
  hours: z
    .strictObject({
      /** Days of the week the agent works (0 = Sunday). */
      days: z.array(z.number().int().min(0).max(6)).default([1, 2, 3, 4, 5]),
      start: z
        .string()
        .regex(/^\d{2}:\d{2}$/, 'use HH:MM')
        .default('08:00'),
      end: z
        .string()
        .regex(/^\d{2}:\d{2}$/, 'use HH:MM')
        .default('20:00'),
      /** An IANA time zone, e.g. Europe/Paris. */
      timezone: z.string().min(1).default('UTC'),
      action: detectAction.default('alert'),
    })
    .nullable()
    .default(null),
});

/** A detector's keys, all optional and without defaults, so an override changes only what it names. */
function overrideOf<T extends z.core.$ZodShape>(schema: z.ZodObject<T>) {
  const shape: Record<string, z.ZodType> = {};
  for (const [key, field] of Object.entries(schema.shape)) {
    const inner = field instanceof z.ZodDefault ? (field.unwrap() as z.ZodType) : (field as z.ZodType);
    shape[key] = inner.optional();
  }
  return z.strictObject(shape).optional();
}

/** Overrides for one agent: any detector's keys, partly. */
const detectOverride = z.strictObject({
  ceiling: overrideOf(detectors.shape.ceiling.unwrap()),
  anomaly: overrideOf(detectors.shape.anomaly.unwrap()),
  denials: overrideOf(detectors.shape.denials.unwrap()),
  loop: overrideOf(detectors.shape.loop.unwrap()),
  firstUse: overrideOf(detectors.shape.firstUse.unwrap()),
  bytes: overrideOf(detectors.shape.bytes.unwrap()),
});

const detect = detectors
  .extend({
    /** Per-agent overrides, by agent name. */
    agents: z.record(z.string(), detectOverride).default({}),
    /**
     * Per-tool detectors, by "server.tool", counted per agent: only the detectors named run
     * for the tool, each with the defaults for the keys not given.
     */
    tools: z.record(z.string().regex(/^[^.]+\..+$/, 'name a tool "server.tool"'), detectOverride).default({}),
    incidents: z
      .strictObject({
        /** How far before onset an incident's timeline starts. */
        lookbackMinutes: z.number().min(0).max(1440).default(5),
      })
      .prefault({}),
    /** How many different humans must resume a contained agent, task, server or tool. */
    resume: z.strictObject({ approvers: z.number().int().min(1).max(5).default(1) }).prefault({}),
    /** A Slack-compatible incoming webhook told when an incident opens and closes. */
    notify: z
      .strictObject({
        webhook: z
          .url({ protocol: /^https?$/ })
          .nullable()
          .default(null),
        /** Tries per message (the first included), with exponential backoff from backoffMs. */
        attempts: z.number().int().min(1).max(10).default(3),
        backoffMs: z.number().int().min(0).max(60_000).default(500),
      })
      .prefault({}),
    /** Directory of playbook YAML files (null: none). */
    playbooks: z.string().min(1).nullable().default(null),
  })
  .strict();
/** An approver: a user's email address, "group:NAME" for every member of a group, or "admin-token". */
const approverRef = z.union([z.email(), z.string().regex(/^group:[^\s]+$/), z.literal('admin-token')], {
  error: 'an approver is a user email address, "group:NAME" or "admin-token"',
});

const approvalTier = z
  .strictObject({
    /** Who may approve; absent means anyone with the approver role. */
    approvers: z.array(approverRef).min(1).optional(),
    /** Distinct approvals needed (N of M). */
    quorum: z.number().int().min(1).max(20).default(1),
    /** Seconds a request stays open, and an approval stays usable. */
    ttlSeconds: z.number().int().min(5).max(86_400).default(300),
    /** Separation of duties: by default the agent's owner may not approve its calls. */
    ownerMayApprove: z.boolean().default(false),
    channels: z
      .array(z.enum(['console', 'cli', 'webhook']))
      .min(1)
      .default(['console', 'cli']),
    /** Overrides approvals.holdSeconds for this tier. */
    holdSeconds: z.number().min(0).max(600).optional(),
    /** Longest grant ("this tool, this task, these arguments, N minutes") an approver may give. */
    maxGrantMinutes: z.number().int().min(0).max(1440).default(60),
  })
  .superRefine((tier, ctx) => {
    const users = tier.approvers?.filter((a) => !a.startsWith('group:')) ?? [];
    const hasGroups = tier.approvers?.some((a) => a.startsWith('group:')) ?? true;
    if (!hasGroups && tier.quorum > new Set(users.map((u) => u.toLowerCase())).size) {
      ctx.addIssue({
        code: 'custom',
        path: ['quorum'],
        message: `quorum ${tier.quorum} is more than the ${users.length} approvers listed`,
      });
    }
  });

const approvals = z.strictObject({
  /** Seconds a call that needs approval is held waiting for a decision before "pending" is answered. */
  holdSeconds: z.number().min(0).max(600).default(50),
  tiers: z.record(name, approvalTier).default({}),
  webhook: z
    .strictObject({
      url: z.url({ protocol: /^https?$/ }),
      headers: z.record(z.string(), z.string()).default({}),
      /** Tries per message (the first included), with exponential backoff from backoffMs. */
      attempts: z.number().int().min(1).max(10).default(3),
      backoffMs: z.number().int().min(0).max(60_000).default(500),
    })
    .optional(),
});

/** Agent lifecycle (docs/agents.md): expiry on onboarding, the expiry sweep, orphan detection. */
const lifecycle = z
  .strictObject({
    /** Days until a new agent expires when onboarding names no expiry. */
    defaultExpiryDays: z.number().int().positive().max(3650).default(90),
    /** Longest expiry onboarding or renewal may set, in days from then. */
    maxExpiryDays: z.number().int().positive().max(3650).default(365),
    /** An agent with no activity in the audit log for this many days is an orphan candidate. */
    idleDays: z.number().int().positive().max(3650).default(30),
    /** How often the running server suspends agents past their expiry, in seconds. */
    sweepSeconds: z.number().int().min(1).max(86_400).default(60),
  })
  .refine((l) => l.defaultExpiryDays <= l.maxExpiryDays, {
    error: 'defaultExpiryDays must not exceed maxExpiryDays',
    path: ['defaultExpiryDays'],
  });

/**
 * An upstream OAuth 2 credential the broker holds (docs/oauth.md): where the provider is, which
 * client Custos is, and what it asks for. The client secret is the name of a vault secret.
 */
const oauthCredential = z
  .strictObject({
    /** The provider's issuer, discovered through its metadata document. */
    issuer: z.url({ protocol: /^https?$/ }).optional(),
    /** Which metadata document discovery reads: OpenID Connect or RFC 8414. */
    discovery: z.enum(['oidc', 'oauth2']).default('oidc'),
    /** Endpoints given by hand, instead of (or over) discovery. */
    authorizationEndpoint: z.url({ protocol: /^https?$/ }).optional(),
    tokenEndpoint: z.url({ protocol: /^https?$/ }).optional(),
    clientId: z.string().min(1),
    /** Name of the vault secret holding the client secret; absent for a public client (PKCE only). */
    clientSecret: name.optional(),
    /** How Custos authenticates at the token endpoint when it has a client secret. */
    tokenEndpointAuth: z.enum(['client_secret_basic', 'client_secret_post']).default('client_secret_basic'),
    scopes: z.array(z.string().min(1)).default([]),
    /** RFC 8707 resource indicator sent with every token request. */
    resource: z.url().optional(),
    grant: z.enum(['authorization_code', 'client_credentials']).default('authorization_code'),
    /** Refresh this many seconds before the access token expires (overrides oauth.refreshSkewSeconds). */
    refreshSkewSeconds: z.number().int().min(0).max(3600).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.issuer === undefined && c.tokenEndpoint === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['issuer'],
        message: 'give an issuer (discovery) or a tokenEndpoint',
      });
    }
    if (c.grant === 'authorization_code' && c.issuer === undefined && c.authorizationEndpoint === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['authorizationEndpoint'],
        message: 'the authorization_code grant needs an issuer or an authorizationEndpoint',
      });
    }
    if (c.grant === 'client_credentials' && c.clientSecret === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['clientSecret'],
        message: 'the client_credentials grant needs a client secret (the name of a vault secret)',
      });
    }
  });

const oauth = z.strictObject({
  /** Refresh an access token this many seconds before it expires. */
  refreshSkewSeconds: z.number().int().min(0).max(3600).default(60),
  /** Seconds a human has to finish a connection in the browser. */
  connectTtlSeconds: z.number().int().min(30).max(3600).default(600),
  /** Seconds a token request to a provider may take before it fails. */
  timeoutSeconds: z.number().int().min(1).max(120).default(15),
  credentials: z.record(name, oauthCredential).default({}),
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
  /** Plain HTTP APIs agents reach through /proxy/<api>/<path>, with a vault credential injected. */
  apis: z
    .record(
      name,
      z.strictObject({
        /** Base URL; the path after /proxy/<api>/ is appended to it. */
        url: z.url({ protocol: /^https?$/ }),
        credential: credential.optional(),
        /** Seconds a request may take. */
        timeout: z.number().positive().default(30),
      }),
    )
    .default({}),
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
      /** Longest wait, in milliseconds, from an event's append to a signed checkpoint covering it. */
      checkpointIntervalMs: z.number().int().min(10).max(3_600_000).default(1000),
    })
    .default({ commitDelayMs: 0, checkpointIntervalMs: 1000 }),
  exports: exportsSection.default({}),
  /** Inline detectors, containment, incidents and playbooks (docs/incidents.md). */
  detect: detect.prefault({}),
  approvals: approvals.default({ holdSeconds: 50, tiers: {} }),
  lifecycle: lifecycle.prefault({}),
  /** The OAuth broker: upstream OAuth 2 credentials Custos connects once and keeps fresh. */
  oauth: oauth.prefault({}),
  console: z
    .strictObject({
      /** Longest life of a console login, in hours. */
      sessionHours: z.number().positive().max(720).default(12),
      /** A console login unused for this many minutes ends. */
      idleMinutes: z.number().positive().max(10_080).default(60),
      /** Single sign-on with an OpenID Connect provider; users must exist in Custos (matched by email). */
      oidc: z
        .strictObject({
          issuer: z.url({ protocol: /^https?$/ }),
          clientId: z.string().min(1),
          /** Environment variable holding the client secret; unset means a public client (PKCE only). */
          clientSecretEnv: z.string().min(1).default('CUSTOS_OIDC_CLIENT_SECRET'),
          scopes: z.array(z.string().min(1)).default(['openid', 'email', 'profile']),
        })
        .optional(),
    })
    .default({ sessionHours: 12, idleMinutes: 60 }),
});

export type ServerConfig = z.infer<typeof server>;
export type CredentialConfig = z.infer<typeof credential>;
export type ApiConfig = z.infer<typeof configSchema>['apis'][string];
export type StdioServerConfig = z.infer<typeof stdioServer>;
export type HttpServerConfig = z.infer<typeof httpServer>;
export type AgentConfig = z.infer<typeof agent>;
export type DetectConfig = z.infer<typeof detect>;
export type DetectAction = z.infer<typeof detectAction>;
export type DetectOverride = z.infer<typeof detectOverride>;
export type ApprovalsConfig = z.infer<typeof approvals>;
export type ApprovalTierConfig = z.infer<typeof approvalTier>;
export type LifecycleConfig = z.infer<typeof lifecycle>;
export type OAuthConfig = z.infer<typeof oauth>;
export type OAuthCredentialConfig = z.infer<typeof oauthCredential>;

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
    /^servers\.[^.]+\.credential/,
    'a secret name, or { secret: NAME, header: "Authorization: Bearer {{secret}}" } (HTTP) or { secret: NAME, env: VAR } (stdio)',
  ],
  [/^agents\.\d+\.owner$/, 'set owner to the email address of the human who answers for this agent'],
  [/^agents\.\d+\.purpose$/, 'set purpose to one sentence saying what the agent is for'],
  [/^approvals\.tiers\.[^.]+\.approvers\.\d+$/, 'write a user email (alice@example.com) or group:NAME'],
  [/^storage\.url$/, 'use sqlite:./.custos/custos.db or postgres://user@host:5432/db'],
  [/^detect\.tools\.[^.]+$/, 'name a tool "server.tool"'],
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
    if (a.expiresDays !== undefined && a.expiresDays > value.lifecycle.maxExpiryDays) {
      throw new CustosError(
        'config_invalid',
        `configuration is invalid:\n  agents.${index}.expiresDays: ${a.expiresDays} exceeds lifecycle.maxExpiryDays (${value.lifecycle.maxExpiryDays}) (fix: lower it or raise lifecycle.maxExpiryDays)`,
      );
    }
  }
  for (const [tierName, tier] of Object.entries(value.approvals.tiers)) {
    if (tier.channels.includes('webhook') && value.approvals.webhook === undefined) {
      throw new CustosError(
        'config_invalid',
        `configuration is invalid:\n  approvals.tiers.${tierName}.channels: names webhook, but approvals.webhook is not set (fix: add approvals.webhook.url)`,
      );
    }
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
