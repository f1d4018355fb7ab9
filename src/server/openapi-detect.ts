/** OpenAPI paths of the detect capability (containment, incidents, detections, playbooks). */
import { err, ok } from './openapi-parts.js';

const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const scopeBody = (extra: Record<string, object>, description: string) => ({
  content: {
    'application/json': {
      schema: {
        type: 'object',
        required: ['scope'],
        description,
        properties: {
          scope: { enum: ['all', 'agent', 'task', 'server', 'tool'] },
          target: { type: 'string', description: 'agent id or name, task id, server, or "server.tool"' },
          ...extra,
        },
      },
    },
  },
});
const containment = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    scope: { type: 'string' },
    target: { type: 'string' },
    reason: { type: 'string' },
    actor: { type: 'string' },
    incidentId: { type: ['string', 'null'] },
    createdAt: { type: 'integer' },
    resumeVotes: { type: 'array', items: { type: 'object' } },
    liftedAt: { type: ['integer', 'null'] },
  },
};
const incident = { type: 'object', description: 'see docs/incidents.md' };

export const detectPaths = {
  '/api/v1/containments': {
    get: {
      summary: 'Containments in force (kill switch, quarantines, disabled servers and tools)',
      responses: {
        200: ok({ type: 'object', properties: { containments: { type: 'array', items: containment } } }),
      },
    },
    post: {
      summary: 'Kill: contain at once; the running gateway refuses the next call (needs admin)',
      requestBody: scopeBody({ reason: { type: 'string' } }, 'what to contain'),
      responses: { 201: ok({ type: 'object', properties: { containment } }), 400: err, 403: err, 404: err },
    },
  },
  '/api/v1/containments/resume': {
    post: {
      summary: 'A human asks to resume; lifted once detect.resume.approvers different people asked',
      requestBody: scopeBody(
        { by: { type: 'string', description: 'the person, when the admin token speaks for one' } },
        'what to resume',
      ),
      responses: {
        200: ok({
          type: 'object',
          properties: {
            containment,
            lifted: { type: 'boolean' },
            votes: { type: 'integer' },
            needed: { type: 'integer' },
          },
        }),
        400: err,
        404: err,
      },
    },
  },
  '/api/v1/incidents': {
    get: {
      summary: 'Incidents, newest first',
      parameters: [
        { name: 'status', in: 'query', schema: { enum: ['open', 'closed'] } },
        { name: 'limit', in: 'query', schema: { type: 'integer', maximum: 1000 } },
      ],
      responses: {
        200: ok({ type: 'object', properties: { incidents: { type: 'array', items: incident } } }),
      },
    },
  },
  '/api/v1/incidents/{id}': {
    get: {
      summary:
        'An incident with counts, time to detect and contain, actions and its timeline from the audit log',
      parameters: [idParam],
      responses: { 200: ok({ type: 'object', properties: { summary: { type: 'object' } } }), 404: err },
    },
  },
  '/api/v1/incidents/{id}/report': {
    get: {
      summary: 'The incident report as Markdown or HTML',
      parameters: [idParam, { name: 'format', in: 'query', schema: { enum: ['md', 'html'] } }],
      responses: {
        200: { description: 'ok', content: { 'text/markdown': {}, 'text/html': {} } },
        404: err,
      },
    },
  },
  '/api/v1/incidents/{id}/notes': {
    post: {
      summary: 'Add a note',
      parameters: [idParam],
      requestBody: ok({
        type: 'object',
        required: ['text'],
        properties: { text: { type: 'string' }, by: { type: 'string' } },
      }),
      responses: { 200: ok({ type: 'object', properties: { incident } }), 404: err },
    },
  },
  '/api/v1/incidents/{id}/close': {
    post: {
      summary: 'Close with a closing note (containments stay until resumed)',
      parameters: [idParam],
      requestBody: ok({ type: 'object', properties: { note: { type: 'string' }, by: { type: 'string' } } }),
      responses: { 200: ok({ type: 'object', properties: { incident } }), 404: err, 409: err },
    },
  },
  '/api/v1/detections': {
    get: {
      summary: 'Detector findings (alerts, throttles, quarantines), newest first',
      parameters: [
        { name: 'agent', in: 'query', schema: { type: 'string' } },
        { name: 'limit', in: 'query', schema: { type: 'integer', maximum: 1000 } },
      ],
      responses: { 200: ok({ type: 'object' }) },
    },
  },
  '/api/v1/playbooks': {
    get: { summary: 'Loaded playbooks', responses: { 200: ok({ type: 'object' }) } },
  },
  '/api/v1/playbooks/{name}/run': {
    post: {
      summary: 'Run a playbook against an agent now (dryRun: record what it would do)',
      parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
      requestBody: ok({
        type: 'object',
        required: ['agent'],
        properties: { agent: { type: 'string' }, incident: { type: 'string' }, dryRun: { type: 'boolean' } },
      }),
      responses: { 200: ok({ type: 'object' }), 404: err },
    },
  },
} as const;
