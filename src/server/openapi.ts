import { detectPaths } from './openapi-detect.js';

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
            properties: {
              approvalId: { type: 'string' },
              decisions: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    seq: { type: 'integer' },
                    eventId: { type: 'string' },
                    time: { type: 'integer' },
                    method: { type: 'string' },
                    decision: { type: 'string' },
                    by: { type: ['string', 'null'] },
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
const ok = (schema: object) => ({ description: 'ok', content: { 'application/json': { schema } } });

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
const approvalId = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const approvalReply = {
  200: ok({ type: 'object', properties: { approval } }),
  400: error,
  403: error,
  404: error,
  409: error,
};

export const openApiDocument = {
  openapi: '3.1.0',
  info: { title: 'Custos admin API', version: '1' },
  components: {
    securitySchemes: { admin: { type: 'http', scheme: 'bearer', description: 'CUSTOS_ADMIN_TOKEN' } },
  },
  security: [{ admin: [] }],
  paths: {
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
                  expiresAt: { type: ['integer', 'null'] },
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
        summary: 'Offboard: revoke credentials and end access for good',
        parameters: [agentRef],
        responses: { 200: ok({ type: 'object', properties: { agent } }), 404: error },
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
    '/api/v1/audit/exports': {
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
    ...detectPaths,
  },
} as const;
