/**
 * Evidence packs: for one compliance framework, the controls Custos can show evidence for, each
 * with what Custos shows and the files that show it, generated from the live store (agent
 * inventory, policy set, an audit export of the window with its verification, denials,
 * suspensions and offboardings, checkpoints), indexed in Markdown and JSON, and closed by a
 * manifest of SHA-256 hashes signed with the log key. A pack is evidence for an auditor, not a
 * certification.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { canonicalHash } from '../core/canonical.js';
import { CustosError } from '../core/errors.js';
import type { Store } from '../store/index.js';
import { exportBundle } from './bundle.js';
import type { AuditEvent } from './events.js';
import { openNote, parseVerifierKey } from './note.js';
import { eventFromRow, getEvent } from './query.js';
import type { TransparencyLog } from './tlog.js';
import { approvalDecisionOf, approvalIdOf, isApprovalEvent } from './trace.js';
import { verifyBundle } from './verify-bundle.js';

export const FRAMEWORKS = ['soc2', 'iso27001', 'iso42001', 'eu-ai-act'] as const;
export type Framework = (typeof FRAMEWORKS)[number];

/** Second line of an evidence manifest (never a decimal, so it cannot pass for a checkpoint). */
export const EVIDENCE_MANIFEST_TYPE = 'custos evidence pack v1';

export const EVIDENCE_FILES = {
  readme: 'README.md',
  indexMd: 'index.md',
  indexJson: 'index.json',
  manifest: 'manifest.txt',
  key: 'key.txt',
  agents: 'evidence/agents.json',
  policySet: 'evidence/policy-set.json',
  policies: 'evidence/policies',
  policySets: 'evidence/policy-sets',
  auditExport: 'evidence/audit-export',
  auditVerification: 'evidence/audit-verification.json',
  activity: 'evidence/activity-summary.json',
  denials: 'evidence/denials.jsonl',
  denialSummary: 'evidence/denials-summary.json',
  lifecycle: 'evidence/lifecycle.json',
  approvals: 'evidence/approvals.jsonl',
  checkpoints: 'evidence/checkpoints.txt',
} as const;

/** An agent as the inventory shows it, with its credentials (never a secret). */
export interface InventoryAgent {
  id: string;
  name: string;
  owner: string;
  purpose: string;
  environment: string;
  status: string;
  createdAt: number;
  updatedAt: number;
  expiresAt: number | null;
  credentials: Array<{ id: string; kind: string; createdAt: number; revokedAt: number | null }>;
}

export interface EvidenceInput {
  framework: Framework;
  /** Window start and end (ms since the epoch, inclusive); absent means unbounded. */
  from?: number;
  to?: number;
  outDir: string;
  /** The agent inventory, from the identity service. */
  agents: readonly InventoryAgent[];
  /** The policy files in force (from the policy directory), and where they came from. */
  policies: {
    directory: string;
    files: ReadonlyArray<{ name: string; text: string }>;
    /** Policies in the set, when the caller compiled it (else counted from @id annotations). */
    count?: number;
    /** The set's hash as the policy engine computes it, when the caller has it. */
    setHash?: { value: string; algorithm: string };
    /**
     * The policy set archive (`<data>/policy-sets`): the pack copies every archived set that the
     * window's events commit to (their policySetHash), and the set in force.
     */
    archive?: {
      directory: string;
      read(hash: string): { ok: true; text: string } | { ok: false; problem: string };
    };
  };
  /** Generation time (ms); injected so tests and reruns control it. */
  now: number;
  /** Custos version, for the index. */
  version: string;
}

type Support = 'supported' | 'partial';

interface ControlSpec {
  id: string;
  /** The control's name as the framework publishes it, or for SOC 2 (which names none) a short topic. */
  title: string;
  support: Support;
  shows: (facts: Facts) => string[];
  evidence: readonly string[];
  gaps: readonly string[];
}

interface FrameworkSpec {
  name: string;
  /** How the controls are named and where their full text is. */
  source: string;
  controls: readonly ControlSpec[];
}

/** What the generated files say, in numbers, for the index. */
interface Facts {
  agents: number;
  agentsWithOwner: number;
  activeAgents: number;
  suspendedAgents: number;
  offboardedAgents: number;
  revokedCredentials: number;
  policyFiles: number;
  policies: number;
  policySetHash: string;
  events: number;
  allowed: number;
  denied: number;
  failed: number;
  approvalEvents: number;
  checkpoints: number;
  bundle: { ok: boolean; events: number; detail: string };
  recordedPolicySetHashes: number;
  /** Of those, how many the pack carries with their exact text (evidence/policy-sets/). */
  archivedPolicySets: number;
  lifecycleChangesInWindow: number;
}

const F = EVIDENCE_FILES;

const soc2Access = [F.agents, F.policySet, F.policies, F.denials, F.denialSummary];

const frameworks: Record<Framework, FrameworkSpec> = {
  soc2: {
    name: 'SOC 2 (AICPA Trust Services Criteria, common criteria)',
    source:
      'The criterion ids are the AICPA 2017 Trust Services Criteria (with the 2022 revised points of focus). ' +
      'The titles here are short topic labels written by Custos, not the criteria text; read the criteria themselves.',
    controls: [
      {
        id: 'CC6.1',
        title: 'Logical access security over protected information assets',
        support: 'supported',
        shows: (f) => [
          'Custos sits between agents and their MCP tools: every call through it is authenticated with a short-lived OAuth token.',
          `Every call is decided by the Cedar policy set in force (${f.policies} policies in ${f.policyFiles} files, set hash ${f.policySetHash.slice(0, 16)}...); anything no policy permits is denied.`,
          `In the window: ${f.events} governed calls recorded, ${f.denied} denied.`,
        ],
        evidence: soc2Access,
        gaps: [
          'Covers AI agents reaching tools through Custos only, not other systems or human access.',
          'That agents cannot reach their tools around Custos depends on your network and credentials, not on Custos.',
        ],
      },
      {
        id: 'CC6.2',
        title: 'Registration and authorization of users before credentials are issued; removal of access',
        support: 'supported',
        shows: (f) => [
          `${f.agents} agents in the inventory, ${f.agentsWithOwner} with an accountable owner; each was registered with an owner and a purpose before its credentials were issued.`,
          `${f.offboardedAgents} offboarded and ${f.suspendedAgents} suspended agents; ${f.revokedCredentials} revoked credentials.`,
        ],
        evidence: [F.agents, F.lifecycle],
        gaps: ['Human users of the console and admin API are not part of this inventory.'],
      },
      {
        id: 'CC6.3',
        title: 'Authorizing, modifying and removing access by role and least privilege',
        support: 'partial',
        shows: (f) => [
          'Policies scope each agent to named servers and tools; task tokens can only narrow an agent’s reach.',
          `${f.denied} calls outside an agent’s permitted scope were denied in the window.`,
        ],
        evidence: [F.policySet, F.policies, F.denials, F.denialSummary, F.lifecycle],
        gaps: [
          'No record of periodic access reviews is produced.',
          'Policy changes are files; who approved a change is in your version control, not in this pack.',
        ],
      },
      {
        id: 'CC7.2',
        title: 'Monitoring system components for anomalies',
        support: 'partial',
        shows: (f) => [
          `Every governed call, allowed or not, is an event in a tamper-evident log (${f.events} in the window; ${f.denied} denied, ${f.failed} failed).`,
          'Events can be streamed to a SIEM as OCSF and to tracing as OpenTelemetry (exports section).',
        ],
        evidence: [F.activity, F.denials, F.denialSummary, F.auditExport, F.auditVerification],
        gaps: ['Detector findings and anomaly alerts are not included in this pack.'],
      },
      {
        id: 'CC7.3',
        title: 'Evaluating security events to determine whether they are incidents',
        support: 'partial',
        shows: () => [
          'Each denial names the policies and reasons that decided it; `custos audit trace <task>` shows the full decision chain (reasoning, call, decision, approval, result).',
        ],
        evidence: [F.denials, F.denialSummary, F.auditExport],
        gaps: ['Incident records and their evaluation are not included in this pack.'],
      },
      {
        id: 'CC7.4',
        title: 'Responding to identified security incidents',
        support: 'partial',
        shows: (f) => [
          `Response actions on agents: suspension (takes effect on the next call) and offboarding (credentials revoked). ${f.lifecycleChangesInWindow} lifecycle changes in the window.`,
        ],
        evidence: [F.lifecycle, F.agents],
        gaps: [
          'Only the current status and the time of the last change are kept per agent; earlier suspend and resume cycles are not listed unless the log recorded them as events.',
          'An incident response program and its records are outside Custos.',
        ],
      },
      {
        id: 'CC8.1',
        title: 'Authorizing, testing, approving and implementing changes',
        support: 'partial',
        shows: (f) => [
          `The policy set in force is included with its SHA-256 hash (${f.policySetHash.slice(0, 16)}...), so a reviewer can compare it with the approved version in version control.`,
          `${f.recordedPolicySetHashes} distinct policy set hashes are recorded in the window's log leaves; ${f.archivedPolicySets} of them are in evidence/policy-sets/ with their exact text (each file hashes to its name).`,
        ],
        evidence: [F.policySet, F.policies, F.policySets, F.auditExport],
        gaps: [
          'Change approval and testing happen in your change process (e.g. code review of the policy files).',
        ],
      },
    ],
  },
  iso27001: {
    name: 'ISO/IEC 27001:2022 Annex A',
    source:
      'Control ids and titles are those of ISO/IEC 27001:2022 Annex A (ISO/IEC 27002:2022). The control text is not reproduced; read the standard.',
    controls: [
      {
        id: 'A.5.15',
        title: 'Access control',
        support: 'supported',
        shows: (f) => [
          `Rules for agents’ access to tools are Cedar policies (${f.policies} policies, set hash ${f.policySetHash.slice(0, 16)}...), enforced in the gateway; deny by default.`,
          `${f.denied} denied calls in the window.`,
        ],
        evidence: soc2Access,
        gaps: ['Covers AI agents reaching tools through Custos only.'],
      },
      {
        id: 'A.5.16',
        title: 'Identity management',
        support: 'supported',
        shows: (f) => [
          `${f.agents} agent identities, ${f.agentsWithOwner} with an accountable owner, each with a lifecycle (active, suspended, offboarded).`,
        ],
        evidence: [F.agents, F.lifecycle],
        gaps: [],
      },
      {
        id: 'A.5.17',
        title: 'Authentication information',
        support: 'partial',
        shows: (f) => [
          'Agent client secrets are stored as scrypt hashes and shown once; access tokens are short-lived signed JWTs.',
          `${f.revokedCredentials} credentials revoked.`,
        ],
        evidence: [F.agents],
        gaps: ['Secrets for upstream systems (vault, rotation) are not covered by this pack.'],
      },
      {
        id: 'A.5.18',
        title: 'Access rights',
        support: 'partial',
        shows: (f) => [
          'Access rights are granted by policy and narrowed per task; removal is by suspension or offboarding.',
          `${f.suspendedAgents} suspended and ${f.offboardedAgents} offboarded agents.`,
        ],
        evidence: [F.agents, F.policySet, F.policies, F.lifecycle],
        gaps: ['No record of periodic access-rights reviews is produced.'],
      },
      {
        id: 'A.5.24',
        title: 'Information security incident management planning and preparation',
        support: 'partial',
        shows: () => [
          'Custos provides the means to stop an agent (suspend, offboard) and a verifiable record to investigate from.',
        ],
        evidence: [F.lifecycle],
        gaps: ['Planning, roles and procedures are organisational and outside Custos.'],
      },
      {
        id: 'A.5.25',
        title: 'Assessment and decision on information security events',
        support: 'partial',
        shows: (f) => [
          `${f.denied} denied calls with the deciding policies and reasons; decision chains per task with \`custos audit trace\`.`,
        ],
        evidence: [F.denials, F.denialSummary, F.auditExport],
        gaps: ['Assessments and decisions by people are not recorded by Custos.'],
      },
      {
        id: 'A.5.26',
        title: 'Response to information security incidents',
        support: 'partial',
        shows: (f) => [`${f.lifecycleChangesInWindow} agent suspensions or offboardings in the window.`],
        evidence: [F.lifecycle, F.agents],
        gaps: ['Incident records are not included in this pack.'],
      },
      {
        id: 'A.5.27',
        title: 'Learning from information security incidents',
        support: 'partial',
        shows: () => [
          'The decision chain of any task (reasoning, call, decision, approval, result) can be replayed from the log.',
        ],
        evidence: [F.auditExport],
        gaps: ['Lessons learned are organisational and outside Custos.'],
      },
      {
        id: 'A.5.28',
        title: 'Collection of evidence',
        support: 'supported',
        shows: (f) => [
          `The window's events are exported as a bundle with signed checkpoints and proofs that verifies offline (${f.bundle.detail}).`,
          'This pack itself is closed by a manifest of SHA-256 hashes signed with the log key.',
        ],
        evidence: [F.auditExport, F.auditVerification, F.checkpoints],
        gaps: [],
      },
      {
        id: 'A.8.15',
        title: 'Logging',
        support: 'supported',
        shows: (f) => [
          `Every governed call is a leaf of an RFC 9162 Merkle tree with signed checkpoints (${f.checkpoints} in the window); plaintext content can be erased without breaking proofs.`,
          `Offline verification of the window: ${f.bundle.detail}.`,
        ],
        evidence: [F.auditExport, F.auditVerification, F.checkpoints, F.activity],
        gaps: [],
      },
      {
        id: 'A.8.16',
        title: 'Monitoring activities',
        support: 'partial',
        shows: (f) => [
          `Activity per agent and outcome in the window (${f.events} calls); events can be streamed as OCSF and OpenTelemetry.`,
        ],
        evidence: [F.activity, F.denials, F.denialSummary],
        gaps: ['Detector findings and alerts are not included in this pack.'],
      },
    ],
  },
  iso42001: {
    name: 'ISO/IEC 42001:2023 Annex A',
    source:
      'Control ids and titles are those of ISO/IEC 42001:2023 Annex A. The control text is not reproduced; read the standard.',
    controls: [
      {
        id: 'A.6.2.8',
        title: 'AI system recording of event logs',
        support: 'supported',
        shows: (f) => [
          `Every tool call of every agent in use is recorded with the agent, its owner, the task, the decision, the agent's stated reasoning and the result (${f.events} events in the window).`,
          `The record is tamper-evident and verifies offline: ${f.bundle.detail}.`,
        ],
        evidence: [F.auditExport, F.auditVerification, F.checkpoints, F.activity, F.agents],
        gaps: [
          'Events inside the model (prompts to the model, model outputs not sent to a tool) are not recorded.',
        ],
      },
    ],
  },
  'eu-ai-act': {
    name: 'EU AI Act (Regulation (EU) 2024/1689)',
    source:
      'Article numbers and titles are those of Regulation (EU) 2024/1689. The article text is not reproduced; read the regulation. Whether these articles apply depends on the AI system’s classification.',
    controls: [
      {
        id: 'Article 12',
        title: 'Record-keeping',
        support: 'partial',
        shows: (f) => [
          `Automatic recording of the agents' tool use over time (${f.events} events in the window), tamper-evident and verifiable offline (${f.bundle.detail}).`,
        ],
        evidence: [F.auditExport, F.auditVerification, F.checkpoints, F.activity],
        gaps: [
          'Records cover tool calls made through Custos, not the model’s internal operation.',
          'Retention periods are set by the operator, not by Custos.',
        ],
      },
      {
        id: 'Article 14',
        title: 'Human oversight',
        support: 'partial',
        shows: (f) => [
          'People can stop an agent at once (suspend, offboard) and see each decision chain.',
          `${f.approvalEvents} approval events (a person approving or rejecting an agent action) in the window.`,
        ],
        evidence: [F.approvals, F.lifecycle, F.agents, F.denials],
        gaps: [
          'Oversight measures built into the AI system itself, and the training of overseers, are outside Custos.',
        ],
      },
    ],
  },
};

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function write(dir: string, path: string, text: string): void {
  const full = join(dir, path);
  mkdirSync(dirname(full), { recursive: true });
  writeFileSync(full, text);
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

/** Every file under dir, as forward-slash paths relative to it, sorted. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else out.push(relative(dir, full).split(sep).join('/'));
    }
  };
  walk(dir);
  return out.sort();
}

/** Events in the window, oldest first, in pages (metadata only: content stays in the bundle). */
async function eventsInWindow(
  store: Store,
  from: number | undefined,
  to: number | undefined,
  where: (event: AuditEvent) => boolean,
): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  for (let after = 0; ; ) {
    let query = store.db.selectFrom('audit_events').selectAll().where('seq', '>', after);
    if (from !== undefined) query = query.where('time', '>=', from);
    if (to !== undefined) query = query.where('time', '<=', to);
    const rows = await query.orderBy('seq').limit(5000).execute();
    if (rows.length === 0) break;
    for (const row of rows) {
      const event = eventFromRow(row);
      if (where(event)) out.push(event);
    }
    after = Number(rows[rows.length - 1]!.seq);
  }
  return out;
}

function metadataOf(e: AuditEvent) {
  return {
    seq: e.seq,
    id: e.id,
    time: new Date(e.time).toISOString(),
    agentId: e.agentId,
    owner: e.owner,
    taskId: e.taskId,
    method: e.method,
    server: e.server,
    target: e.target,
    effect: e.effect,
    policyIds: e.policyIds,
    reasons: e.reasons,
    outcome: e.outcome,
    errorCode: e.errorCode,
    traceId: e.traceId,
  };
}

function count<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) out[key(item)] = (out[key(item)] ?? 0) + 1;
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

export interface EvidenceSummary {
  framework: Framework;
  outDir: string;
  controls: Array<{ id: string; title: string; support: Support }>;
  files: number;
  bundle: { ok: boolean; events: number; detail: string };
}

/** Write the evidence pack for one framework and window into outDir (which must be empty or absent). */
export async function writeEvidencePack(
  store: Store,
  log: TransparencyLog,
  input: EvidenceInput,
): Promise<EvidenceSummary> {
  const spec = frameworks[input.framework];
  if (spec === undefined) throw new CustosError('usage', `unknown framework ${input.framework}`);
  const out = input.outDir;
  if (existsSync(out) && (!statSync(out).isDirectory() || readdirSync(out).length > 0)) {
    throw new CustosError('usage', `${out} exists and is not an empty directory`);
  }
  mkdirSync(out, { recursive: true });
  const { from, to } = input;
  const window = { from: iso(from), to: iso(to) };

  // Agent inventory.
  write(out, F.agents, json({ generatedAt: iso(input.now), agents: input.agents }));

  // Policy set: the files as they are, each with its hash, and a hash of the set.
  const files = [...input.policies.files].sort((a, b) => a.name.localeCompare(b.name));
  const hashed = files.map((f) => ({
    name: f.name,
    sha256: sha256(f.text),
    bytes: Buffer.byteLength(f.text),
  }));
  const policySetHash =
    input.policies.setHash?.value ??
    canonicalHash(hashed.map(({ name, sha256: h }) => ({ name, sha256: h })));
  for (const f of files) write(out, `${F.policies}/${f.name}`, f.text);
  const policyCount =
    input.policies.count ?? files.reduce((n, f) => n + (f.text.match(/^\s*@id\(/gm)?.length ?? 0), 0);
  const setHashAlgorithm =
    input.policies.setHash?.algorithm ??
    'SHA-256 of the RFC 8785 canonical JSON of [{name, sha256}] sorted by name';

  // The audit export of the window and its offline verification.
  const bundleDir = join(out, F.auditExport);
  let bundle: Facts['bundle'];
  let exported: Awaited<ReturnType<typeof exportBundle>> | undefined;
  try {
    exported = await exportBundle(store, log, {
      outDir: bundleDir,
      ...(from === undefined ? {} : { from }),
      ...(to === undefined ? {} : { to }),
    });
    const verified = await verifyBundle(bundleDir, { verifierKey: log.verifierKey });
    bundle = verified.ok
      ? {
          ok: true,
          events: verified.events,
          detail: `verified, ${verified.events} events and ${verified.checkpoints} checkpoints`,
        }
      : { ok: false, events: 0, detail: `verification FAILED: ${verified.problem}` };
    write(
      out,
      F.auditVerification,
      json({ verifierKey: log.verifierKey, export: exported, result: verified }),
    );
  } catch (error) {
    if (!(error instanceof CustosError) || error.code !== 'not_found') throw error;
    rmSync(bundleDir, { recursive: true, force: true });
    bundle = { ok: true, events: 0, detail: `no export: ${error.message}` };
    write(
      out,
      F.auditVerification,
      json({ verifierKey: log.verifierKey, export: null, result: error.message }),
    );
  }

  // Policy set hashes the log itself recorded for the window's events (once events carry them).
  const recordedHashes = new Set<string>();
  if (exported !== undefined) {
    for (const line of readFileSync(join(bundleDir, 'events.jsonl'), 'utf8').split('\n')) {
      if (line === '') continue;
      const hash = (JSON.parse(line) as { leaf?: { policySetHash?: unknown } }).leaf?.policySetHash;
      if (typeof hash === 'string') recordedHashes.add(hash);
    }
  }

  // The exact policy sets behind the hashes the window's leaves commit to, from the archive.
  const setHashes = [...new Set([policySetHash, ...recordedHashes])].sort();
  const sets: Array<{
    hash: string;
    inForce: boolean;
    recorded: boolean;
    file: string | null;
    problem?: string;
  }> = [];
  for (const hash of setHashes) {
    const read = input.policies.archive?.read(hash) ?? { ok: false, problem: 'no policy set archive given' };
    const file = `${F.policySets}/${hash}.json`;
    if (read.ok) write(out, file, read.text);
    sets.push({
      hash,
      inForce: hash === policySetHash,
      recorded: recordedHashes.has(hash),
      file: read.ok ? file : null,
      ...(read.ok ? {} : { problem: read.problem }),
    });
  }
  write(
    out,
    F.policySet,
    json({
      directory: input.policies.directory,
      setHash: policySetHash,
      setHashAlgorithm,
      files: hashed,
      // Every set the window's events were decided under, with its text where archived.
      sets,
    }),
  );

  // Activity, denials and approvals in the window.
  const events = await eventsInWindow(store, from, to, () => true);
  const denials = events.filter((e) => e.effect === 'deny' && !isApprovalEvent(e));
  const approvals = events.filter(isApprovalEvent);
  const calls = events.filter((e) => !isApprovalEvent(e));
  write(
    out,
    F.activity,
    json({
      window,
      events: events.length,
      byOutcome: count(calls, (e) => e.outcome),
      byAgent: count(calls, (e) => e.agentId ?? '(none)'),
      byMethod: count(calls, (e) => e.method),
      byServer: count(calls, (e) => e.server ?? '(none)'),
    }),
  );
  write(
    out,
    F.denials,
    denials.map((e) => JSON.stringify(metadataOf(e))).join('\n') + (denials.length ? '\n' : ''),
  );
  write(
    out,
    F.denialSummary,
    json({
      window,
      denials: denials.length,
      byPolicy: count(
        denials.flatMap((e) => (e.policyIds.length > 0 ? e.policyIds : ['(no policy permitted it)'])),
        (p) => p,
      ),
      byAgent: count(denials, (e) => e.agentId ?? '(none)'),
      byErrorCode: count(denials, (e) => e.errorCode ?? '(none)'),
    }),
  );
  // Who decided each approval, and how, is in the approval event's arguments (content).
  const approvalLines: string[] = [];
  for (const e of approvals) {
    const full = (await getEvent(store, e.id)) ?? e;
    const { decision, by } = approvalDecisionOf(full);
    approvalLines.push(
      JSON.stringify({ ...metadataOf(e), approvalId: approvalIdOf(full) ?? null, decision, by }),
    );
  }
  write(out, F.approvals, approvalLines.map((l) => `${l}\n`).join(''));

  // Suspensions and offboardings: the agents' current state and lifecycle events in the log.
  const inWindow = (t: number) => (from === undefined || t >= from) && (to === undefined || t <= to);
  const changed = input.agents
    .filter((a) => a.status !== 'active')
    .map((a) => ({
      agentId: a.id,
      name: a.name,
      owner: a.owner,
      status: a.status,
      since: new Date(a.updatedAt).toISOString(),
      inWindow: inWindow(a.updatedAt),
    }));
  const revoked = input.agents.flatMap((a) =>
    a.credentials
      .filter((c) => c.revokedAt !== null)
      .map((c) => ({
        agentId: a.id,
        name: a.name,
        credentialId: c.id,
        revokedAt: new Date(c.revokedAt as number).toISOString(),
        inWindow: inWindow(c.revokedAt as number),
      })),
  );
  const lifecycleEvents = events.filter((e) => e.method.startsWith('agents/')).map(metadataOf);
  write(
    out,
    F.lifecycle,
    json({
      window,
      note: 'Each agent keeps its current status and the time of its last change; lifecycle events appear under "events" where the log recorded them.',
      suspendedOrOffboarded: changed,
      revokedCredentials: revoked,
      events: lifecycleEvents,
    }),
  );

  // Checkpoints signed in the window, and the key that verifies them.
  let cpQuery = store.db.selectFrom('tlog_checkpoints').select(['size', 'note', 'time']);
  if (from !== undefined) cpQuery = cpQuery.where('time', '>=', from);
  if (to !== undefined) cpQuery = cpQuery.where('time', '<=', to);
  const checkpoints = await cpQuery.orderBy('size').execute();
  write(out, F.checkpoints, checkpoints.map((c) => c.note).join('\n'));
  write(out, F.key, `${log.verifierKey}\n`);

  const facts: Facts = {
    agents: input.agents.length,
    agentsWithOwner: input.agents.filter((a) => a.owner.trim() !== '').length,
    activeAgents: input.agents.filter((a) => a.status === 'active').length,
    suspendedAgents: input.agents.filter((a) => a.status === 'suspended').length,
    offboardedAgents: input.agents.filter((a) => a.status === 'offboarded').length,
    revokedCredentials: revoked.length,
    policyFiles: files.length,
    policies: policyCount,
    policySetHash,
    events: calls.length,
    allowed: calls.filter((e) => e.effect === 'allow').length,
    denied: denials.length,
    failed: calls.filter((e) => e.outcome === 'failed').length,
    approvalEvents: approvals.length,
    checkpoints: checkpoints.length,
    bundle,
    recordedPolicySetHashes: recordedHashes.size,
    archivedPolicySets: sets.filter((set) => set.recorded && set.file !== null).length,
    lifecycleChangesInWindow: changed.filter((c) => c.inWindow).length + lifecycleEvents.length,
  };

  const controls = spec.controls.map((c) => ({
    id: c.id,
    title: c.title,
    support: c.support,
    shows: c.shows(facts),
    evidence: [...c.evidence],
    gaps: [...c.gaps],
  }));
  const disclaimer =
    'This pack is evidence for an auditor, not a certification or an attestation. It shows what Custos ' +
    'records and enforces for AI agents; whether a control is met is for the auditor to judge. Controls ' +
    'marked "partial" are only partly supported by Custos; their gaps are listed.';
  const index = {
    type: EVIDENCE_MANIFEST_TYPE,
    framework: input.framework,
    frameworkName: spec.name,
    controlSource: spec.source,
    disclaimer,
    generatedAt: iso(input.now),
    custosVersion: input.version,
    window,
    log: { origin: log.origin, verifierKey: log.verifierKey },
    facts,
    controls,
  };
  write(out, F.indexJson, json(index));
  write(out, F.indexMd, indexMarkdown(index, controls));
  write(out, F.readme, readme(spec.name, disclaimer, log.verifierKey));

  // The manifest: every file's SHA-256, signed with the log key.
  const paths = filesUnder(out).filter((p) => p !== F.manifest);
  const lines = [
    log.origin,
    EVIDENCE_MANIFEST_TYPE,
    `framework ${input.framework}`,
    `window ${from ?? '-'} ${to ?? '-'}`,
    ...paths.map((p) => `sha256 ${sha256(readFileSync(join(out, p)))} ${p}`),
  ];
  writeFileSync(join(out, F.manifest), log.signNote(`${lines.join('\n')}\n`));

  return {
    framework: input.framework,
    outDir: out,
    controls: controls.map(({ id, title, support }) => ({ id, title, support })),
    files: paths.length + 1,
    bundle,
  };
}

function indexMarkdown(
  index: {
    frameworkName: string;
    controlSource: string;
    disclaimer: string;
    generatedAt: string | null;
    window: { from: string | null; to: string | null };
    log: { origin: string };
  },
  controls: ReadonlyArray<{
    id: string;
    title: string;
    support: Support;
    shows: string[];
    evidence: string[];
    gaps: string[];
  }>,
): string {
  const out: string[] = [
    `# Custos evidence: ${index.frameworkName}`,
    '',
    `> ${index.disclaimer}`,
    '',
    `Generated ${index.generatedAt}. Window: ${index.window.from ?? 'the beginning'} to ${index.window.to ?? 'now'}. Log: \`${index.log.origin}\`.`,
    '',
    index.controlSource,
    '',
    '| control | title | support |',
    '| --- | --- | --- |',
    ...controls.map(
      (c) => `| ${c.id} | ${c.title} | ${c.support === 'supported' ? 'supported' : 'partly supported'} |`,
    ),
    '',
  ];
  for (const c of controls) {
    out.push(
      `## ${c.id} ${c.title}`,
      '',
      `Support: ${c.support === 'supported' ? 'supported' : 'partly supported'}.`,
      '',
    );
    out.push('What Custos shows:', '', ...c.shows.map((s) => `- ${s}`), '');
    out.push('Evidence files:', '', ...c.evidence.map((e) => `- \`${e}\``), '');
    if (c.gaps.length > 0) out.push('Not covered by Custos:', '', ...c.gaps.map((g) => `- ${g}`), '');
  }
  return out.join('\n');
}

function readme(name: string, disclaimer: string, verifierKey: string): string {
  return `# Custos evidence pack (${name})

${disclaimer}

Start with index.md (or index.json for tools): one section per control, what Custos shows for it,
which files show it, and what Custos does not cover.

## Check that the pack is complete and unchanged

    npx custos evidence verify . --key '${verifierKey}'

Get the verifier key from the operator out of band (\`custos audit key\`), not only from key.txt.
The check verifies the signature on manifest.txt with the log key, recomputes the SHA-256 of every
file it lists, fails on any changed, missing or added file, and then verifies the audit export
under evidence/audit-export as \`npx custos audit verify evidence/audit-export\` does (which can
also be run on its own).

## Files

- evidence/agents.json: the agent inventory (owner, purpose, status, credentials; no secrets)
- evidence/policy-set.json and evidence/policies/: the policy files in force and their hashes
- evidence/policy-sets/<hash>.json: the exact policy set behind each policySetHash the window's
  events commit to (schema and every policy's id and text; recompute the hash as policy-set.json
  says)
- evidence/audit-export/: the window's audit events with signed checkpoints and proofs
- evidence/audit-verification.json: the result of verifying that export when the pack was made
- evidence/activity-summary.json: calls per outcome, agent, method and server
- evidence/denials.jsonl and evidence/denials-summary.json: every denied call, and counts
- evidence/lifecycle.json: suspended and offboarded agents, revoked credentials
- evidence/approvals.jsonl: approval events (a person approving or rejecting an agent action)
- evidence/checkpoints.txt: the log checkpoints signed in the window
`;
}

export type EvidenceVerification =
  | { ok: true; files: number; framework: string }
  | { ok: false; problem: string };

/**
 * Check a pack offline: the manifest's signature by the log key, then every listed file's
 * SHA-256 (any changed, missing or unlisted file fails), then the audit export inside it with the
 * offline verifier; the first problem is named.
 */
export async function verifyEvidencePack(
  dir: string,
  options: { verifierKey?: string } = {},
): Promise<EvidenceVerification> {
  const fail = (problem: string): EvidenceVerification => ({ ok: false, problem });
  let keyText = options.verifierKey;
  if (keyText === undefined) {
    try {
      keyText = readFileSync(join(dir, F.key), 'utf8').trim();
    } catch {
      return fail(`${F.key}: missing (give --key)`);
    }
  }
  let verifier: ReturnType<typeof parseVerifierKey>;
  try {
    verifier = parseVerifierKey(keyText);
  } catch (error) {
    return fail(`verifier key: ${(error as Error).message}`);
  }
  let manifestText: string;
  try {
    manifestText = readFileSync(join(dir, F.manifest), 'utf8');
  } catch {
    return fail(`${F.manifest}: missing`);
  }
  const opened = openNote(manifestText, [verifier]);
  if (!opened.ok)
    return fail(`${F.manifest}: ${opened.code === 'bad_signature' ? 'bad signature' : opened.message}`);
  const lines = opened.note.text.slice(0, -1).split('\n');
  const [origin, type, framework] = lines;
  if (origin !== verifier.name)
    return fail(`${F.manifest}: origin ${JSON.stringify(origin)} is not ${verifier.name}`);
  if (type !== EVIDENCE_MANIFEST_TYPE) return fail(`${F.manifest}: not a ${EVIDENCE_MANIFEST_TYPE} manifest`);
  const listed = new Map<string, string>();
  for (const line of lines.slice(4)) {
    const match = /^sha256 ([0-9a-f]{64}) (.+)$/.exec(line);
    if (match === null) return fail(`${F.manifest}: malformed line ${JSON.stringify(line)}`);
    listed.set(match[2]!, match[1]!);
  }
  const present = filesUnder(dir).filter((p) => p !== F.manifest);
  for (const [path, hash] of listed) {
    let data: Buffer;
    try {
      data = readFileSync(join(dir, path));
    } catch {
      return fail(`${path}: missing`);
    }
    if (sha256(data) !== hash) return fail(`${path}: SHA-256 does not match the signed manifest (modified)`);
  }
  const extra = present.find((p) => !listed.has(p));
  if (extra !== undefined) return fail(`${extra}: not in the signed manifest (added)`);
  // The audit export inside is checked as `custos audit verify` would: tree, signatures, proofs.
  if (listed.has(`${F.auditExport}/events.jsonl`)) {
    const bundle = await verifyBundle(join(dir, F.auditExport), { verifierKey: keyText });
    if (!bundle.ok) return fail(`${F.auditExport}: ${bundle.problem}`);
  }
  return { ok: true, files: listed.size, framework: (framework ?? '').replace(/^framework /, '') };
}

/** The controls of a framework (for documentation and tests). */
export function frameworkControls(
  framework: Framework,
): ReadonlyArray<{ id: string; title: string; support: Support }> {
  return frameworks[framework].controls.map(({ id, title, support }) => ({ id, title, support }));
}
