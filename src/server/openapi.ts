import { agentAuthPaths } from './openapi-agent-auth.js';
import { detectPaths } from './openapi-detect.js';
import { lifecyclePaths } from './openapi-lifecycle.js';
import { oauthPaths } from './openapi-oauth.js';
import { ok } from './openapi-parts.js';

/** The admin API, described for people and for generated clients (OpenAPI 3.1). */
const agentRef = {
  name: 'ref',
  in: 'path',
  required: true,
  description: 'agent id or name',
  schema: { type: 'string' },
};
const error = {
  description: 'error',
  content: {
    'application/json': {
      schema: {
        type: 'object',
        properties: {
          error: {
            type: 'object',
            required: ['code', 'message'],
            properties: { code: { type: 'string' }, message: { type: 'string' }, detail: { type: 'object' } },
          },
        },
      },
    },
  },
};
const agent = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    owner: { type: 'string', format: 'email' },
    purpose: { type: 'string' },
    environment: { type: 'string' },
    status: { enum: ['active', 'suspended', 'offboarded'] },
    epoch: { type: 'integer' },
    createdAt: { type: 'integer', description: 'ms since the Unix epoch' },
    expiresAt: { type: ['integer', 'null'] },
    statusReason: {
      type: ['string', 'null'],
      description: 'why a suspended agent is suspended: expired or manual',
    },
  },
};
const event = {
  type: 'object',
  properties: {
    seq: { type: 'integer' },
    id: { type: 'string' },
    time: { type: 'integer' },
    agentId: { type: ['string', 'null'] },
    owner: { type: ['string', 'null'] },
    taskId: { type: ['string', 'null'] },
    method: { type: 'string' },
    server: { type: ['string', 'null'] },
    target: { type: ['string', 'null'] },
    argsHash: { type: ['string', 'null'] },
    effect: { enum: ['allow', 'deny'] },
    policyIds: { type: 'array', items: { type: 'string' } },
    reasons: { type: 'array', items: { type: 'string' } },
    outcome: { enum: ['executed', 'denied', 'failed'] },
    errorCode: { type: ['string', 'null'] },
    latencyUs: { type: 'integer' },
    traceId: { type: ['string', 'null'] },
    arguments: {},
    reasoning: {},
  },
};
const decisionChain = {
  type: 'object',
  required: ['id', 'steps', 'truncated'],
  properties: {
    id: { type: 'string' },
    truncated: { type: 'boolean', description: 'more events exist than the limit; the oldest are shown' },
    steps: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          seq: { type: 'integer' },
          eventId: { type: 'string' },
          time: { type: 'integer' },
          agentId: { type: ['string', 'null'] },
          agentName: { type: 'string', description: 'present when the agent is known' },
          owner: { type: ['string', 'null'] },
          taskId: { type: ['string', 'null'] },
          traceId: { type: ['string', 'null'] },
          erased: {
            type: 'boolean',
            description:
              'the content (arguments, reasoning, result) was erased; the leaf still commits to it',
          },
          reasoning: {
            type: ['string', 'null'],
            description: 'shortened; null when none was given or it was erased',
          },
          call: {
            type: 'object',
            properties: {
              method: { type: 'string' },
              name: { type: ['string', 'null'] },
              arguments: { type: ['string', 'null'], description: 'compact JSON, shortened' },
              argsHash: { type: ['string', 'null'] },
            },
          },
          decision: {
            type: 'object',
            properties: {
              effect: { enum: ['allow', 'deny'] },
              policyIds: { type: 'array', items: { type: 'string' } },
              reasons: { type: 'array', items: { type: 'string' } },
            },
          },
          approval: {
            type: 'object',
            description: 'the approval the call consumed (its leaf commits to approvalId)',
            properties: {
              approvalId: { type: 'string' },
              callHash: {
                type: ['string', 'null'],
                description: 'the call hash the approvers decided on, from the decision events',
              },
              callHashMatches: {
                type: ['boolean', 'null'],
                description:
                  'whether callHash is the hash of this call, recomputed from it; null when it cannot be (arguments erased)',
              },
              decisions: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    seq: { type: 'integer' },
                    eventId: { type: 'string' },
                    time: { type: 'integer' },
                    method: { type: 'string' },
                    decision: { type: 'string', description: 'approved, denied, cancelled, ...' },
                    by: {
                      type: ['string', 'null'],
                      description: "the approver (a user's email or admin-token)",
                    },
                    callHash: { type: ['string', 'null'] },
                    reasons: { type: 'array', items: { type: 'string' } },
                  },
                },
              },
            },
          },
          outcome: {
            type: 'object',
            properties: {
              outcome: { enum: ['executed', 'denied', 'failed'] },
              errorCode: { type: ['string', 'null'] },
              latencyMs: { type: 'number' },
              result: { type: ['string', 'null'], description: 'compact JSON, shortened' },
            },
          },
        },
      },
    },
  },
};
const userRef = {
  name: 'ref',
  in: 'path',
  required: true,
  description: 'user id or email',
  schema: { type: 'string' },
};
const user = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    email: { type: 'string', format: 'email' },
    name: { type: 'string' },
    roles: { type: 'array', items: { enum: ['admin', 'approver', 'auditor'] } },
    groups: { type: 'array', items: { type: 'string' } },
    status: { enum: ['active', 'disabled'] },
  },
};

const vote = {
  type: 'object',
  properties: {
    by: { type: 'string', description: 'the approver: a user email, or admin-token' },
    at: { type: 'integer' },
    decision: { enum: ['approve', 'deny'] },
    reason: { type: ['string', 'null'] },
    channel: { type: 'string' },
  },
};
const approval = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    status: { enum: ['pending', 'approved', 'denied', 'expired', 'cancelled', 'consumed'] },
    tier: { type: 'string' },
    callHash: {
      type: 'string',
      description: 'SHA-256 of RFC 8785 JSON of {agent, task, server, tool, arguments}',
    },
    agent: {
      type: 'object',
      properties: { id: { type: 'string' }, name: { type: 'string' }, owner: { type: 'string' } },
    },
    task: {
      type: ['object', 'null'],
      properties: { id: { type: 'string' }, purpose: { type: 'string' } },
    },
    server: { type: 'string' },
    tool: { type: 'string' },
    arguments: {},
    reasoning: {},
    policyIds: { type: 'array', items: { type: 'string' } },
    createdAt: { type: 'integer' },
    expiresAt: { type: 'integer' },
    quorum: {
      type: 'object',
      properties: { required: { type: 'integer' }, votes: { type: 'array', items: vote } },
    },
    decidedAt: { type: ['integer', 'null'] },
    reason: { type: ['string', 'null'] },
    recentActivity: {
      type: 'array',
      items: event,
      description: "the agent's latest audit events in this task (10 in lists, 20 in GET /approvals/{id})",
    },
  },
};
const grant = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    approvalId: { type: 'string' },
    agentId: { type: 'string' },
    taskId: { type: ['string', 'null'] },
    server: { type: 'string' },
    tool: { type: 'string' },
    arguments: {},
    argumentsPattern: { type: ['object', 'null'], additionalProperties: { type: 'string' } },
    grantedBy: { type: 'string' },
    createdAt: { type: 'integer' },
    expiresAt: { type: 'integer' },
    revokedAt: { type: ['integer', 'null'] },
  },
};
/** An export bundle made through the admin API (src/audit/exports-store.ts). */
const auditExport = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    createdAt: { type: 'integer', description: 'ms since the epoch' },
    createdBy: { type: 'string' },
    from: { type: ['string', 'null'] },
    to: { type: ['string', 'null'] },
    summary: {
      type: 'object',
      properties: {
        fromSeq: { type: 'integer' },
        toSeq: { type: 'integer' },
        events: { type: 'integer' },
        erased: { type: 'integer' },
        checkpoints: { type: 'array', items: { type: 'integer' } },
        treeSize: { type: 'integer' },
      },
    },
    verification: {
      type: 'object',
      description: '{ok: true, events, checkpoints, ...} or {ok: false, problem}',
      properties: { ok: { type: 'boolean' }, problem: { type: 'string' } },
    },
    files: {
      type: 'array',
      items: { type: 'object', properties: { name: { type: 'string' }, bytes: { type: 'integer' } } },
    },
  },
};

const approvalId = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const approvalReply = {
  200: ok({ type: 'object', properties: { approval } }),
  400: error,
  403: error,
  404: error,
  409: error,
};

const secretMetadata = {
  type: 'object',
  description: 'a secret without its value: no route ever returns a value',
  properties: {
    name: { type: 'string' },
    kind: { type: 'string' },
    version: { type: 'integer' },
    metadata: { type: 'object' },
    masterKeyId: { type: 'string' },
    createdAt: { type: 'integer' },
    updatedAt: { type: 'integer' },
  },
} as const;
const binding = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    secret: { type: 'string', description: 'the secret name, never its value' },
    targetKind: { enum: ['server', 'api'] },
    target: { type: 'string' },
    agentId: { type: ['string', 'null'], description: 'null: shared by every agent' },
    inject: { enum: ['header', 'env'] },
    field: { type: 'string' },
    template: { type: 'string' },
    source: { enum: ['store', 'config'] },
  },
} as const;
const nameParam = { name: 'name', in: 'path', required: true, schema: { type: 'string' } } as const;
/** The vault (docs/vault.md): metadata only. */
const vaultPaths = {
  '/api/v1/vault/secrets': {
    get: {
      summary: 'List secrets (metadata only; admin or auditor)',
      responses: {
        200: ok({ type: 'object', properties: { secrets: { type: 'array', items: secretMetadata } } }),
        403: error,
      },
    },
  },
  '/api/v1/vault/secrets/{name}': {
    put: {
      summary: 'Create or replace a secret (admin); answers with metadata, never the value',
      parameters: [nameParam],
      requestBody: {
        required: true,
        content: {
          'application/json': {
            schema: {
              type: 'object',
              required: ['value'],
              properties: { value: { type: 'string' }, kind: { type: 'string' } },
            },
          },
        },
      },
      responses: {
        200: ok({ type: 'object', properties: { secret: secretMetadata } }),
        400: error,
        403: error,
      },
    },
    delete: {
      summary: 'Delete a secret and its bindings (admin)',
      parameters: [nameParam],
      responses: { 200: ok({ type: 'object' }), 403: error, 404: error },
    },
  },
  '/api/v1/vault/bindings': {
    get: {
      summary: 'List bindings from the store and the configuration',
      responses: {
        200: ok({ type: 'object', properties: { bindings: { type: 'array', items: binding } } }),
        403: error,
      },
    },
    post: {
      summary:
        'Bind a secret to a server or API: header template (default Authorization: Bearer {{secret}}) or env; shared or for one agent',
      requestBody: {
        required: true,
        content: {
          'application/json': {
            schema: {
              type: 'object',
              required: ['secret'],
              properties: {
                secret: { type: 'string' },
                server: { type: 'string' },
                api: { type: 'string' },
                agent: { type: 'string', description: 'agent name or id; absent: shared' },
                header: { type: 'string', example: 'X-Api-Key: {{secret}}' },
                env: { type: 'string' },
              },
            },
          },
        },
      },
      responses: { 200: ok({ type: 'object', properties: { binding } }), 400: error, 403: error, 404: error },
    },
  },
  '/api/v1/vault/bindings/{id}': {
    delete: {
      summary: 'Remove a binding (admin)',
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
      responses: { 200: ok({ type: 'object' }), 403: error, 404: error },
    },
  },
} as const;

export const openApiDocument = {
  openapi: '3.1.0',
  info: { title: 'Custos admin API', version: '1' },
  components: {
    securitySchemes: {
      admin: {
        type: 'http',
        scheme: 'bearer',
        description: 'CUSTOS_ADMIN_TOKEN, or a user API token (custos_ut_...) from custos user token',
      },
      session: { type: 'apiKey', in: 'cookie', name: 'custos_session', description: 'console login' },
    },
  },
  security: [{ admin: [] }, { session: [] }],
  paths: {
    '/api/v1/vet/servers': {
      get: {
        summary: 'Inventory of upstream MCP servers: risk tier, owner, last vetting, pin status (live drift)',
        responses: {
          200: ok({
            type: 'object',
            properties: {
              servers: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    server: { type: 'string' },
                    transport: { enum: ['stdio', 'http'] },
                    owner: { type: ['string', 'null'] },
                    tier: { type: ['string', 'null'], enum: ['critical', 'high', 'medium', 'low', null] },
                    verdict: { type: ['string', 'null'] },
                    lastVetted: { type: ['integer', 'null'], description: 'ms since the Unix epoch' },
                    pins: { type: 'string' },
                  },
                },
              },
            },
          }),
          401: error,
          403: error,
        },
      },
    },
    '/api/v1/vet/runs': {
      post: {
        summary: 'Record a vetting (the JSON report of custos vet, schema version 1; see docs/vet.md)',
        requestBody: {
          content: {
            'application/json': {
              schema: { type: 'object', required: ['report'], properties: { report: { type: 'object' } } },
            },
          },
        },
        responses: {
          201: ok({ type: 'object', properties: { run: { type: 'object' } } }),
          400: error,
          403: error,
        },
      },
    },
    '/api/v1/agents': {
      get: {
        summary: 'List agents',
        parameters: [
          { name: 'status', in: 'query', schema: { enum: ['active', 'suspended', 'offboarded'] } },
          { name: 'owner', in: 'query', schema: { type: 'string' } },
        ],
        responses: {
          200: ok({ type: 'object', properties: { agents: { type: 'array', items: agent } } }),
          401: error,
        },
      },
      post: {
        summary: 'Onboard an agent; the client secret is in this response only',
        requestBody: {
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['name', 'owner', 'purpose'],
                properties: {
                  name: { type: 'string' },
                  owner: { type: 'string', format: 'email' },
                  purpose: { type: 'string' },
                  environment: { type: 'string' },
                  expiresAt: {
                    type: ['integer', 'null'],
                    description: 'ms; null or absent: the default expiry',
                  },
                  expiresInDays: { type: 'integer', minimum: 1 },
                },
              },
            },
          },
        },
        responses: {
          201: ok({
            type: 'object',
            properties: { agent, clientId: { type: 'string' }, clientSecret: { type: 'string' } },
          }),
          400: error,
          409: error,
        },
      },
    },
    '/api/v1/agents/{ref}': {
      get: {
        summary: 'Show an agent',
        parameters: [agentRef],
        responses: { 200: ok({ type: 'object', properties: { agent } }), 404: error },
      },
    },
    '/api/v1/agents/{ref}/suspend': {
      post: {
        summary: 'Suspend: the next call fails, even with an unexpired token',
        parameters: [agentRef],
        responses: { 200: ok({ type: 'object', properties: { agent } }), 404: error },
      },
    },
    '/api/v1/agents/{ref}/resume': {
      post: {
        summary: 'Resume a suspended agent',
        parameters: [agentRef],
        responses: { 200: ok({ type: 'object', properties: { agent } }), 404: error, 409: error },
      },
    },
    '/api/v1/agents/{ref}/offboard': {
      post: {
        summary:
          'Offboard in one transaction: epoch bumped, credentials erased, offboarding steps run (approvals cancelled, bindings deleted), one audit event',
        parameters: [agentRef],
        responses: {
          200: ok({
            type: 'object',
            properties: {
              agent,
              changed: { type: 'boolean' },
              credentialsErased: { type: 'integer' },
              steps: { type: 'object', additionalProperties: { type: 'object' } },
            },
          }),
          404: error,
        },
      },
    },
    '/api/v1/audit/events': {
      get: {
        summary: 'Recent audit events, oldest first',
        parameters: [
          { name: 'agent', in: 'query', schema: { type: 'string' } },
          { name: 'task', in: 'query', schema: { type: 'string' } },
          { name: 'trace', in: 'query', schema: { type: 'string' } },
          { name: 'after', in: 'query', schema: { type: 'integer' } },
          { name: 'limit', in: 'query', schema: { type: 'integer', maximum: 1000 } },
        ],
        responses: { 200: ok({ type: 'object', properties: { events: { type: 'array', items: event } } }) },
      },
    },
    '/api/v1/audit/events/{id}': {
      get: {
        summary: 'One audit event with its content',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: { 200: ok({ type: 'object', properties: { event } }), 404: error },
      },
    },
    '/api/v1/approvals': {
      get: {
        summary: 'Approval requests, newest first (roles admin, approver, auditor)',
        parameters: [
          {
            name: 'status',
            in: 'query',
            schema: { enum: ['pending', 'approved', 'denied', 'expired', 'cancelled', 'consumed'] },
          },
          { name: 'agent', in: 'query', schema: { type: 'string' }, description: 'agent id or name' },
          { name: 'limit', in: 'query', schema: { type: 'integer', maximum: 500 } },
        ],
        responses: {
          200: ok({ type: 'object', properties: { approvals: { type: 'array', items: approval } } }),
        },
      },
    },
    '/api/v1/approvals/stats': {
      get: {
        summary: 'Per approver: decisions per hour and the median seconds from request to decision',
        parameters: [{ name: 'hours', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 744 } }],
        responses: {
          200: ok({
            type: 'object',
            properties: {
              approvers: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    approver: { type: 'string' },
                    perHour: {
                      type: 'array',
                      items: {
                        type: 'object',
                        properties: {
                          hour: { type: 'string', format: 'date-time' },
                          count: { type: 'integer' },
                        },
                      },
                    },
                    medianSeconds: { type: ['number', 'null'] },
                  },
                },
              },
            },
          }),
        },
      },
    },
    '/api/v1/approvals/grants': {
      get: {
        summary: 'Grants, newest first (active=true: only those in force)',
        parameters: [
          { name: 'agent', in: 'query', schema: { type: 'string' } },
          { name: 'active', in: 'query', schema: { type: 'boolean' } },
          { name: 'limit', in: 'query', schema: { type: 'integer', maximum: 500 } },
        ],
        responses: { 200: ok({ type: 'object', properties: { grants: { type: 'array', items: grant } } }) },
      },
    },
    '/api/v1/approvals/grants/{id}/revoke': {
      post: {
        summary: 'End a grant now (role admin or approver)',
        parameters: [approvalId],
        responses: { 200: ok({ type: 'object', properties: { grant } }), 404: error, 409: error },
      },
    },
    '/api/v1/approvals/{id}': {
      get: {
        summary: "One approval with the agent's recent activity",
        parameters: [approvalId],
        responses: { 200: ok({ type: 'object', properties: { approval } }), 404: error },
      },
    },
    '/api/v1/approvals/{id}/approve': {
      post: {
        summary:
          'Approve (role approver); optionally grant matching calls of this agent, task and tool for N minutes',
        parameters: [approvalId],
        requestBody: {
          content: {
            'application/json': {
              schema: {
                type: 'object',
                properties: {
                  reason: { type: 'string' },
                  grant: {
                    type: 'object',
                    required: ['minutes'],
                    properties: {
                      minutes: { type: 'integer', minimum: 1 },
                      argumentsPattern: {
                        type: 'object',
                        additionalProperties: { type: 'string' },
                        description: 'argument name to a regular expression its value must match in full',
                      },
                    },
                  },
                  channel: { enum: ['console', 'cli', 'api'] },
                },
              },
            },
          },
        },
        responses: approvalReply,
      },
    },
    '/api/v1/approvals/{id}/deny': {
      post: {
        summary: 'Deny (role approver); the agent is told the reason',
        parameters: [approvalId],
        requestBody: {
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['reason'],
                properties: { reason: { type: 'string' }, channel: { enum: ['console', 'cli', 'api'] } },
              },
            },
          },
        },
        responses: approvalReply,
      },
    },
    '/api/v1/approvals/{id}/cancel': {
      post: {
        summary: 'Withdraw a pending request (role admin)',
        parameters: [approvalId],
        requestBody: {
          content: {
            'application/json': { schema: { type: 'object', properties: { reason: { type: 'string' } } } },
          },
        },
        responses: approvalReply,
      },
    },
    '/api/v1/session': {
      get: {
        summary: 'The user logged in with the console session cookie',
        security: [],
        responses: { 200: ok({ type: 'object', properties: { user } }), 401: error },
      },
      post: {
        summary: 'Console login with a local account; sets the HttpOnly, SameSite=Strict session cookie',
        description: 'Needs the header x-custos-csrf: 1 (and, when sent, an Origin of this server).',
        security: [],
        requestBody: {
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['email', 'password'],
                properties: { email: { type: 'string' }, password: { type: 'string' } },
              },
            },
          },
        },
        responses: {
          200: ok({ type: 'object', properties: { user, expiresAt: { type: 'integer' } } }),
          401: error,
          403: error,
        },
      },
      delete: {
        summary: 'Log out: end the session and clear the cookie',
        security: [],
        responses: { 204: { description: 'logged out' } },
      },
    },
    '/api/v1/session/password': {
      post: {
        summary: 'Change your own password (console session); other sessions end and this one is renewed',
        security: [{ session: [] }],
        requestBody: {
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['current', 'password'],
                properties: { current: { type: 'string' }, password: { type: 'string', minLength: 12 } },
              },
            },
          },
        },
        responses: { 204: { description: 'changed' }, 400: error, 401: error, 403: error, 429: error },
      },
    },
    '/api/v1/session/options': {
      get: {
        summary: 'Which login methods this Custos offers (password, OIDC single sign-on)',
        security: [],
        responses: { 200: ok({ type: 'object' }) },
      },
    },
    '/api/v1/session/oidc': {
      get: {
        summary: 'Start single sign-on: redirects to the OpenID provider (when console.oidc is set)',
        security: [],
        responses: { 302: { description: 'to the provider' } },
      },
    },
    '/api/v1/session/oidc/callback': {
      get: {
        summary: "The provider's redirect back: sets the session cookie and redirects to the console",
        security: [],
        responses: { 302: { description: 'to the console' }, 403: { description: 'login refused' } },
      },
    },
    '/api/v1/me': {
      get: {
        summary: 'The actor of this request (admin token, user token or console session) and its roles',
        responses: { 200: ok({ type: 'object' }), 401: error },
      },
    },
    '/api/v1/users': {
      get: {
        summary: 'List users (admin)',
        responses: { 200: ok({ type: 'object', properties: { users: { type: 'array', items: user } } }) },
      },
      post: {
        summary: 'Add a user (admin); a password makes it a local account',
        requestBody: {
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['email', 'roles'],
                properties: {
                  email: { type: 'string', format: 'email' },
                  name: { type: 'string' },
                  roles: { type: 'array', items: { enum: ['admin', 'approver', 'auditor'] } },
                  groups: { type: 'array', items: { type: 'string' } },
                  password: { type: 'string', minLength: 12 },
                },
              },
            },
          },
        },
        responses: { 201: ok({ type: 'object', properties: { user } }), 400: error, 403: error, 409: error },
      },
    },
    '/api/v1/users/{ref}': {
      get: {
        summary: 'Show a user and their API tokens (never the tokens themselves) (admin)',
        parameters: [userRef],
        responses: { 200: ok({ type: 'object' }), 404: error },
      },
    },
    '/api/v1/users/{ref}/disable': {
      post: {
        summary: 'Disable a user: sessions end and API tokens stop working (admin)',
        parameters: [userRef],
        responses: { 200: ok({ type: 'object', properties: { user } }), 404: error },
      },
    },
    '/api/v1/users/{ref}/enable': {
      post: {
        summary: 'Enable a disabled user (admin)',
        parameters: [userRef],
        responses: { 200: ok({ type: 'object', properties: { user } }), 404: error },
      },
    },
    '/api/v1/users/{ref}/password': {
      post: {
        summary: "Set a user's password (admin); their sessions end",
        parameters: [userRef],
        requestBody: {
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['password'],
                properties: { password: { type: 'string', minLength: 12 } },
              },
            },
          },
        },
        responses: { 200: ok({ type: 'object', properties: { user } }), 400: error, 404: error },
      },
    },
    '/api/v1/users/{ref}/tokens': {
      post: {
        summary: 'Create an admin API token for a user; the token is in this response only (admin)',
        parameters: [userRef],
        requestBody: {
          content: {
            'application/json': {
              schema: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
            },
          },
        },
        responses: {
          201: ok({ type: 'object', properties: { token: { type: 'string' }, info: { type: 'object' } } }),
          404: error,
        },
      },
    },
    '/api/v1/users/tokens/{id}/revoke': {
      post: {
        summary: 'Revoke a user API token (admin)',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: { 204: { description: 'revoked' }, 404: error },
      },
    },
    '/api/v1/overview': {
      get: {
        summary: 'Agents by status, and governed requests and denials per minute over the last hour',
        responses: { 200: ok({ type: 'object' }) },
      },
    },
    '/api/v1/stream': {
      get: {
        summary: 'Server-sent events: "ready", then one "audit" event per new audit record (no content)',
        responses: { 200: { description: 'text/event-stream' } },
      },
    },
    '/api/v1/servers/{name}/tools': {
      get: {
        summary: 'The tools an upstream server offers, as last listed',
        parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
        responses: { 200: ok({ type: 'object' }), 404: error },
      },
    },
    '/api/v1/audit/exports': {
      post: {
        summary:
          'Write an audit export bundle of the events in a time window (role admin), verify it at once, and keep it under <data>/exports/<id>/; the same bundle as `custos audit export`',
        requestBody: {
          content: {
            'application/json': {
              schema: {
                type: 'object',
                additionalProperties: false,
                properties: {
                  from: {
                    type: 'string',
                    format: 'date-time',
                    description: 'earliest event time, inclusive',
                  },
                  to: { type: 'string', format: 'date-time', description: 'latest event time, inclusive' },
                },
              },
            },
          },
        },
        responses: {
          201: ok({ type: 'object', properties: { export: auditExport } }),
          400: error,
          403: error,
          404: error,
        },
      },
      get: {
        summary: 'The export bundles made through the API, newest first (roles admin or auditor)',
        responses: {
          200: ok({ type: 'object', properties: { exports: { type: 'array', items: auditExport } } }),
          403: error,
        },
      },
    },
    '/api/v1/audit/exports/{id}': {
      get: {
        summary: 'One export bundle: window, summary, verification result and files (roles admin or auditor)',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          200: ok({ type: 'object', properties: { export: auditExport } }),
          403: error,
          404: error,
        },
      },
    },
    '/api/v1/audit/exports/{id}/files/{name}': {
      get: {
        summary:
          'Download one file of an export bundle (events.jsonl, leaves.txt, checkpoints.txt, proofs.json, manifest.txt, key.txt, README.md); put them in one directory and run `custos audit verify DIR --key KEY`',
        parameters: [
          { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
          { name: 'name', in: 'path', required: true, schema: { type: 'string' } },
        ],
        responses: { 200: { description: 'the file' }, 403: error, 404: error },
      },
    },
    '/api/v1/audit/exporters': {
      get: {
        summary:
          'The configured audit exporters (ocsf-file, ocsf-webhook, otlp) and what each delivered, dropped and holds',
        responses: {
          200: ok({
            type: 'object',
            properties: {
              exporters: {
                type: 'object',
                additionalProperties: {
                  type: 'object',
                  properties: {
                    delivered: { type: 'integer' },
                    dropped: { type: 'integer' },
                    pending: { type: 'integer' },
                    lastError: { type: ['string', 'null'] },
                  },
                },
              },
            },
          }),
          403: error,
        },
      },
    },
    '/api/v1/audit/trace/{id}': {
      get: {
        summary:
          "A task's or trace's decision chain: reasoning, call, policy decision, approval and result, in log order (roles admin or auditor)",
        parameters: [
          {
            name: 'id',
            in: 'path',
            required: true,
            description: 'task id or trace id',
            schema: { type: 'string' },
          },
          {
            name: 'limit',
            in: 'query',
            schema: { type: 'integer', minimum: 1, maximum: 10000, default: 1000 },
          },
        ],
        responses: { 200: ok(decisionChain), 400: error, 403: error, 404: error },
      },
    },
    '/api/v1/servers': {
      get: { summary: 'Upstream MCP servers and their status', responses: { 200: ok({ type: 'object' }) } },
    },
    ...vaultPaths,
    ...detectPaths,
    ...lifecyclePaths,
    ...oauthPaths,
    ...agentAuthPaths,
  },
} as const;
