/** OpenAPI paths of the OAuth broker (upstream OAuth 2 credentials, docs/oauth.md). */
import { err, ok } from './openapi-parts.js';

const nameParam = {
  name: 'name',
  in: 'path',
  required: true,
  description: 'credential name (custos.yaml oauth.credentials)',
  schema: { type: 'string' },
};
const credential = {
  type: 'object',
  description: 'an OAuth credential and the state of its tokens; never a token',
  properties: {
    name: { type: 'string' },
    grant: { enum: ['authorization_code', 'client_credentials'] },
    status: { enum: ['disconnected', 'connected', 'reconnect_required'] },
    scope: { type: ['string', 'null'], description: 'scope the provider granted' },
    accessExpiresAt: { type: ['integer', 'null'], description: 'ms since the Unix epoch' },
    hasRefreshToken: { type: 'boolean' },
    connectedAt: { type: ['integer', 'null'] },
    connectedBy: { type: ['string', 'null'] },
    refreshedAt: { type: ['integer', 'null'] },
    refreshCount: { type: 'integer' },
    lastError: { type: ['string', 'null'], description: 'code of the last refresh failure' },
  },
};

export const oauthPaths = {
  '/api/v1/oauth/credentials': {
    get: {
      summary: 'The configured OAuth credentials and their state (admin or auditor)',
      responses: {
        '200': ok({ type: 'object', properties: { credentials: { type: 'array', items: credential } } }),
      },
    },
  },
  '/api/v1/oauth/credentials/{name}': {
    get: {
      summary: 'One OAuth credential (admin or auditor)',
      parameters: [nameParam],
      responses: { '200': ok(credential), '404': err },
    },
  },
  '/api/v1/oauth/credentials/{name}/connect': {
    post: {
      summary:
        'Connect a credential (admin). Authorization code: returns the provider URL a human opens; the provider redirects back to /oauth/callback/{name}. Client credentials: obtains a token at once.',
      parameters: [nameParam],
      responses: {
        '200': ok({
          oneOf: [
            {
              type: 'object',
              required: ['kind', 'url', 'redirectUri', 'expiresAt'],
              properties: {
                kind: { const: 'redirect' },
                url: { type: 'string', description: 'authorization URL (PKCE S256, single-use state)' },
                redirectUri: { type: 'string' },
                expiresAt: { type: 'integer', description: 'the connection must finish before this time' },
              },
            },
            {
              type: 'object',
              required: ['kind', 'credential'],
              properties: { kind: { const: 'connected' }, credential },
            },
          ],
        }),
        '404': err,
        '502': err,
      },
    },
  },
  '/api/v1/oauth/credentials/{name}/disconnect': {
    post: {
      summary: 'Disconnect a credential (admin): its tokens are deleted from the vault',
      parameters: [nameParam],
      responses: { '200': ok(credential), '404': err },
    },
  },
  '/oauth/callback/{name}': {
    get: {
      summary:
        "The provider's redirect after consent (no Custos login: the single-use state authenticates it). Answers an HTML page.",
      security: [],
      parameters: [
        nameParam,
        { name: 'code', in: 'query', schema: { type: 'string' } },
        { name: 'state', in: 'query', required: true, schema: { type: 'string' } },
        { name: 'error', in: 'query', schema: { type: 'string' } },
      ],
      responses: { '200': { description: 'connected (HTML)' }, '400': { description: 'refused (HTML)' } },
    },
  },
};
