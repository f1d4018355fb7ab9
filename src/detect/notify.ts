import { request } from 'undici';
import { type RetryPolicy, withRetry } from '../core/retry.js';
import type { Incident } from './incidents.js';

/** A Slack-compatible incoming-webhook message: `text` for every client, `blocks` for Slack. */
export interface WebhookMessage {
  text: string;
  blocks: Array<Record<string, unknown>>;
}

/** The message for an incident opening or closing. */
export function incidentMessage(
  incident: Incident,
  event: 'opened' | 'closed',
  extra?: string,
): WebhookMessage {
  const what = `${incident.scope} ${incident.target}`;
  const head =
    event === 'opened'
      ? `:rotating_light: Custos incident ${incident.id} opened: ${what} contained (${incident.detector})`
      : `:white_check_mark: Custos incident ${incident.id} closed by ${incident.closedBy ?? 'unknown'}`;
  const lines = [
    head,
    `*Trigger:* ${incident.detector}${incident.trigger.detail ? `: ${String(incident.trigger.detail)}` : ''}`,
    `*Detected:* ${new Date(incident.detectedAt).toISOString()}`,
    ...(extra ? [extra] : []),
  ];
  return {
    text: head,
    blocks: [{ type: 'section', text: { type: 'mrkdwn', text: lines.join('\n') } }],
  };
}

/**
 * POST a message to a webhook, trying again with backoff as `retry` says; resolves to the
 * HTTP status and the tries it took. Network errors and non-2xx answers (after the last try) reject with a message fit for the incident's action record (never the URL's secret path).
 */
export async function postWebhook(
  url: string,
  message: WebhookMessage,
  retry: RetryPolicy = { attempts: 1, backoffMs: 0 },
  timeoutMs = 5000,
): Promise<{ status: number; attempts: number }> {
  const body = JSON.stringify(message);
  const { result, attempts } = await withRetry(retry, async () => {
    const res = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    await res.body.dump();
    if (res.statusCode >= 300) throw new Error(`webhook answered HTTP ${res.statusCode}`);
    return res.statusCode;
  });
  return { status: result, attempts };
}

/** The webhook's origin only, for records: the path of a Slack webhook URL is its secret. */
export function webhookOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'invalid url';
  }
}
