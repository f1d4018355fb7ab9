import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CustosError } from '../core/errors.js';
import type { Finding, ServerSnapshot } from './types.js';

/**
 * An optional second opinion (for example an LLM asked whether a description steers the
 * model). Off by default and never required: the deterministic findings stand on their own,
 * and a judge's findings are labelled with its name (rule "judge.<name>").
 */
export interface Judge {
  name: string;
  judge(snapshot: ServerSnapshot, findings: readonly Finding[]): Promise<Finding[]>;
}

/** Load a judge from an ES module whose default export is a Judge. */
export async function loadJudge(modulePath: string): Promise<Judge> {
  const mod = (await import(pathToFileURL(resolve(modulePath)).href)) as { default?: Judge };
  const judge = mod.default;
  if (!judge || typeof judge.judge !== 'function' || typeof judge.name !== 'string') {
    throw new CustosError('usage', `${modulePath} does not export a default judge { name, judge() }`);
  }
  return judge;
}

/** Run a judge; its findings must name rules "judge.<name>" so they never pass for deterministic ones. */
export async function runJudge(
  judge: Judge,
  snapshot: ServerSnapshot,
  findings: readonly Finding[],
): Promise<Finding[]> {
  const extra = await judge.judge(snapshot, findings);
  return extra.map((f) => ({
    ...f,
    rule: f.rule.startsWith(`judge.${judge.name}`) ? f.rule : `judge.${judge.name}.${f.rule}`,
  }));
}
