import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { detect } from './detect.js';
import { rules } from './rules.js';
import type { Finding, Json, ServerSnapshot } from './types.js';

/**
 * The labelled corpus (src/vet/corpus/*.yaml) and its evaluation: which entries each rule
 * flags, per-rule precision and recall, and the issue's three targets.
 */
export type Label = 'explicit' | 'implicit' | 'shadowing' | 'benign';

export interface CorpusEntry {
  id: string;
  label: Label;
  server: string;
  tool: Json;
}

export const corpusDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'vet', 'corpus');

/** A parameter shorthand: "string" or "string: its description". */
function schemaOf(params: Record<string, string> | undefined): Json {
  const properties: Record<string, Json> = {};
  for (const [name, spec] of Object.entries(params ?? {})) {
    const [type, ...rest] = String(spec).split(':');
    const description = rest.join(':').trim();
    properties[name] = { type: (type ?? 'string').trim(), ...(description ? { description } : {}) };
  }
  return { type: 'object', properties };
}

export function loadCorpus(dir: string = corpusDir): {
  entries: CorpusEntry[];
  neighbours: Map<string, string[]>;
} {
  const context = parse(readFileSync(join(dir, 'context.yaml'), 'utf8')) as {
    servers: Record<string, string[]>;
  };
  const entries: CorpusEntry[] = [];
  for (const label of ['explicit', 'implicit', 'shadowing', 'benign'] as const) {
    const file = label === 'shadowing' ? 'shadowing.yaml' : `${label}.yaml`;
    const list = parse(readFileSync(join(dir, file), 'utf8')) as Array<{
      id: string;
      server: string;
      name: string;
      description: string;
      params?: Record<string, string>;
      annotations?: Json;
    }>;
    for (const e of list) {
      entries.push({
        id: e.id,
        label,
        server: e.server,
        tool: {
          name: e.name,
          description: e.description,
          inputSchema: schemaOf(e.params),
          ...(e.annotations ? { annotations: e.annotations } : {}),
        },
      });
    }
  }
  return { entries, neighbours: new Map(Object.entries(context.servers)) };
}

/** Vet one entry as a server with that single tool (its other tools from the context, if any). */
export function vetEntry(entry: CorpusEntry, neighbours: ReadonlyMap<string, readonly string[]>): Finding[] {
  const ownOthers = (neighbours.get(entry.server) ?? [])
    .filter((n) => n !== entry.tool.name)
    .map((name) => ({ name, description: '', inputSchema: { type: 'object' } }));
  const snapshot: ServerSnapshot = {
    name: entry.server,
    serverInfo: { name: entry.server, version: '1.0.0' },
    tools: [entry.tool, ...ownOthers],
    prompts: [],
    resources: [],
    resourceTemplates: [],
  };
  return detect(snapshot, neighbours).filter((f) => f.location.name === entry.tool.name);
}

export interface RuleFigures {
  rule: string;
  /** Entries the rule flagged at warn or block, by label. */
  fired: Record<Label, number>;
  precision: number | null;
  /** Share of all poisoned entries (explicit, implicit, shadowing) the rule flags. */
  recall: number;
}

export interface CorpusResult {
  counts: Record<Label, number>;
  explicitAtBlock: number;
  implicitFlagged: number;
  shadowingFlagged: number;
  shadowingAtBlock: number;
  benignAtWarn: number;
  benignAtBlock: number;
  perRule: RuleFigures[];
  /** Entry id to the warn/block rules that fired, for the misses and false positives. */
  misses: string[];
  falsePositives: Array<{ id: string; rules: string[] }>;
  targets: {
    explicitAllBlock: boolean;
    implicitAtLeast60: boolean;
    benignWarnAtMost2: boolean;
    benignNoBlock: boolean;
  };
}

/** Evaluate the corpus in `dir` (default: the main corpus; src/vet/corpus/holdout is the held-out set). */
export function evaluateCorpus(dir: string = corpusDir): CorpusResult {
  const { entries, neighbours } = loadCorpus(dir);
  const counts: Record<Label, number> = { explicit: 0, implicit: 0, shadowing: 0, benign: 0 };
  const fired = new Map<string, Record<Label, number>>(
    rules.map((r) => [r.id, { explicit: 0, implicit: 0, shadowing: 0, benign: 0 }]),
  );
  let explicitAtBlock = 0;
  let implicitFlagged = 0;
  let shadowingFlagged = 0;
  let shadowingAtBlock = 0;
  let benignAtWarn = 0;
  let benignAtBlock = 0;
  const misses: string[] = [];
  const falsePositives: Array<{ id: string; rules: string[] }> = [];
  for (const entry of entries) {
    counts[entry.label]++;
    const findings = vetEntry(entry, neighbours).filter((f) => f.severity !== 'info');
    const block = findings.some((f) => f.severity === 'block');
    const ruleIds = [...new Set(findings.map((f) => f.rule))];
    for (const id of ruleIds) {
      const row = fired.get(id);
      if (row) row[entry.label]++;
    }
    if (entry.label === 'explicit') {
      if (block) explicitAtBlock++;
      else misses.push(entry.id);
    } else if (entry.label === 'implicit') {
      if (findings.length > 0) implicitFlagged++;
      else misses.push(entry.id);
    } else if (entry.label === 'shadowing') {
      if (findings.length > 0) shadowingFlagged++;
      else misses.push(entry.id);
      if (block) shadowingAtBlock++;
    } else if (findings.length > 0) {
      benignAtWarn++;
      if (block) benignAtBlock++;
      falsePositives.push({ id: entry.id, rules: ruleIds });
    }
  }
  const poisoned = counts.explicit + counts.implicit + counts.shadowing;
  const perRule: RuleFigures[] = [...fired].map(([rule, f]) => {
    const tp = f.explicit + f.implicit + f.shadowing;
    const all = tp + f.benign;
    return { rule, fired: f, precision: all === 0 ? null : tp / all, recall: tp / poisoned };
  });
  return {
    counts,
    explicitAtBlock,
    implicitFlagged,
    shadowingFlagged,
    shadowingAtBlock,
    benignAtWarn,
    benignAtBlock,
    perRule,
    misses,
    falsePositives,
    targets: {
      explicitAllBlock: explicitAtBlock === counts.explicit,
      implicitAtLeast60: implicitFlagged >= 0.6 * counts.implicit,
      benignWarnAtMost2: benignAtWarn <= 0.02 * counts.benign,
      benignNoBlock: benignAtBlock === 0,
    },
  };
}

const pct = (n: number, d: number) => `${((100 * n) / d).toFixed(1)}%`;

/** The evaluation as Markdown tables (docs/vet.md carries a copy). */
export function corpusMarkdown(r: CorpusResult): string {
  const lines = [
    `Corpus: ${r.counts.explicit} explicit, ${r.counts.implicit} implicit, ${r.counts.shadowing} shadowing, ${r.counts.benign} benign.`,
    '',
    '| target | result | met |',
    '| --- | --- | --- |',
    `| every explicit poisoning at block | ${r.explicitAtBlock}/${r.counts.explicit} (${pct(r.explicitAtBlock, r.counts.explicit)}) | ${r.targets.explicitAllBlock ? 'yes' : 'no'} |`,
    `| >= 60% of implicit poisoning flagged (warn or block) | ${r.implicitFlagged}/${r.counts.implicit} (${pct(r.implicitFlagged, r.counts.implicit)}) | ${r.targets.implicitAtLeast60 ? 'yes' : 'no'} |`,
    `| <= 2% of benign at warn or block | ${r.benignAtWarn}/${r.counts.benign} (${pct(r.benignAtWarn, r.counts.benign)}) | ${r.targets.benignWarnAtMost2 ? 'yes' : 'no'} |`,
    `| no benign at block | ${r.benignAtBlock}/${r.counts.benign} | ${r.targets.benignNoBlock ? 'yes' : 'no'} |`,
    `| shadowing flagged (no target set) | ${r.shadowingFlagged}/${r.counts.shadowing} (${pct(r.shadowingFlagged, r.counts.shadowing)}), ${r.shadowingAtBlock} at block | - |`,
    '',
    '| rule | explicit | implicit | shadowing | benign | precision | recall (all poisoned) |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...r.perRule.map(
      (p) =>
        `| ${p.rule} | ${p.fired.explicit} | ${p.fired.implicit} | ${p.fired.shadowing} | ${p.fired.benign} | ${p.precision === null ? '-' : pct(p.precision, 1)} | ${pct(p.recall, 1)} |`,
    ),
  ];
  return lines.join('\n');
}
