import { z } from 'zod';
import type { ToolCapabilities, ToxicFlow } from './capabilities.js';
import { sortFindings, worstSeverity } from './detect.js';
import { definitionHash, sections } from './pins.js';
import type { RiskResult } from './questionnaire.js';
import { type OwaspId, owaspMcpTop10, ruleById, rules } from './rules.js';
import type { Suppression } from './suppressions.js';
import type { Finding, ServerSnapshot, Severity } from './types.js';

export const reportVersion = 1;

/**
 * The JSON report, schema version 1 (documented in docs/vet.md; `custos vet schema` prints
 * it as JSON Schema). Consumers should ignore fields they do not know.
 */
const severity = z.enum(['block', 'warn', 'info']);
const finding = z.object({
  rule: z.string(),
  severity,
  message: z.string(),
  owasp: z.array(z.string()),
  location: z.object({
    server: z.string(),
    kind: z.enum(['tool', 'prompt', 'resource', 'resourceTemplate', 'instructions']),
    name: z.string(),
    field: z.string(),
  }),
  evidence: z.object({ text: z.string(), start: z.number().int(), end: z.number().int() }),
  definitionHash: z.string(),
  suppressed: z.object({ reason: z.string(), expires: z.string() }).optional(),
});
export const vetReportSchema = z.object({
  schemaVersion: z.literal(reportVersion),
  generatedAt: z.string(),
  server: z.object({ name: z.string(), serverInfo: z.record(z.string(), z.unknown()), source: z.string() }),
  verdict: z.enum(['block', 'warn', 'pass']),
  summary: z.object({
    block: z.number().int(),
    warn: z.number().int(),
    info: z.number().int(),
    suppressed: z.number().int(),
    tools: z.number().int(),
    prompts: z.number().int(),
    resources: z.number().int(),
  }),
  findings: z.array(finding),
  definitions: z.array(z.object({ kind: z.string(), name: z.string(), hash: z.string() })),
  capabilities: z.array(
    z.object({ server: z.string(), tool: z.string(), capabilities: z.array(z.string()) }),
  ),
  toxicFlows: z.array(
    z.object({
      id: z.string(),
      severity: z.enum(['warn', 'info']),
      message: z.string(),
      legs: z.record(z.string(), z.array(z.string())),
      singleServer: z.boolean(),
    }),
  ),
  risk: z
    .object({
      tier: z.enum(['critical', 'high', 'medium', 'low']),
      score: z.number(),
      attested: z.boolean(),
      answered: z.number().int(),
      questions: z.number().int(),
      contradictions: z.array(z.object({ id: z.string(), question: z.string(), rules: z.array(z.string()) })),
      reasons: z.array(z.string()),
    })
    .loose(),
  expiredSuppressions: z.array(
    z.object({ rule: z.string(), definitionHash: z.string(), expires: z.string() }).loose(),
  ),
  judge: z.string().optional(),
});
export type VetReport = z.infer<typeof vetReportSchema>;

export interface ReportInput {
  snapshot: ServerSnapshot;
  source: string;
  findings: Finding[];
  capabilities: ToolCapabilities[];
  toxicFlows: ToxicFlow[];
  risk: RiskResult;
  expiredSuppressions: Suppression[];
  judge?: string;
  now: Date;
}

export function buildReport(input: ReportInput): VetReport {
  const findings = sortFindings(input.findings);
  const count = (s: Severity) => findings.filter((f) => !f.suppressed && f.severity === s).length;
  const worst = worstSeverity(findings);
  const definitions: VetReport['definitions'] = [];
  if (input.snapshot.instructions !== undefined)
    definitions.push({
      kind: 'instructions',
      name: input.snapshot.name,
      hash: definitionHash({ instructions: input.snapshot.instructions }, 'instructions'),
    });
  for (const { section, kind, key } of sections)
    for (const d of input.snapshot[section])
      definitions.push({ kind, name: key(d), hash: definitionHash(d, kind) });
  return {
    schemaVersion: reportVersion,
    generatedAt: input.now.toISOString(),
    server: { name: input.snapshot.name, serverInfo: input.snapshot.serverInfo, source: input.source },
    verdict: worst === 'block' ? 'block' : worst === 'warn' ? 'warn' : 'pass',
    summary: {
      block: count('block'),
      warn: count('warn'),
      info: count('info'),
      suppressed: findings.filter((f) => f.suppressed).length,
      tools: input.snapshot.tools.length,
      prompts: input.snapshot.prompts.length,
      resources: input.snapshot.resources.length + input.snapshot.resourceTemplates.length,
    },
    findings: findings.map((f) => ({ ...f, owasp: [...f.owasp] })),
    definitions,
    capabilities: input.capabilities,
    toxicFlows: input.toxicFlows,
    risk: input.risk as unknown as VetReport['risk'],
    expiredSuppressions: input.expiredSuppressions,
    ...(input.judge ? { judge: input.judge } : {}),
  };
}

/** Make invisible and control characters visible: evidence must show what the model reads. */
export function visible(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    const invisible =
      cp < 0x20 ||
      cp === 0x7f ||
      (cp >= 0x200b && cp <= 0x200f) ||
      (cp >= 0x202a && cp <= 0x202e) ||
      (cp >= 0x2060 && cp <= 0x2069) ||
      cp === 0xfeff ||
      cp === 0xa0 ||
      (cp >= 0xe0000 && cp <= 0xe007f);
    if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else out += invisible ? `<U+${cp.toString(16).toUpperCase().padStart(4, '0')}>` : ch;
  }
  return out;
}

function clip(text: string, max = 160): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

// Terminal ---------------------------------------------------------------------------------

export function renderTerminal(report: VetReport, color = false): string {
  const paint = (code: string, s: string) => (color ? `\u001b[${code}m${s}\u001b[0m` : s);
  const badge: Record<Severity, string> = {
    block: paint('1;31', 'BLOCK'),
    warn: paint('33', 'WARN '),
    info: paint('36', 'INFO '),
  };
  const s = report.summary;
  const lines = [
    `${report.server.name} (${String(report.server.serverInfo.name ?? '?')} ${String(report.server.serverInfo.version ?? '')}) via ${report.server.source}`,
    `${s.tools} tools, ${s.prompts} prompts, ${s.resources} resources: ${s.block} block, ${s.warn} warn, ${s.info} info${s.suppressed ? `, ${s.suppressed} suppressed` : ''}`,
    `verdict: ${report.verdict}   risk tier: ${report.risk.tier} (score ${report.risk.score}${report.risk.attested ? ', attested' : ', unattested'})`,
    '',
  ];
  for (const f of report.findings) {
    const where = `${f.location.kind} ${f.location.name} ${f.location.field}`;
    lines.push(
      `${f.suppressed ? 'SUPPR' : badge[f.severity]} ${f.rule} [${f.owasp.join(', ')}] ${where}`,
      `      ${f.message}`,
    );
    if (f.evidence.text !== '')
      lines.push(`      evidence [${f.evidence.start}-${f.evidence.end}]: ${clip(visible(f.evidence.text))}`);
    if (f.suppressed) lines.push(`      suppressed until ${f.suppressed.expires}: ${f.suppressed.reason}`);
    lines.push(`      definition ${f.definitionHash}`);
  }
  if (report.toxicFlows.length > 0) {
    lines.push('', 'toxic flows:');
    for (const flow of report.toxicFlows) {
      lines.push(`  ${flow.severity.toUpperCase()} ${flow.id}: ${flow.message}`);
      for (const [leg, tools] of Object.entries(flow.legs)) lines.push(`      ${leg}: ${tools.join(', ')}`);
    }
  }
  if (report.risk.contradictions.length > 0) {
    lines.push('', 'attestations the scan contradicts:');
    for (const c of report.risk.contradictions) lines.push(`  ${c.id} ${c.question} (${c.rules.join(', ')})`);
  }
  lines.push('', `risk: ${report.risk.reasons.join('; ')}`);
  for (const e of report.expiredSuppressions)
    lines.push(`note: suppression of ${e.rule} for ${e.definitionHash} expired on ${e.expires}`);
  return lines.join('\n');
}

// HTML -------------------------------------------------------------------------------------

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function renderHtml(report: VetReport): string {
  const e = (s: unknown) => escapeHtml(String(s ?? ''));
  const rows = report.findings
    .map(
      (f) => `<tr class="${e(f.suppressed ? 'suppressed' : f.severity)}">
  <td>${e(f.suppressed ? 'suppressed' : f.severity)}</td><td><code>${e(f.rule)}</code></td><td>${e(f.owasp.join(', '))}</td>
  <td>${e(f.location.kind)} <code>${e(f.location.name)}</code><br><small>${e(f.location.field)}</small></td>
  <td>${e(f.message)}${f.evidence.text ? `<pre>${e(visible(f.evidence.text))}</pre><small>offsets ${f.evidence.start}-${f.evidence.end}</small>` : ''}${f.suppressed ? `<p>suppressed until ${e(f.suppressed.expires)}: ${e(f.suppressed.reason)}</p>` : ''}<br><small><code>${e(f.definitionHash)}</code></small></td>
</tr>`,
    )
    .join('\n');
  const flows = report.toxicFlows
    .map(
      (f) =>
        `<li><strong>${e(f.id)}</strong> (${e(f.severity)}): ${e(f.message)}<ul>${Object.entries(f.legs)
          .map(([leg, tools]) => `<li>${e(leg)}: ${e(tools.join(', '))}</li>`)
          .join('')}</ul></li>`,
    )
    .join('');
  const caps = report.capabilities
    .map(
      (c) =>
        `<tr><td><code>${e(c.server)}.${e(c.tool)}</code></td><td>${e(c.capabilities.join(', '))}</td></tr>`,
    )
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Custos vet: ${e(report.server.name)}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:4px;vertical-align:top;text-align:left}
tr.block td:first-child{background:#fdd}tr.warn td:first-child{background:#ffd}tr.info td:first-child{background:#def}tr.suppressed{color:#777}pre{white-space:pre-wrap;margin:4px 0}</style>
</head><body>
<h1>Custos vet: ${e(report.server.name)}</h1>
<p>${e(report.server.serverInfo.name)} ${e(report.server.serverInfo.version)}, via ${e(report.server.source)}, ${e(report.generatedAt)}</p>
<p><strong>Verdict: ${e(report.verdict)}</strong>. Risk tier: <strong>${e(report.risk.tier)}</strong> (score ${e(report.risk.score)}, ${report.risk.attested ? 'attested' : 'unattested'}): ${e(report.risk.reasons.join('; '))}</p>
<p>${e(report.summary.tools)} tools, ${e(report.summary.prompts)} prompts, ${e(report.summary.resources)} resources; ${e(report.summary.block)} block, ${e(report.summary.warn)} warn, ${e(report.summary.info)} info, ${e(report.summary.suppressed)} suppressed.</p>
<h2>Findings</h2>
<table><thead><tr><th>severity</th><th>rule</th><th>OWASP MCP</th><th>where</th><th>what</th></tr></thead><tbody>
${rows}
</tbody></table>
<h2>Toxic flows</h2>${flows ? `<ul>${flows}</ul>` : '<p>none</p>'}
<h2>Tool capabilities</h2><table><tbody>${caps}</tbody></table>
</body></html>
`;
}

// SARIF 2.1.0 ------------------------------------------------------------------------------

const level: Record<Severity, 'error' | 'warning' | 'note'> = {
  block: 'error',
  warn: 'warning',
  info: 'note',
};

/** The report as a SARIF 2.1.0 log (OASIS), one run, rules with their OWASP tags. */
export function renderSarif(report: VetReport, artifactUri?: string): Record<string, unknown> {
  const usedRules = [...new Set(report.findings.map((f) => f.rule))];
  const ruleIndex = new Map(usedRules.map((id, i) => [id, i]));
  const uri = artifactUri ?? `mcp://${encodeURIComponent(report.server.name)}`;
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'custos-vet',
            informationUri: 'https://github.com/custos/custos/blob/main/docs/vet.md',
            semanticVersion: '0.1.0',
            rules: usedRules.map((id) => {
              const r = ruleById.get(id);
              return {
                id,
                name: r?.title.replace(/[^A-Za-z0-9]+/g, '') ?? id,
                shortDescription: { text: r?.title ?? id },
                fullDescription: { text: r?.help ?? id },
                help: {
                  text: `${r?.help ?? ''} OWASP MCP Top 10: ${(r?.owasp ?? []).map((o: OwaspId) => `${o} ${owaspMcpTop10[o]}`).join('; ')}`,
                },
                defaultConfiguration: { level: level[r?.severity ?? 'warn'] },
                properties: { tags: ['security', ...(r?.owasp ?? [])] },
              };
            }),
          },
        },
        results: report.findings.map((f) => ({
          ruleId: f.rule,
          ruleIndex: ruleIndex.get(f.rule) ?? 0,
          level: level[f.severity],
          message: { text: `${f.message} (${f.location.kind} ${f.location.name}, ${f.location.field})` },
          locations: [
            {
              physicalLocation: {
                artifactLocation: { uri },
                ...(f.evidence.end > f.evidence.start
                  ? {
                      region: { charOffset: f.evidence.start, charLength: f.evidence.end - f.evidence.start },
                    }
                  : {}),
              },
              logicalLocations: [
                {
                  fullyQualifiedName: `${f.location.server}/${f.location.kind}/${f.location.name}#${f.location.field}`,
                  kind: 'member',
                },
              ],
            },
          ],
          partialFingerprints: { definitionHash: f.definitionHash },
          properties: { owasp: f.owasp, evidence: visible(f.evidence.text) },
          ...(f.suppressed
            ? { suppressions: [{ kind: 'external', status: 'accepted', justification: f.suppressed.reason }] }
            : {}),
        })),
      },
    ],
  };
}

export { rules };
