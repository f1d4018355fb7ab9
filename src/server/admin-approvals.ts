import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import type { Approval, ApprovalService, ApprovalStatus } from '../approvals/index.js';
import { renderJson } from '../approvals/index.js';
import { CustosError, isCustosError } from '../core/errors.js';
import type { AgentService } from '../identity/index.js';
import { requireRole } from './actor.js';

const statuses = ['pending', 'approved', 'denied', 'expired', 'cancelled', 'consumed'] as const;

const approveBody = z.strictObject({
  reason: z.string().max(2000).optional(),
  grant: z
    .strictObject({
      minutes: z.number().int().positive(),
      argumentsPattern: z.record(z.string(), z.string()).optional(),
    })
    .optional(),
  channel: z.enum(['console', 'cli', 'api']).optional(),
});
const denyBody = z.strictObject({
  reason: z.string().min(1).max(2000),
  channel: z.enum(['console', 'cli', 'api']).optional(),
});
const cancelBody = z.strictObject({ reason: z.string().max(2000).optional() });

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

/** The approvals admin API under /api/v1 (the console, the CLI and automation use it). */
export function approvalRoutes(deps: { approvals: ApprovalService; agents: AgentService }) {
  return (api: FastifyInstance): void => {
    api.get('/approvals', async (request) => {
      requireRole(request, 'admin', 'approver', 'auditor');
      const raw = request.query as { status?: string; agent?: string; limit?: string };
      // An empty parameter (?status=) means no filter, as forms and the console send it.
      const q = {
        status: raw.status || undefined,
        agent: raw.agent || undefined,
        limit: raw.limit || undefined,
      };
      if (q.status !== undefined && !(statuses as readonly string[]).includes(q.status))
        throw new CustosError('bad_request', `status must be one of ${statuses.join(', ')}`);
      const agentId = q.agent === undefined ? undefined : (await deps.agents.require(q.agent)).id;
      const limit = q.limit === undefined ? 50 : Number(q.limit);
      if (!Number.isInteger(limit) || limit < 1)
        throw new CustosError('bad_request', 'limit must be a positive integer');
      const approvals = await deps.approvals.list({
        status: q.status as ApprovalStatus | undefined,
        agentId,
        limit: Math.min(limit, 500),
      });
      return { approvals };
    });
    api.get('/approvals/stats', async (request) => {
      requireRole(request, 'admin', 'approver', 'auditor');
      const q = request.query as { hours?: string };
      const hours = q.hours === undefined ? 24 : Number(q.hours);
      if (!Number.isInteger(hours) || hours < 1 || hours > 24 * 31)
        throw new CustosError('bad_request', 'hours must be a whole number from 1 to 744');
      return { approvers: await deps.approvals.stats(hours) };
    });
    api.get('/approvals/grants', async (request) => {
      requireRole(request, 'admin', 'approver', 'auditor');
      const q = request.query as { agent?: string; active?: string; limit?: string };
      const agentId = q.agent ? (await deps.agents.require(q.agent)).id : undefined;
      const limit = q.limit ? Number(q.limit) : 50;
      if (!Number.isInteger(limit) || limit < 1)
        throw new CustosError('bad_request', 'limit must be a positive integer');
      return { grants: await deps.approvals.grants({ agentId, active: q.active === 'true', limit }) };
    });
    api.post('/approvals/grants/:id/revoke', async (request) => {
      const actor = requireRole(request, 'admin', 'approver');
      const { id } = request.params as { id: string };
      return { grant: await deps.approvals.revokeGrant(actor, id) };
    });
    api.get('/approvals/:id', async (request) => {
      requireRole(request, 'admin', 'approver', 'auditor');
      const { id } = request.params as { id: string };
      return { approval: await deps.approvals.show(id) };
    });
    api.post('/approvals/:id/approve', async (request) => {
      const actor = requireRole(request, 'approver');
      const { id } = request.params as { id: string };
      const body = parse(approveBody, request.body);
      const approval = await deps.approvals.decide(actor, id, {
        decision: 'approve',
        reason: body.reason,
        grant: body.grant,
        channel: body.channel ?? 'api',
      });
      return { approval };
    });
    api.post('/approvals/:id/deny', async (request) => {
      const actor = requireRole(request, 'approver');
      const { id } = request.params as { id: string };
      const body = parse(denyBody, request.body);
      const approval = await deps.approvals.decide(actor, id, {
        decision: 'deny',
        reason: body.reason,
        channel: body.channel ?? 'api',
      });
      return { approval };
    });
    api.post('/approvals/:id/cancel', async (request) => {
      const actor = requireRole(request, 'admin');
      const { id } = request.params as { id: string };
      const body = parse(cancelBody, request.body);
      return { approval: await deps.approvals.cancel(actor, id, body.reason ?? null) };
    });
  };
}

function escapeHtml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

function page(reply: FastifyReply, status: number, title: string, body: string): FastifyReply {
  return reply
    .code(status)
    .header('cache-control', 'no-store')
    .header('referrer-policy', 'no-referrer')
    .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
    .type('text/html; charset=utf-8')
    .send(
      `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex"><title>${escapeHtml(title)}</title><style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:1rem auto;padding:0 1rem}pre{background:#f4f4f4;padding:.5rem;overflow-x:auto;white-space:pre-wrap}button{font-size:1.1rem;padding:.6rem 1.2rem}</style></head><body><h1>${escapeHtml(title)}</h1>${body}</body></html>`,
    );
}

function describe(approval: Approval): string {
  const rows: Array<[string, string]> = [
    ['Request', approval.id],
    ['Status', approval.status],
    ['Agent', `${approval.agent.name} (${approval.agent.id})`],
    ['Owner', approval.agent.owner],
    ['Task', approval.task === null ? 'none' : `${approval.task.purpose} (${approval.task.id})`],
    ['Call', `${approval.server}.${approval.tool}`],
    ['Policy', approval.policyIds.join(', ')],
    [
      'Tier',
      `${approval.tier}: ${approval.quorum.votes.filter((v) => v.decision === 'approve').length} of ${approval.quorum.required} approvals`,
    ],
    ['Expires', new Date(approval.expiresAt).toISOString()],
    ['Call hash', approval.callHash],
  ];
  const activity = (approval.recentActivity ?? [])
    .slice(-10)
    .map(
      (e) =>
        `<li>${escapeHtml(new Date(e.time).toISOString())} ${escapeHtml(e.method)} ${escapeHtml(`${e.server ?? ''}${e.target ? `.${e.target}` : ''}`)}: ${escapeHtml(e.outcome)}</li>`,
    )
    .join('');
  return (
    `<table>${rows.map(([k, v]) => `<tr><th align="left">${k}</th><td>${escapeHtml(v)}</td></tr>`).join('')}</table>` +
    `<h2>Arguments (as Custos received them)</h2><pre>${escapeHtml(renderJson(approval.arguments))}</pre>` +
    `<h2>The agent's reasoning</h2><pre>${escapeHtml(renderJson(approval.reasoning))}</pre>` +
    `<h2>What else the agent did</h2><ul>${activity || '<li>nothing recorded</li>'}</ul>`
  );
}

/**
 * The webhook channel's one-time links, outside /api/v1 (the link is the credential).
 * GET only shows a confirmation page, so link previews and prefetchers decide nothing;
 * the page's form POSTs to the same address, which uses the link up and decides.
 */
export function approvalLinkRoutes(approvals: ApprovalService) {
  return (app: FastifyInstance): void => {
    app.get('/approvals/links/:token', async (request, reply) => {
      const { token } = request.params as { token: string };
      try {
        const { claim, approval } = await approvals.inspectLink(token);
        const verb = claim.decision === 'approve' ? 'Approve' : 'Deny';
        return page(
          reply,
          200,
          `${verb} this call as ${claim.approver}?`,
          `${describe(approval)}<form method="post"><button type="submit">${verb} as ${escapeHtml(claim.approver)}</button></form>`,
        );
      } catch (error) {
        return linkFailure(reply, error);
      }
    });
    app.post('/approvals/links/:token', async (request, reply) => {
      const { token } = request.params as { token: string };
      try {
        const { claim, approval } = await approvals.decideByLink(token);
        return page(
          reply,
          200,
          `${claim.decision === 'approve' ? 'Approved' : 'Denied'} by ${claim.approver}`,
          `<p>Request ${escapeHtml(approval.id)} is now <strong>${escapeHtml(approval.status)}</strong>.</p>`,
        );
      } catch (error) {
        return linkFailure(reply, error);
      }
    });
  };
}

function linkFailure(reply: FastifyReply, error: unknown): FastifyReply {
  if (!isCustosError(error)) throw error;
  return page(
    reply,
    error.status,
    'This link cannot be used',
    `<p>${escapeHtml(error.message)} [${error.code}]</p>`,
  );
}
