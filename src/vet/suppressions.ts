import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';
import { CustosError } from '../core/errors.js';
import { ruleById } from './rules.js';
import type { Finding } from './types.js';

/**
 * A suppression names one rule and one definition (by its pin hash), with a reason and an
 * expiry. There are no wildcards: a changed definition gets a new hash and the suppression
 * no longer applies; an expired one is ignored.
 */
const suppression = z.strictObject({
  rule: z.string().refine((id) => ruleById.has(id), { error: 'unknown rule id' }),
  definitionHash: z
    .string()
    .regex(/^sha256:[0-9a-f]{64}$/, 'use the definition hash a report shows (sha256:...)'),
  reason: z.string().min(10, { error: 'say why, in a sentence' }),
  expires: z.iso.date({ error: 'expires must be a date (YYYY-MM-DD)' }),
  by: z.string().optional(),
});

const file = z.strictObject({ suppressions: z.array(suppression).default([]) });

export type Suppression = z.infer<typeof suppression>;

export function parseSuppressions(text: string, source = 'suppressions'): Suppression[] {
  const parsed = file.safeParse(parse(text) ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n');
    throw new CustosError('config_invalid', `${source} is invalid:\n${problems}`);
  }
  return parsed.data.suppressions;
}

export function readSuppressions(path: string | undefined): Suppression[] {
  if (path === undefined || !existsSync(path)) return [];
  return parseSuppressions(readFileSync(path, 'utf8'), path);
}

/** Mark findings a live suppression covers; expired suppressions are returned for the report. */
export function applySuppressions(
  findings: Finding[],
  suppressions: readonly Suppression[],
  now: Date,
): { findings: Finding[]; expired: Suppression[] } {
  const today = now.toISOString().slice(0, 10);
  const live = suppressions.filter((s) => s.expires >= today);
  const expired = suppressions.filter((s) => s.expires < today);
  const out = findings.map((f) => {
    const s = live.find((x) => x.rule === f.rule && x.definitionHash === f.definitionHash);
    return s ? { ...f, suppressed: { reason: s.reason, expires: s.expires } } : f;
  });
  return { findings: out, expired };
}
