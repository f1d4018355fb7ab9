import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { z } from 'zod';
import { CustosError } from '../core/errors.js';
import type { Finding, ServerSnapshot } from './types.js';

const question = z.strictObject({
  id: z.string().regex(/^[A-Z]+-\d+$/),
  area: z.string(),
  weight: z.number().int().min(1).max(3),
  question: z.string(),
  observe: z.string().optional(),
});
const questionnaireFile = z.strictObject({ version: z.literal(1), questions: z.array(question) });
export type Question = z.infer<typeof question>;

const answer = z.strictObject({
  answer: z.enum(['yes', 'partial', 'no', 'na']),
  evidence: z.string().optional(),
  comment: z.string().optional(),
});
const answersFile = z.strictObject({
  server: z.string().optional(),
  vendor: z.string().min(1),
  answeredBy: z.string().min(1),
  date: z.iso.date(),
  answers: z.record(z.string(), answer),
});
export type Answers = z.infer<typeof answersFile>;

const here = dirname(fileURLToPath(import.meta.url));

/** The questionnaire shipped with Custos (src/vet/questionnaire.yaml). */
export function loadQuestionnaire(): Question[] {
  const candidates = [
    join(here, 'questionnaire.yaml'),
    join(here, '..', '..', 'src', 'vet', 'questionnaire.yaml'),
  ];
  for (const file of candidates) {
    try {
      return questionnaireFile.parse(parse(readFileSync(file, 'utf8'))).questions;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  throw new CustosError('internal', 'questionnaire.yaml not found');
}

export function parseAnswers(text: string, source: string): Answers {
  const parsed = answersFile.safeParse(parse(text));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n');
    throw new CustosError('usage', `${source} is not a valid answers file:\n${problems}`);
  }
  const known = new Set(loadQuestionnaire().map((q) => q.id));
  const unknown = Object.keys(parsed.data.answers).filter((id) => !known.has(id));
  if (unknown.length > 0)
    throw new CustosError('usage', `${source} answers unknown questions: ${unknown.join(', ')}`);
  return parsed.data;
}

export function readAnswers(path: string): Answers {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new CustosError('usage', `cannot read ${path}: ${(error as Error).message}`);
  }
  return parseAnswers(text, path);
}

export type RiskTier = 'critical' | 'high' | 'medium' | 'low';

export interface Observation {
  id: string;
  /** False when the scanner saw something that contradicts a "yes". */
  holds: boolean;
  rules: string[];
}

export interface RiskResult {
  tier: RiskTier;
  /** 0 to 100, higher is better. */
  score: number;
  attested: boolean;
  answered: number;
  questions: number;
  observations: Observation[];
  /** Questions the vendor answered "yes" that the scanner contradicts. */
  contradictions: Array<{ id: string; question: string; rules: string[] }>;
  reasons: string[];
}

/** What the scanner can check of the questionnaire's claims. */
function observe(snapshot: ServerSnapshot, findings: readonly Finding[]): Map<string, Observation> {
  const live = findings.filter((f) => !f.suppressed && f.severity !== 'info');
  const ruled = (prefixes: string[]) => [
    ...new Set(live.filter((f) => prefixes.some((p) => f.rule.startsWith(p))).map((f) => f.rule)),
  ];
  const obs = new Map<string, Observation>();
  const put = (id: string, rules: string[]) => obs.set(id, { id, holds: rules.length === 0, rules });
  put('no-model-instructions', ruled(['instruction.']));
  put('no-hidden-content', ruled(['hidden.']));
  put('stable-definitions', ruled(['variance.']));
  put('no-cross-server', ruled(['shadowing.']));
  put('no-credential-requests', ruled(['sensitive.']));
  put('no-context-harvest', ruled(['exfiltration.']));
  put('annotations-accurate', ruled(['annotations.']));
  put('schemas-tight', [
    ...new Set(findings.filter((f) => f.rule === 'schema.over-broad' && !f.suppressed).map((f) => f.rule)),
  ]);
  const unannotated = snapshot.tools.filter((t) => t.annotations === undefined);
  put('annotations-present', unannotated.length > 0 ? ['tools without annotations'] : []);
  return obs;
}

const value = { yes: 1, partial: 0.5, no: 0 } as const;

/**
 * Combine what the scanner observed with what the vendor attests. An unsuppressed block
 * finding makes the tier critical whatever the answers; a "yes" the scanner contradicts
 * counts as "no" and caps the tier at high; without answers the tier is at best medium.
 */
export function assessRisk(
  snapshot: ServerSnapshot,
  findings: readonly Finding[],
  answers?: Answers,
): RiskResult {
  const questions = loadQuestionnaire();
  const observations = observe(snapshot, findings);
  const reasons: string[] = [];
  const contradictions: RiskResult['contradictions'] = [];
  let got = 0;
  let possible = 0;
  let answered = 0;
  for (const q of questions) {
    const o = q.observe ? observations.get(q.observe) : undefined;
    const a = answers?.answers[q.id]?.answer;
    if (a === 'na') continue;
    possible += q.weight;
    if (a !== undefined) answered++;
    let v: number = a === undefined ? (o?.holds ? 0.5 : 0) : value[a];
    if (a === 'yes' && o !== undefined && !o.holds) {
      contradictions.push({ id: q.id, question: q.question, rules: o.rules });
      v = 0;
    }
    if (a === undefined && o !== undefined && !o.holds) v = 0;
    got += q.weight * v;
  }
  const score = possible === 0 ? 0 : Math.round((100 * got) / possible);
  const live = findings.filter((f) => !f.suppressed);
  const blocks = live.filter((f) => f.severity === 'block').length;
  const warns = live.filter((f) => f.severity === 'warn').length;
  let tier: RiskTier;
  if (blocks > 0) {
    tier = 'critical';
    reasons.push(`${blocks} blocking finding(s)`);
  } else if (answers === undefined) {
    // Unattested: the scan alone decides, and it can vouch for no better than medium.
    tier = warns > 3 ? 'high' : 'medium';
    reasons.push('no vendor answers (unattested): tier from the scan alone, at best medium');
    if (warns > 0) reasons.push(`${warns} warning(s)`);
  } else if (score < 40) {
    tier = 'critical';
    reasons.push(`score ${score} below 40`);
  } else if (score < 60 || contradictions.length > 0 || warns > 3) {
    tier = 'high';
    if (score < 60) reasons.push(`score ${score} below 60`);
    if (contradictions.length > 0)
      reasons.push(`${contradictions.length} attestation(s) contradicted by the scan`);
    if (warns > 3) reasons.push(`${warns} warnings`);
  } else if (score < 80 || warns > 0) {
    tier = 'medium';
    if (score < 80) reasons.push(`score ${score} below 80`);
    if (warns > 0) reasons.push(`${warns} warning(s)`);
  } else {
    tier = 'low';
    reasons.push(`score ${score}, no findings above info, attested`);
  }
  return {
    tier,
    score,
    attested: answers !== undefined,
    answered,
    questions: questions.length,
    observations: [...observations.values()],
    contradictions,
    reasons,
  };
}
