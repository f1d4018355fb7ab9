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
const ok = (schema: object) => ({ description: 'ok', content: { 'application/json': { schema } } });

export const openApiDocument = {
  openapi: '3.1.0',
  info: { title: 'Custos admin API', version: '1' },
  components: {
    securitySchemes: { admin: { type: 'http', scheme: 'bearer', description: 'CUSTOS_ADMIN_TOKEN' } },
  },
  security: [{ admin: [] }],
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
    '/api/v1/servers': {
      get: { summary: 'Upstream MCP servers and their status', responses: { 200: ok({ type: 'object' }) } },
    },
  },
} as const;
