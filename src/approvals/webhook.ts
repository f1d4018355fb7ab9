import { request } from 'undici';
import type { ApprovalTierConfig } from '../core/config.js';
import { defaultRetry, type RetryPolicy, withRetry } from '../core/retry.js';
import type { ApprovalLinkTable } from '../store/index.js';
import type { LinkSigner } from './links.js';
import type { Approval } from './types.js';

export interface WebhookOptions {
  url: string;
  headers: Readonly<Record<string, string>>;
  /** Custos's public base URL, for the decision links. */
  baseUrl: string;
  /** Tries and backoff per message (default 3 tries from 500 ms). */
  retry?: RetryPolicy;
  onError(error: unknown, approvalId: string): void;
}

/** Slack mrkdwn treats &, < and > as control characters. */
function slackEscape(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/** The arguments and reasoning as Custos renders them: its own JSON, never text the agent formatted. */
export function renderJson(value: unknown): string {
  return value === null || value === undefined ? '(none)' : JSON.stringify(value, null, 2);
}

/** The people a webhook mints decision links for: the tier's listed users, minus the owner unless allowed. */
export function linkRecipients(approval: Approval, tier: ApprovalTierConfig): string[] {
  const owner = approval.agent.owner.toLowerCase();
  return [
    ...new Set(
      (tier.approvers ?? [])
        .filter((a) => a.includes('@'))
        .map((a) => a.toLowerCase())
        .filter((a) => tier.ownerMayApprove || a !== owner),
    ),
  ];
}

/**
 * The webhook channel: one Slack-compatible message per new request, with signed one-time
 * approve and deny links per listed approver. The links open a confirmation page (GET); only
 * its form (POST) decides, so chat link previews cannot approve anything.
 */
export class WebhookChannel {
  constructor(private readonly options: WebhookOptions) {}

  async announce(
    approval: Approval,
    tier: ApprovalTierConfig,
    signer: LinkSigner | undefined,
    saveLinks: (rows: ApprovalLinkTable[]) => Promise<void>,
  ): Promise<void> {
    try {
      const links: Array<{ approver: string; approve: string; deny: string }> = [];
      const rows: ApprovalLinkTable[] = [];
      if (signer !== undefined) {
        for (const approver of linkRecipients(approval, tier)) {
          const pair = { approver, approve: '', deny: '' };
          for (const decision of ['approve', 'deny'] as const) {
            const { token, claim } = signer.mint({
              approvalId: approval.id,
              approver,
              decision,
              expiresAt: approval.expiresAt,
            });
            rows.push({
              nonce: claim.nonce,
              approval_id: approval.id,
              approver,
              decision,
              expires_at: approval.expiresAt,
              used_at: null,
            });
            pair[decision] = `${this.options.baseUrl}/approvals/links/${token}`;
          }
          links.push(pair);
        }
      }
      await saveLinks(rows);
      const body = JSON.stringify(slackMessage(approval, links));
      // The same message each try: the links in it were saved once and stay valid.
      await withRetry(this.options.retry ?? defaultRetry, async () => {
        const res = await request(this.options.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...this.options.headers },
          body,
          headersTimeout: 10_000,
          bodyTimeout: 10_000,
        });
        await res.body.dump();
        if (res.statusCode >= 300) throw new Error(`webhook answered HTTP ${res.statusCode}`);
      });
    } catch (error) {
      this.options.onError(error, approval.id);
    }
  }
}

/** A Slack incoming-webhook payload: `text` for plain receivers, `blocks` for Slack. */
export function slackMessage(
  approval: Approval,
  links: ReadonlyArray<{ approver: string; approve: string; deny: string }>,
): Record<string, unknown> {
  const who = `${approval.agent.name} (owner ${approval.agent.owner})`;
  const task = approval.task === null ? 'no task' : `task "${approval.task.purpose}" (${approval.task.id})`;
  const summary = `Approval needed: ${who} wants to call ${approval.server}.${approval.tool}, ${task}. Tier ${approval.tier}, ${approval.quorum.required} approval(s) needed, expires ${new Date(approval.expiresAt).toISOString()}. Request ${approval.id}.`;
  const details = [
    `*Agent:* ${slackEscape(who)}`,
    `*Task:* ${slackEscape(task)}`,
    `*Call:* \`${slackEscape(`${approval.server}.${approval.tool}`)}\``,
    `*Policy:* ${slackEscape(approval.policyIds.join(', '))}`,
    `*Arguments:*\n\`\`\`${slackEscape(renderJson(approval.arguments))}\`\`\``,
    `*Agent's reasoning:*\n\`\`\`${slackEscape(renderJson(approval.reasoning))}\`\`\``,
    `*Call hash:* \`${approval.callHash}\``,
  ].join('\n');
  const blocks: Array<Record<string, unknown>> = [
    { type: 'section', text: { type: 'mrkdwn', text: slackEscape(summary) } },
    { type: 'section', text: { type: 'mrkdwn', text: details } },
  ];
  for (const link of links) {
    blocks.push({
      type: 'actions',
      elements: [
        {
          type: 'button',
          text: { type: 'plain_text', text: `Approve as ${link.approver}` },
          style: 'primary',
          url: link.approve,
        },
        {
          type: 'button',
          text: { type: 'plain_text', text: `Deny as ${link.approver}` },
          style: 'danger',
          url: link.deny,
        },
      ],
    });
  }
  return { text: summary, blocks };
}
