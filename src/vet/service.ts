import { toxicFlows } from './capabilities.js';
import { collect, type Source } from './collect.js';
import { detect } from './detect.js';
import { type Judge, runJudge } from './judge.js';
import { type Answers, assessRisk } from './questionnaire.js';
import { buildReport, type VetReport } from './report.js';
import { applySuppressions, type Suppression } from './suppressions.js';
import type { Finding, Neighbours, ServerSnapshot } from './types.js';

export interface VetOptions {
  /** Other servers the agent can reach (for shadowing and toxic flows): name to snapshot. */
  neighbours?: ReadonlyMap<string, ServerSnapshot>;
  suppressions?: readonly Suppression[];
  answers?: Answers;
  judge?: Judge;
  now?: Date;
  probe?: boolean;
}

/** Vet a snapshot already collected: detectors, variance findings, suppressions, flows, risk. */
export async function vetSnapshot(
  snapshot: ServerSnapshot,
  source: string,
  variance: readonly Finding[],
  options: VetOptions = {},
): Promise<VetReport> {
  const now = options.now ?? new Date();
  const others = [...(options.neighbours ?? new Map<string, ServerSnapshot>()).values()].filter(
    (s) => s.name !== snapshot.name,
  );
  const neighbours: Neighbours = new Map(others.map((s) => [s.name, s.tools.map((t) => String(t.name))]));
  let findings = [...detect(snapshot, neighbours), ...variance];
  if (options.judge) findings.push(...(await runJudge(options.judge, snapshot, findings)));
  const suppressed = applySuppressions(findings, options.suppressions ?? [], now);
  findings = suppressed.findings;
  const flows = toxicFlows([snapshot, ...others]);
  return buildReport({
    snapshot,
    source,
    findings,
    capabilities: flows.tools.filter((t) => t.server === snapshot.name),
    toxicFlows: flows.flows,
    risk: assessRisk(snapshot, findings, options.answers),
    expiredSuppressions: suppressed.expired,
    ...(options.judge ? { judge: options.judge.name } : {}),
    now,
  });
}

/** Collect a server and vet it. */
export async function vetServer(source: Source, options: VetOptions = {}): Promise<VetReport> {
  const collected = await collect(source, { probe: options.probe ?? true });
  return vetSnapshot(collected.snapshot, collected.method, collected.variance, options);
}
