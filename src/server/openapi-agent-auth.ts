/** OpenAPI paths of agent authentication: private_key_jwt keys (RFC 7523) and DPoP (RFC 9449). */
import { agentRef, err, ok } from './openapi-parts.js';

const credential = {
  type: 'object',
  description: 'a credential without its secret: id, agentId, kind, createdAt, revokedAt, publicJwk',
};
const body = (schema: object) => ({ required: true, content: { 'application/json': { schema } } });

export const agentAuthPaths = {
  '/api/v1/agents/{ref}/credentials': {
    get: {
      summary: "An agent's credentials (client secrets by id only, public keys with their JWK)",
      parameters: [agentRef],
      responses: {
        200: ok({ type: 'object', properties: { credentials: { type: 'array', items: credential } } }),
        404: err,
      },
    },
  },
  '/api/v1/agents/{ref}/keys': {
    post: {
      summary: 'Register a public key (JWK: Ed25519, P-256 or RSA >= 2048) for private_key_jwt (needs admin)',
      parameters: [agentRef],
      requestBody: body({ type: 'object', required: ['jwk'], properties: { jwk: { type: 'object' } } }),
      responses: { 201: ok({ type: 'object', properties: { credential } }), 400: err, 404: err, 409: err },
    },
  },
  '/api/v1/agents/{ref}/credentials/{id}/revoke': {
    post: {
      summary: 'Revoke one credential of the agent (needs admin)',
      parameters: [agentRef, { name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
      responses: { 200: ok({ type: 'object', properties: { credential } }), 404: err },
    },
  },
  '/api/v1/agents/{ref}/dpop': {
    post: {
      summary:
        'Require DPoP-bound tokens for the agent (require: true) or allow bearer tokens again (needs admin)',
      parameters: [agentRef],
      requestBody: body({
        type: 'object',
        required: ['require'],
        properties: { require: { type: 'boolean' } },
      }),
      responses: {
        200: ok({ type: 'object', properties: { agent: { type: 'object' } } }),
        400: err,
        404: err,
        409: err,
      },
    },
  },
} as const;
