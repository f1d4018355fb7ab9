import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CustosError } from '../core/errors.js';
import { type DetectService, reportHtml, reportMarkdown } from '../detect/index.js';
import { type Actor, requireRole } from './actor.js';

const killBody = z.strictObject({
  scope: z.enum(['all', 'agent', 'task', 'server', 'tool']),
  target: z.string().min(1).optional(),
  reason: z.string().min(1).optional(),
});

const resumeBody = killBody.omit({ reason: true }).extend({
  /** Who resumes, when the admin token speaks for a person (the CLI's --by). */
  by: z.string().min(1).optional(),
});

const noteBody = z.strictObject({ text: z.string().min(1), by: z.string().min(1).optional() });
const closeBody = z.strictObject({ note: z.string().default(''), by: z.string().min(1).optional() });

const runBody = z.strictObject({
  agent: z.string().min(1),
  incident: z.string().min(1).optional(),
  dryRun: z.boolean().default(false),
});

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success) {
    throw new CustosError(
      'bad_request',
      parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '),
    );
  }
  return parsed.data;
}

/**
 * The person acting. A user acts as themselves; the admin token (the CLI) names the person
 * at the terminal in `by`, and without one acts as "admin token".
 */
function personOf(actor: Actor, by: string | undefined): string {
  if (actor.kind === 'user') {
    if (by !== undefined && by !== actor.name)
      throw new CustosError('forbidden', 'a user acts only as themselves');
    return actor.name;
  }
  return by ?? actor.name;
}

/** Admin API routes of the detect capability: kills, resumes, incidents, detections, playbooks. */
export function detectRoutes(detect: DetectService) {
  return (api: FastifyInstance): void => {
    api.get('/containments', async (request) => {
      requireRole(request, 'admin', 'approver', 'auditor');
      return { containments: detect.containments() };
    });
    api.post('/containments', async (request: FastifyRequest, reply) => {
      const actor = requireRole(request, 'admin');
      const body = parse(killBody, request.body);
      const containment = await detect.kill({
        scope: body.scope,
        ...(body.target ? { target: body.target } : {}),
        ...(body.reason ? { reason: body.reason } : {}),
        actor: actor.name,
      });
      return reply.code(201).send({ containment });
    });
    api.post('/containments/resume', async (request) => {
      const actor = requireRole(request, 'admin', 'approver');
      const body = parse(resumeBody, request.body);
      return detect.resume({
        scope: body.scope,
        ...(body.target ? { target: body.target } : {}),
        by: personOf(actor, body.by),
      });
    });

    api.get('/incidents', async (request) => {
      requireRole(request, 'admin', 'approver', 'auditor');
      const q = request.query as { status?: string; limit?: string };
      if (q.status !== undefined && q.status !== 'open' && q.status !== 'closed')
        throw new CustosError('bad_request', 'status must be open or closed');
      return {
        incidents: await detect.listIncidents({
          ...(q.status ? { status: q.status } : {}),
          limit: Math.min(Number(q.limit ?? 100) || 100, 1000),
        }),
      };
    });
    api.get('/incidents/:id', async (request) => {
      requireRole(request, 'admin', 'approver', 'auditor');
      const { id } = request.params as { id: string };
      return { summary: await detect.summary(id) };
    });
    api.get('/incidents/:id/report', async (request, reply) => {
      requireRole(request, 'admin', 'approver', 'auditor');
      const { id } = request.params as { id: string };
      const format = (request.query as { format?: string }).format ?? 'md';
      if (format !== 'md' && format !== 'html')
        throw new CustosError('bad_request', 'format must be md or html');
      const summary = await detect.summary(id);
      return format === 'html'
        ? reply.type('text/html; charset=utf-8').send(reportHtml(summary))
        : reply.type('text/markdown; charset=utf-8').send(reportMarkdown(summary));
    });
    api.post('/incidents/:id/notes', async (request) => {
      const actor = requireRole(request, 'admin', 'approver');
      const { id } = request.params as { id: string };
      const body = parse(noteBody, request.body);
      return { incident: await detect.addNote(id, personOf(actor, body.by), body.text) };
    });
    api.post('/incidents/:id/close', async (request) => {
      const actor = requireRole(request, 'admin', 'approver');
      const { id } = request.params as { id: string };
      const body = parse(closeBody, request.body);
      return { incident: await detect.closeIncident(id, personOf(actor, body.by), body.note) };
    });

    api.get('/detections', async (request) => {
      requireRole(request, 'admin', 'approver', 'auditor');
      const q = request.query as { agent?: string; limit?: string };
      return {
        detections: await detect.detections({
          ...(q.agent ? { agentId: q.agent } : {}),
          limit: Math.min(Number(q.limit ?? 100) || 100, 1000),
        }),
      };
    });
    api.get('/playbooks', async (request) => {
      requireRole(request, 'admin', 'approver', 'auditor');
      return { playbooks: detect.listPlaybooks() };
    });
    api.post('/playbooks/:name/run', async (request) => {
      const actor = requireRole(request, 'admin');
      const { name } = request.params as { name: string };
      const body = parse(runBody, request.body);
      return {
        actions: await detect.runPlaybookByName(name, {
          agent: body.agent,
          dryRun: body.dryRun,
          ...(body.incident ? { incidentId: body.incident } : {}),
          actor: actor.name,
        }),
      };
    });
  };
}
