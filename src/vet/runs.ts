import { randomUUID } from 'node:crypto';
import type { Store } from '../store/index.js';
import type { VetReport } from './report.js';

export interface VetRun {
  id: string;
  server: string;
  vettedAt: number;
  verdict: string;
  tier: string;
  score: number;
  block: number;
  warn: number;
  info: number;
  source: string;
}

/** Record one vetting: the inventory shows each server's latest. */
export async function recordRun(store: Store, report: VetReport, at: number): Promise<VetRun> {
  const run: VetRun = {
    id: `vet_${randomUUID()}`,
    server: report.server.name,
    vettedAt: at,
    verdict: report.verdict,
    tier: report.risk.tier,
    score: report.risk.score,
    block: report.summary.block,
    warn: report.summary.warn,
    info: report.summary.info,
    source: report.server.source,
  };
  await store.db
    .insertInto('vet_runs')
    .values({
      id: run.id,
      server: run.server,
      vetted_at: run.vettedAt,
      verdict: run.verdict,
      tier: run.tier,
      score: run.score,
      block_count: run.block,
      warn_count: run.warn,
      info_count: run.info,
      source: run.source,
      report: JSON.stringify(report),
    })
    .execute();
  return run;
}

/** The latest vetting of each server. */
export async function latestRuns(store: Store): Promise<Map<string, VetRun>> {
  const rows = await store.db
    .selectFrom('vet_runs')
    .selectAll()
    .orderBy('vetted_at', 'asc')
    .orderBy('id')
    .execute();
  const out = new Map<string, VetRun>();
  for (const r of rows) {
    out.set(r.server, {
      id: r.id,
      server: r.server,
      vettedAt: Number(r.vetted_at),
      verdict: r.verdict,
      tier: r.tier,
      score: Number(r.score),
      block: Number(r.block_count),
      warn: Number(r.warn_count),
      info: Number(r.info_count),
      source: r.source,
    });
  }
  return out;
}
