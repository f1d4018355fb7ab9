/** OpenAPI paths of the agent lifecycle routes (renewal, orphans, access reviews). */
import { agentRef, err, ok } from './openapi-parts.js';

const attestation = {
  type: ['object', 'null'],
  properties: {
    id: { type: 'string' },
    reviewer: { type: 'string' },
    actor: { type: 'string' },
    note: { type: ['string', 'null'] },
    at: { type: 'integer' },
    reachDigest: { type: 'string' },
  },
};
const reach = {
  type: 'object',
  properties: {
    agent: { type: 'object' },
    servers: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          server: { type: 'string' },
          catalogKnown: { type: 'boolean' },
          tools: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                tool: { type: 'string' },
                access: { enum: ['allowed', 'approval', 'conditional'] },
                tier: { type: 'string' },
              },
            },
          },
        },
      },
    },
    bindings: { type: ['array', 'null'] },
    digest: { type: 'string' },
    lastAttestation: attestation,
    changedSinceAttestation: { type: 'boolean' },
  },
};

export const lifecyclePaths = {
  '/api/v1/agents/{ref}/renew': {
    post: {
      summary: "Extend an agent's expiry (days from now; an expiry suspension is lifted)",
      parameters: [agentRef],
      requestBody: {
        content: {
          'application/json': { schema: { type: 'object', properties: { days: { type: 'integer' } } } },
        },
      },
      responses: {
        200: ok({ type: 'object', properties: { agent: { type: 'object' } } }),
        400: err,
        404: err,
        409: err,
      },
    },
  },
  '/api/v1/lifecycle/orphans': {
    get: {
      summary: 'Agents whose owner is unknown or disabled, who are expired, or idle',
      parameters: [{ name: 'idleDays', in: 'query', schema: { type: 'integer' } }],
      responses: {
        200: ok({
          type: 'object',
          properties: { idleDays: { type: 'integer' }, orphans: { type: 'array' } },
        }),
      },
    },
  },
  '/api/v1/review': {
    get: {
      summary: "Each agent's reach (servers, permitted tools, bindings) with its last attestation",
      parameters: [{ name: 'owner', in: 'query', schema: { type: 'string' } }],
      responses: { 200: ok({ type: 'object', properties: { agents: { type: 'array', items: reach } } }) },
    },
  },
  '/api/v1/review/attest': {
    post: {
      summary: "Attest that the agents' reach was reviewed (roles admin or auditor)",
      requestBody: {
        content: {
          'application/json': {
            schema: {
              type: 'object',
              required: ['agents'],
              properties: {
                agents: { type: 'array', items: { type: 'string' } },
                reviewer: { type: 'string', format: 'email' },
                note: { type: 'string' },
              },
            },
          },
        },
      },
      responses: {
        201: ok({ type: 'object', properties: { agents: { type: 'array', items: reach } } }),
        400: err,
        403: err,
      },
    },
  },
  '/api/v1/review/{ref}/attestations': {
    get: {
      summary: 'Attestations of one agent, newest first',
      parameters: [agentRef],
      responses: {
        200: ok({ type: 'object', properties: { attestations: { type: 'array', items: attestation } } }),
      },
    },
  },
};
