import { type AuditEvent, type AuditEventInput, listEvents } from '../audit/index.js';
import type { Clock } from '../core/clock.js';
import type { DetectConfig } from '../core/config.js';
import { CustosError, errorMessage, isCustosError } from '../core/errors.js';
import type { IdGenerator } from '../core/ids.js';
import type { CallContext, CallOutcome } from '../gateway/index.js';
import type { Store } from '../store/index.js';
import {
  type Containment,
  ContainmentIndex,
  type ContainScope,
  containedMessage,
  containmentFromRow,
  containmentToRow,
  parseTarget,
} from './containment.js';
import {
  type DetectorSettings,
  type Finding,
  MeterState,
  type Observation,
  stronger,
  WorkingHours,
} from './detectors.js';
import {
  actionFromRow,
  type Incident,
  type IncidentAction,
  type IncidentSummary,
  incidentFromRow,
  summarize,
} from './incidents.js';
import { incidentMessage, postWebhook, webhookOrigin } from './notify.js';
import { type Playbook, type PlaybookStep, playbookMatches } from './playbooks.js';

/** A verdict as the gateway's stages return it (structurally the gateway's Verdict). */
type Verdict =
  | { readonly stop: false }
  | { readonly stop: true; readonly code: 'contained' | 'rate_limited'; message: string; reasons: string[] };

const proceed: Verdict = Object.freeze({ stop: false });

/** The agent inventory as detect uses it (identity's AgentService fits). */
export interface AgentsPort {
  get(ref: string): Promise<{ id: string; name: string; status: string; epoch: number } | undefined>;
  /** End every token the agent holds (bump its revocation epoch). */
  revokeTokens(ref: string): Promise<{ epoch: number }>;
}

/** What a containment tells its listeners (the approvals engine cancels held approvals here). */
export interface ContainEvent {
  readonly containment: Containment;
  readonly incidentId: string | null;
}

/** What a listener did about a containment, recorded as an action of its incident. */
export interface ContainOutcome {
  /** The action's kind, e.g. cancel_approvals. */
  readonly action: string;
  readonly detail: Record<string, unknown>;
}

export type ContainListener = (event: ContainEvent) => void | ContainOutcome | Promise<void | ContainOutcome>;

/**
 * Hooks other capabilities register when they exist. Until then the matching playbook
 * steps are recorded as "noop" with the reason.
 */
export interface DetectHooks {
  /** The vault: revoke an agent's upstream bindings; resolves to how many were revoked. */
  revokeBindings?(agentId: string): Promise<{ revoked: number }>;
  /** The approvals engine: open an approval request to resume a containment. */
  openResumeApproval?(containment: Containment, approvers: number): Promise<{ id: string }>;
}

export interface DetectLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface DetectDeps {
  store: Store;
  clock: Clock;
  ids: IdGenerator;
  config: DetectConfig;
  agents: AgentsPort;
  playbooks?: readonly Playbook[];
  logger?: DetectLogger;
  /** The audit log: every kill, quarantine, resume and incident change is an event there. */
  audit?: { record(input: AuditEventInput): Promise<AuditEvent> };
}

export interface KillRequest {
  scope: string;
  /** Agent id or name, task id, server, "server.tool"; absent for all. */
  target?: string;
  reason?: string;
  /** Who asks: a person's name (email). */
  actor: string;
}

export interface ResumeResult {
  readonly containment: Containment;
  /** True when enough different humans asked and the containment is lifted. */
  readonly lifted: boolean;
  readonly votes: number;
  readonly needed: number;
}

interface AgentState {
  readonly meter: MeterState;
  readonly seen: Set<string>;
  /** Last time each detector's alert or throttle was recorded, to keep the record short. */
  readonly recorded: Map<string, number>;
}

const recordCooldownMs = 10_000;
const idleStateMs = 15 * 60_000;
/** Denials the detectors themselves cause do not feed the burst-of-denials detector. */
const ownCodes = new Set(['contained', 'rate_limited']);

/**
 * Detect and contain: the inline detectors of the meter stage, the containments the
 * contain stage enforces, and the incidents, actions, notifications and playbooks that
 * follow. The hot-path methods (contain, detect, admit, finish) are synchronous and O(1);
 * everything that touches the store runs after, tracked so `settle()` can await it.
 */
export class DetectService {
  private readonly index = new ContainmentIndex();
  private readonly agentStates = new Map<string, AgentState>();
  private readonly taskStates = new Map<string, MeterState>();
  private readonly toolStates = new Map<string, MeterState>();
  private readonly settingsByAgent = new Map<string, DetectorSettings>();
  private readonly seenLoaded = new Map<string, Set<string>>();
  /** Calls past the contain stage and not finished: a containment cancels the matching ones. */
  private readonly flights = new Set<CallContext>();
  private readonly listeners = new Set<ContainListener>();
  /** What the listeners of a containment are doing, until its incident records it. */
  private readonly listenerWork = new Map<string, Promise<PromiseSettledResult<void | ContainOutcome>[]>>();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly hours: WorkingHours | undefined;
  private readonly hasToolDetectors: boolean;
  private hooks: DetectHooks = {};
  /** Bumped by every local containment change, so a refresh racing one is discarded. */
  private version = 0;
  private ordinal = 0;
  /** Calls refused at authentication with tokens a quarantine ended, by incident, not yet stored. */
  private readonly refusals = new Map<string, number>();
  /** Incidents whose row is stored (refusal counts wait for it). */
  private readonly storedIncidents = new Set<string>();
  private playbooks: readonly Playbook[];

  private constructor(private readonly deps: DetectDeps) {
    this.hours = deps.config.hours ? new WorkingHours(deps.config.hours) : undefined;
    this.hasToolDetectors = Object.keys(deps.config.tools).length > 0;
    this.playbooks = deps.playbooks ?? [];
  }

  /** Load the containments in force and the servers and tools each agent has used. */
  static async open(deps: DetectDeps): Promise<DetectService> {
    const service = new DetectService(deps);
    await service.refresh();
    const seen = await deps.store.db.selectFrom('detect_seen').select(['agent_id', 'key']).execute();
    for (const row of seen) {
      let set = service.seenLoaded.get(row.agent_id);
      if (set === undefined) {
        set = new Set();
        service.seenLoaded.set(row.agent_id, set);
      }
      set.add(row.key);
    }
    return service;
  }

  // ---------------------------------------------------------------- request path

  /** The contain stage: refuse a contained call; otherwise track it so a containment can cancel it. */
  contain(ctx: CallContext): Verdict {
    const found = this.matchContainment(ctx);
    if (found !== undefined) return containedVerdict(found);
    this.flights.add(ctx);
    return proceed;
  }

  /** The detectors of the meter stage, for the agent, its task and (when configured) the tool. */
  detect(ctx: CallContext): Verdict {
    const p = ctx.principal;
    const server = ctx.upstream?.name ?? '';
    const target = ctx.upstreamName ?? ctx.target.name;
    const call: Observation = {
      time: ctx.time,
      server,
      target,
      argsHash: ctx.argsHash,
      bytes: ctx.argsBytes ?? 0,
    };
    const agent = this.agentState(p.agentId, p.agentName);
    let finding = agent.meter.observe(call);
    let scope: 'agent' | 'task' = 'agent';
    if (p.task !== null) {
      let task = this.taskStates.get(p.task.id);
      if (task === undefined) {
        task = new MeterState(agent.meter.settings);
        this.taskStates.set(p.task.id, task);
      }
      const onTask = task.observe(call);
      // At equal strength the task wins: the narrowest containment that stops the runaway.
      if (onTask !== undefined && (finding === undefined || !stronger(finding, onTask))) {
        finding = onTask;
        scope = 'task';
      }
    }
    if (this.hasToolDetectors && this.deps.config.tools[`${server}.${target}`] !== undefined) {
      const onTool = this.toolState(p.agentId, server, target).observe(call);
      if (onTool !== undefined && stronger(onTool, finding)) {
        finding = { ...onTool, scope: 'tool' };
        scope = 'agent';
      }
    }
    if (this.deps.config.firstUse.action !== 'off') {
      const key = ctx.target.kind === 'resource' ? server : `${server}.${target}`;
      if (!agent.seen.has(key)) {
        agent.seen.add(key);
        this.track(this.rememberSeen(p.agentId, key, ctx.time));
        const first: Finding = {
          detector: 'first_use',
          action: this.deps.config.firstUse.action,
          scope: 'agent',
          onsetAt: ctx.time,
          detail: `first use of ${key}`,
        };
        if (stronger(first, finding)) finding = first;
      }
    }
    if (this.hours?.isOutside(ctx.time) && this.deps.config.hours) {
      const h = this.deps.config.hours;
      if (h.action !== 'off') {
        const late: Finding = {
          detector: 'hours',
          action: h.action,
          scope: 'agent',
          onsetAt: ctx.time,
          detail: `call outside working hours (${h.start}-${h.end} ${h.timezone})`,
        };
        if (stronger(late, finding)) finding = late;
      }
    }
    if (finding === undefined) return proceed;
    return this.act(finding, scope, ctx, agent);
  }

  /** The last check before forward: a containment made while the call waited stops it. */
  admit(ctx: CallContext): Verdict {
    const found = this.matchContainment(ctx);
    return found === undefined ? proceed : containedVerdict(found);
  }

  /** A call ended: end its flight and count a denial for the burst detector. */
  finish(ctx: CallContext, outcome: CallOutcome): void {
    this.flights.delete(ctx);
    if (outcome.kind !== 'denied' || ownCodes.has(outcome.stop.code)) return;
    const p = ctx.principal;
    const agent = this.agentState(p.agentId, p.agentName);
    let finding = agent.meter.observeDenial(ctx.time);
    const server = ctx.upstream?.name;
    const tool = ctx.upstreamName;
    if (this.hasToolDetectors && server !== undefined && tool !== undefined) {
      if (this.deps.config.tools[`${server}.${tool}`] !== undefined) {
        const onTool = this.toolState(p.agentId, server, tool).observeDenial(ctx.time);
        if (onTool !== undefined && stronger(onTool, finding)) finding = { ...onTool, scope: 'tool' };
      }
    }
    // A finding here cannot stop this call (it is over); it contains what comes next.
    if (finding !== undefined) this.act(finding, 'agent', ctx, agent);
  }

  private matchContainment(ctx: CallContext): Containment | undefined {
    if (this.index.size === 0) return undefined;
    const p = ctx.principal;
    return this.index.match(p.agentId, p.task?.id ?? null, ctx.upstream?.name, ctx.upstreamName);
  }

  /** Carry out a finding: record it, throttle, or quarantine the agent or task at once. */
  private act(finding: Finding, scope: 'agent' | 'task', ctx: CallContext, agent: AgentState): Verdict {
    const p = ctx.principal;
    if (finding.action === 'quarantine') {
      const target = scope === 'task' && p.task !== null ? p.task.id : p.agentId;
      const existing = this.index.get(scope, target);
      if (existing !== undefined) return containedVerdict(existing);
      const incidentId = this.deps.ids.next('inc');
      const containment = this.containNow({
        scope,
        target,
        reason: `${finding.detector}: ${finding.detail}`,
        actor: `detector:${finding.detector}`,
        incidentId,
        time: ctx.time,
      });
      this.track(
        this.afterContain(containment, {
          detector: finding.detector,
          detail: finding.detail,
          onsetAt: finding.onsetAt,
          agentId: p.agentId,
          taskId: p.task?.id ?? null,
          findingScope: finding.scope,
          call: { server: ctx.upstream?.name ?? null, target: ctx.upstreamName ?? ctx.target.name },
        }),
      );
      return containedVerdict(containment);
    }
    const last = agent.recorded.get(finding.detector);
    if (last === undefined || ctx.time - last >= recordCooldownMs || finding.detector === 'first_use') {
      agent.recorded.set(finding.detector, ctx.time);
      this.track(this.recordFinding(finding, ctx));
    }
    if (finding.action === 'throttle') {
      return {
        stop: true,
        code: 'rate_limited',
        message: `slow down: ${finding.detail}`,
        reasons: [`detector ${finding.detector}`],
      };
    }
    return proceed;
  }

  private agentState(agentId: string, agentName: string): AgentState {
    let state = this.agentStates.get(agentId);
    if (state === undefined) {
      state = {
        meter: new MeterState(this.settingsFor(agentName)),
        seen: this.seenLoaded.get(agentId) ?? new Set(),
        recorded: new Map(),
      };
      this.agentStates.set(agentId, state);
    }
    return state;
  }

  private toolState(agentId: string, server: string, tool: string): MeterState {
    const key = `${agentId}\u0000${server}.${tool}`;
    let state = this.toolStates.get(key);
    if (state === undefined) {
      const c = this.deps.config;
      const o = (c.tools[`${server}.${tool}`] ?? {}) as Partial<Record<keyof DetectorSettings, object>>;
      // Only the detectors the tool's entry names run for the tool; the agent's own state runs the rest.
      const pick = <K extends keyof DetectorSettings>(name: K): DetectorSettings[K] =>
        o[name] === undefined ? { ...c[name], action: 'off' } : { ...c[name], ...o[name] };
      state = new MeterState({
        ceiling: pick('ceiling'),
        anomaly: pick('anomaly'),
        denials: pick('denials'),
        loop: pick('loop'),
        bytes: pick('bytes'),
      });
      this.toolStates.set(key, state);
    }
    return state;
  }

  /** The detector settings of one agent: the defaults with its overrides applied. */
  settingsFor(agentName: string): DetectorSettings {
    let settings = this.settingsByAgent.get(agentName);
    if (settings === undefined) {
      const c = this.deps.config;
      const o = (c.agents[agentName] ?? {}) as Partial<Record<keyof DetectorSettings, object>>;
      settings = Object.freeze({
        ceiling: { ...c.ceiling, ...o.ceiling },
        anomaly: { ...c.anomaly, ...o.anomaly },
        denials: { ...c.denials, ...o.denials },
        loop: { ...c.loop, ...o.loop },
        bytes: { ...c.bytes, ...o.bytes },
      });
      this.settingsByAgent.set(agentName, settings);
    }
    return settings;
  }

  // ---------------------------------------------------------------- containment

  /**
   * Put a containment in force in this process at once (the next call is refused), cancel
   * the matching calls in flight and tell the listeners. Persisting it comes after.
   */
  private containNow(input: {
    scope: ContainScope;
    target: string;
    reason: string;
    actor: string;
    incidentId: string | null;
    time: number;
  }): Containment {
    const containment: Containment = {
      id: this.deps.ids.next('cnt'),
      scope: input.scope,
      target: input.target,
      reason: input.reason,
      actor: input.actor,
      incidentId: input.incidentId,
      createdAt: input.time,
      resumeVotes: [],
      liftedAt: null,
    };
    this.version += 1;
    this.index.add(containment);
    const reason = new CustosError('contained', containedMessage(containment));
    const hit = new ContainmentIndex();
    hit.add(containment);
    for (const flight of this.flights) {
      const p = flight.principal;
      if (hit.match(p.agentId, p.task?.id ?? null, flight.upstream?.name, flight.upstreamName)) {
        // Aborting the request cancels its upstream call (MCP notifications/cancelled).
        flight.abort?.(reason);
      }
    }
    if (this.listeners.size > 0) {
      const outcomes = [...this.listeners].map((listener) => {
        try {
          return Promise.resolve(listener({ containment, incidentId: containment.incidentId }));
        } catch (error) {
          return Promise.reject(error);
        }
      });
      const settled = Promise.allSettled(outcomes);
      this.listenerWork.set(containment.id, settled);
      // Awaited by whoever stores the containment; tracked so settle() sees it in every case.
      this.track(settled);
    }
    return containment;
  }

  /**
   * Subscribe to containments (kills and quarantines) as they happen, synchronously, before
   * the kill returns: the approvals engine cancels the held approvals of the contained
   * agent, task, server or tool here. Returns the unsubscribe function.
   */
  onContain(listener: ContainListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Register the vault's and the approvals engine's hooks (see DetectHooks). */
  useHooks(hooks: DetectHooks): void {
    this.hooks = { ...this.hooks, ...hooks };
  }

  /**
   * A person's kill: the global switch or a scoped containment. Resolves after it is in
   * force here and stored; when it is already in force, the existing one comes back.
   */
  async kill(request: KillRequest): Promise<Containment> {
    const parsed = parseTarget(request.scope, request.target);
    let target = parsed.target;
    if (parsed.scope === 'agent') {
      const agent = await this.deps.agents.get(target);
      if (agent === undefined) throw new CustosError('not_found', `no agent "${target}"`);
      target = agent.id;
    }
    const existing =
      this.index.get(parsed.scope, target) ?? (await this.storedContainment(parsed.scope, target));
    if (existing !== undefined) {
      this.index.add(existing);
      return existing;
    }
    const now = this.deps.clock.now();
    const containment = this.containNow({
      scope: parsed.scope,
      target,
      reason: request.reason ?? `killed by ${request.actor}`,
      actor: request.actor,
      incidentId: this.deps.ids.next('inc'),
      time: now,
    });
    await this.afterContain(containment, {
      detector: 'manual',
      detail: containment.reason,
      onsetAt: now,
      agentId: parsed.scope === 'agent' ? target : null,
      taskId: parsed.scope === 'task' ? target : null,
    });
    return containment;
  }

  /**
   * A human asks to resume a containment. It is lifted once `detect.resume.approvers`
   * different people have asked; detectors and playbooks never resume.
   */
  async resume(request: { scope: string; target?: string; by: string }): Promise<ResumeResult> {
    const by = request.by.trim();
    if (by === '' || by === 'admin token' || by.startsWith('detector:')) {
      throw new CustosError('bad_request', 'resuming needs a named human (say who resumes)');
    }
    const parsed = parseTarget(request.scope, request.target);
    let target = parsed.target;
    if (parsed.scope === 'agent') {
      const agent = await this.deps.agents.get(target);
      if (agent === undefined) throw new CustosError('not_found', `no agent "${target}"`);
      target = agent.id;
    }
    const needed = this.deps.config.resume.approvers;
    const now = this.deps.clock.now();
    const result = await this.deps.store.db.transaction().execute(async (trx) => {
      const row = await trx
        .selectFrom('containments')
        .selectAll()
        .where('lifted_at', 'is', null)
        .where('scope', '=', parsed.scope)
        .where('target', '=', target)
        .orderBy('created_at', 'desc')
        .executeTakeFirst();
      if (row === undefined) {
        throw new CustosError('not_found', `${parsed.scope} ${request.target ?? ''} is not contained`.trim());
      }
      const current = containmentFromRow(row);
      const votes = current.resumeVotes.some((v) => v.by === by)
        ? current.resumeVotes
        : [...current.resumeVotes, { by, at: now }];
      const lifted = votes.length >= needed;
      const next: Containment = { ...current, resumeVotes: votes, liftedAt: lifted ? now : null };
      await trx
        .updateTable('containments')
        .set({ resume_votes: JSON.stringify(votes), lifted_at: next.liftedAt })
        .where('id', '=', current.id)
        .execute();
      return { containment: next, lifted, votes: votes.length, needed };
    });
    const c = result.containment;
    this.version += 1;
    if (result.lifted) {
      this.index.remove(c.scope, c.target);
      this.forgetReadings(c.scope, c.target);
    } else if (this.index.get(c.scope, c.target) !== undefined) this.index.add(c);
    await this.recordAction(c.incidentId, result.lifted ? 'lift' : 'resume_vote', 'done', by, null, {
      scope: c.scope,
      target: c.target,
      votes: result.votes,
      needed,
    });
    await this.recordAudit('detect/resume', c, {
      agentId: c.scope === 'agent' ? c.target : null,
      taskId: c.scope === 'task' ? c.target : null,
      effect: 'allow',
      reasons: [
        `containment ${c.id}`,
        `${c.scope} ${c.target}`,
        `resume asked by ${by}`,
        result.lifted
          ? `lifted (${result.votes} of ${needed})`
          : `stays contained (${result.votes} of ${needed})`,
        ...(c.incidentId ? [`incident ${c.incidentId}`] : []),
      ],
      arguments: { containment: c.id, by, votes: result.votes, needed, lifted: result.lifted },
    });
    return result;
  }

  /**
   * A resumed agent or task starts from fresh detector readings (its rates, loop and denials),
   * so the run that got it contained does not contain it again on its first call. What it has
   * used stays known.
   */
  private forgetReadings(scope: ContainScope, target: string): void {
    if (scope === 'task') this.taskStates.delete(target);
    if (scope !== 'agent') return;
    const state = this.agentStates.get(target);
    if (state !== undefined) this.seenLoaded.set(target, state.seen);
    this.agentStates.delete(target);
  }

  /** The containments in force, as this process enforces them. */
  containments(): Containment[] {
    return this.index.list();
  }

  /** Reload the containments from the store (other processes' kills and resumes). */
  async refresh(): Promise<void> {
    const version = this.version;
    const rows = await this.deps.store.db
      .selectFrom('containments')
      .selectAll()
      .where('lifted_at', 'is', null)
      .execute();
    // A local change that landed while the query ran is newer than what it returned.
    if (version !== this.version) return;
    const fresh = new Map(rows.map((r) => [`${r.scope}\u0000${r.target}`, containmentFromRow(r)]));
    for (const c of this.index.list()) {
      if (!fresh.has(`${c.scope}\u0000${c.target}`)) this.index.remove(c.scope, c.target);
    }
    for (const c of fresh.values()) {
      this.index.add(c);
      // Stored by whoever contained it (the incident row follows the containment row at once).
      if (c.incidentId !== null && c.createdAt < this.deps.clock.now() - 1000)
        this.storedIncidents.add(c.incidentId);
    }
    this.pruneIdle();
    await this.flushRefusals();
  }

  private async storedContainment(scope: ContainScope, target: string): Promise<Containment | undefined> {
    const row = await this.deps.store.db
      .selectFrom('containments')
      .selectAll()
      .where('lifted_at', 'is', null)
      .where('scope', '=', scope)
      .where('target', '=', target)
      .executeTakeFirst();
    return row === undefined ? undefined : containmentFromRow(row);
  }

  /** What follows a containment: store it, end the agent's tokens, open the incident, notify, run playbooks. */
  private async afterContain(
    c: Containment,
    trigger: {
      detector: string;
      detail: string;
      onsetAt: number;
      agentId: string | null;
      taskId: string | null;
      findingScope?: string;
      call?: { server: string | null; target: string };
      /** False for a playbook's own quarantine step: a playbook never starts playbooks. */
      playbooks?: boolean;
    },
  ): Promise<void> {
    const { store } = this.deps;
    try {
      await store.db.insertInto('containments').values(containmentToRow(c)).execute();
    } catch (error) {
      // The containment stays in force in this process (fail closed); say loudly that it is not stored.
      this.deps.logger?.error({ err: error, containment: c.id }, 'containment could not be stored');
      throw error;
    }
    const incidentId = c.incidentId;
    if (incidentId === null) return;
    const incident: Incident = {
      id: incidentId,
      status: 'open',
      scope: c.scope,
      target: c.target,
      agentId: trigger.agentId,
      taskId: trigger.taskId,
      detector: trigger.detector,
      trigger: {
        detail: trigger.detail,
        actor: c.actor,
        ...(trigger.findingScope ? { scope: trigger.findingScope } : {}),
        ...(trigger.call ? { call: trigger.call } : {}),
      },
      onsetAt: Math.min(trigger.onsetAt, c.createdAt),
      detectedAt: c.createdAt,
      containedAt: c.createdAt,
      closedAt: null,
      closedBy: null,
      notes: [],
      refusedTokens: 0,
    };
    await store.db
      .insertInto('incidents')
      .values({
        id: incident.id,
        status: incident.status,
        scope: incident.scope,
        target: incident.target,
        agent_id: incident.agentId,
        task_id: incident.taskId,
        detector: incident.detector,
        trigger: JSON.stringify(incident.trigger),
        onset_at: incident.onsetAt,
        detected_at: incident.detectedAt,
        contained_at: incident.containedAt,
        closed_at: null,
        closed_by: null,
        notes: '[]',
        refused_tokens: 0,
      })
      .execute();
    this.storedIncidents.add(incident.id);
    const person = !c.actor.startsWith('detector:') && !c.actor.startsWith('playbook:');
    await this.recordAudit(person ? 'detect/kill' : 'detect/quarantine', c, {
      agentId: trigger.agentId,
      taskId: trigger.taskId,
      effect: 'deny',
      reasons: [
        `containment ${c.id}`,
        `${c.scope} ${c.target}`,
        `by ${c.actor}`,
        `reason: ${c.reason}`,
        `incident ${incident.id}`,
      ],
      arguments: { containment: c.id, scope: c.scope, target: c.target, reason: c.reason, actor: c.actor },
    });
    await this.recordAudit('incident/open', c, {
      agentId: trigger.agentId,
      taskId: trigger.taskId,
      effect: 'allow',
      reasons: [
        `incident ${incident.id}`,
        `trigger ${trigger.detector}: ${trigger.detail}`,
        `containment ${c.id}`,
      ],
      arguments: { incident: incident.id, detector: trigger.detector, onsetAt: incident.onsetAt },
    });
    if (trigger.detector !== 'manual') {
      await this.insertDetection({
        time: c.createdAt,
        agentId: trigger.agentId,
        taskId: trigger.taskId,
        server: trigger.call?.server ?? null,
        target: trigger.call?.target ?? null,
        detector: trigger.detector,
        action: 'quarantine',
        detail: trigger.detail,
        incidentId,
      });
    }
    await this.recordAction(incidentId, 'contain', 'done', c.actor, null, {
      containment: c.id,
      scope: c.scope,
      target: c.target,
      listeners: this.listeners.size,
    });
    if (c.scope === 'agent') await this.revokeTokens(incidentId, c.target, c.actor, null);
    await this.recordListeners(c);
    // Webhooks may be slow: a kill returns once the containment is stored, not after them.
    this.track(this.followUp(incident, trigger.detector, trigger.playbooks !== false));
  }

  /** Wait for what the listeners did about a containment (held approvals cancelled) and record it. */
  private async recordListeners(c: Containment): Promise<void> {
    const work = this.listenerWork.get(c.id);
    if (work === undefined) return;
    this.listenerWork.delete(c.id);
    for (const result of await work) {
      if (result.status === 'rejected') {
        this.deps.logger?.error({ err: result.reason, containment: c.id }, 'a containment listener failed');
        await this.recordAction(c.incidentId, 'listener', 'failed', c.actor, null, {
          error: errorMessage(result.reason),
        });
      } else if (result.value !== undefined) {
        await this.recordAction(
          c.incidentId,
          result.value.action,
          'done',
          c.actor,
          null,
          result.value.detail,
        );
      }
    }
  }

  private async followUp(incident: Incident, detector: string, playbooks: boolean): Promise<void> {
    await this.notify(incident, 'opened');
    if (playbooks) await this.runMatching(detector, 'quarantine', { incident, agentId: incident.agentId });
  }

  private async revokeTokens(
    incidentId: string | null,
    agentId: string,
    actor: string,
    playbook: string | null,
  ) {
    try {
      const agent = await this.deps.agents.revokeTokens(agentId);
      await this.recordAction(incidentId, 'revoke_tokens', 'done', actor, playbook, { epoch: agent.epoch });
    } catch (error) {
      await this.recordAction(incidentId, 'revoke_tokens', 'failed', actor, playbook, {
        error: errorMessage(error),
      });
    }
  }

  /**
   * Told about a bearer token the gateway refused. A token refused for a stale epoch passed
   * its signature check, so its subject is the agent; when that agent is quarantined, the
   * refusal is counted on its incident (such calls never reach a stage, so the audit log
   * does not have them).
   */
  noteRefusedToken(token: string, error: unknown): void {
    if (this.index.size === 0 || !isCustosError(error) || error.code !== 'invalid_token') return;
    const why = (error.cause as Error | undefined)?.message ?? '';
    if (!why.startsWith('stale epoch')) return;
    let agentId: unknown;
    try {
      agentId = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')).sub;
    } catch {
      return;
    }
    if (typeof agentId !== 'string') return;
    const incidentId = this.index.get('agent', agentId)?.incidentId;
    if (incidentId) this.refusals.set(incidentId, (this.refusals.get(incidentId) ?? 0) + 1);
  }

  /** Store the refusal counts gathered since the last flush (on refresh and on settle). */
  private async flushRefusals(): Promise<void> {
    for (const [incidentId, n] of [...this.refusals]) {
      if (!this.storedIncidents.has(incidentId)) continue;
      this.refusals.delete(incidentId);
      try {
        await this.deps.store.db
          .updateTable('incidents')
          .set((eb) => ({ refused_tokens: eb('refused_tokens', '+', n) }))
          .where('id', '=', incidentId)
          .execute();
      } catch (error) {
        this.refusals.set(incidentId, (this.refusals.get(incidentId) ?? 0) + n);
        throw error;
      }
    }
  }

  // ---------------------------------------------------------------- incidents

  async listIncidents(filter: { status?: 'open' | 'closed'; limit?: number } = {}): Promise<Incident[]> {
    let query = this.deps.store.db.selectFrom('incidents').selectAll();
    if (filter.status !== undefined) query = query.where('status', '=', filter.status);
    const rows = await query
      .orderBy('detected_at', 'desc')
      .limit(filter.limit ?? 100)
      .execute();
    return rows.map(incidentFromRow);
  }

  async incident(id: string): Promise<Incident> {
    const row = await this.deps.store.db
      .selectFrom('incidents')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    if (row === undefined) throw new CustosError('not_found', `no incident ${id}`);
    return incidentFromRow(row);
  }

  async actions(incidentId: string): Promise<IncidentAction[]> {
    const rows = await this.deps.store.db
      .selectFrom('incident_actions')
      .selectAll()
      .where('incident_id', '=', incidentId)
      .orderBy('time')
      .orderBy('ordinal')
      .execute();
    return rows.map(actionFromRow);
  }

  /** The incident with its numbers and its timeline rebuilt from the audit log. */
  async summary(id: string): Promise<IncidentSummary> {
    const incident = await this.incident(id);
    return summarize(this.deps.store, incident, await this.actions(id), {
      lookbackMs: this.deps.config.incidents.lookbackMinutes * 60_000,
      now: this.deps.clock.now(),
    });
  }

  async addNote(id: string, by: string, text: string): Promise<Incident> {
    if (text.trim() === '') throw new CustosError('bad_request', 'a note needs text');
    const incident = await this.incident(id);
    const notes = [...incident.notes, { at: this.deps.clock.now(), by, text }];
    await this.deps.store.db
      .updateTable('incidents')
      .set({ notes: JSON.stringify(notes) })
      .where('id', '=', id)
      .execute();
    await this.recordIncidentAudit('incident/note', incident, [`note by ${by}`], { by, text });
    return { ...incident, notes };
  }

  /** Close an incident with a closing note; containments stay until a human resumes them. */
  async closeIncident(id: string, by: string, note: string): Promise<Incident> {
    const incident = await this.incident(id);
    if (incident.status === 'closed') throw new CustosError('conflict', `incident ${id} is already closed`);
    const now = this.deps.clock.now();
    const notes = note.trim() === '' ? incident.notes : [...incident.notes, { at: now, by, text: note }];
    await this.deps.store.db
      .updateTable('incidents')
      .set({ status: 'closed', closed_at: now, closed_by: by, notes: JSON.stringify(notes) })
      .where('id', '=', id)
      .where('status', '=', 'open')
      .execute();
    const closed: Incident = { ...incident, status: 'closed', closedAt: now, closedBy: by, notes };
    await this.recordAction(id, 'close', 'done', by, null, {});
    await this.recordIncidentAudit('incident/close', closed, [`closed by ${by}`], { by, note }, now);
    await this.notify(closed, 'closed');
    return closed;
  }

  async detections(filter: { agentId?: string; limit?: number } = {}) {
    let query = this.deps.store.db.selectFrom('detections').selectAll();
    if (filter.agentId !== undefined) query = query.where('agent_id', '=', filter.agentId);
    const rows = await query
      .orderBy('time', 'desc')
      .limit(filter.limit ?? 100)
      .execute();
    return rows.map((r) => ({
      id: r.id,
      time: Number(r.time),
      agentId: r.agent_id,
      taskId: r.task_id,
      server: r.server,
      target: r.target,
      detector: r.detector,
      action: r.action,
      detail: r.detail,
      incidentId: r.incident_id,
    }));
  }

  private async notify(incident: Incident, event: 'opened' | 'closed'): Promise<void> {
    const url = this.deps.config.notify.webhook;
    if (url === null) return;
    await this.sendWebhook(incident.id, url, incidentMessage(incident, event), 'system', null, event);
  }

  private async sendWebhook(
    incidentId: string | null,
    url: string,
    message: ReturnType<typeof incidentMessage>,
    actor: string,
    playbook: string | null,
    event: string,
  ): Promise<void> {
    try {
      const { status, attempts } = await postWebhook(url, message, this.retryPolicy());
      await this.recordAction(incidentId, 'notify', 'done', actor, playbook, {
        event,
        webhook: webhookOrigin(url),
        status,
        attempts,
      });
    } catch (error) {
      this.deps.logger?.warn({ err: error, incident: incidentId }, 'incident webhook failed');
      await this.recordAction(incidentId, 'notify', 'failed', actor, playbook, {
        event,
        webhook: webhookOrigin(url),
        error: errorMessage(error),
        attempts: (error as { attempts?: number }).attempts ?? 1,
      });
    }
  }

  private retryPolicy() {
    const n = this.deps.config.notify;
    return { attempts: n.attempts, backoffMs: n.backoffMs, maxDelayMs: 10_000 };
  }

  // ---------------------------------------------------------------- playbooks

  /** The playbooks loaded from `detect.playbooks`. */
  listPlaybooks(): readonly Playbook[] {
    return this.playbooks;
  }

  /** Run a loaded playbook by name against an agent (id or name), e.g. from the CLI. */
  async runPlaybookByName(
    name: string,
    on: { agent: string; incidentId?: string; dryRun: boolean; actor: string },
  ): Promise<IncidentAction[]> {
    const playbook = this.playbooks.find((p) => p.name === name);
    if (playbook === undefined) throw new CustosError('not_found', `no playbook "${name}"`);
    const agent = await this.deps.agents.get(on.agent);
    if (agent === undefined) throw new CustosError('not_found', `no agent "${on.agent}"`);
    const incident = on.incidentId === undefined ? null : await this.incident(on.incidentId);
    return this.runPlaybook(playbook, { incident, agentId: agent.id, dryRun: on.dryRun || playbook.dryRun });
  }

  private async runMatching(
    detector: string,
    action: string,
    on: { incident: Incident | null; agentId: string | null },
  ): Promise<void> {
    for (const playbook of this.playbooks) {
      if (!playbookMatches(playbook, detector, action)) continue;
      await this.runPlaybook(playbook, { ...on, dryRun: playbook.dryRun });
    }
  }

  /**
   * Run a playbook's steps in order against an agent (and its incident, when there is one),
   * recording each step. In dry-run mode each step records what it would do and does nothing.
   */
  async runPlaybook(
    playbook: Playbook,
    on: { incident: Incident | null; agentId: string | null; dryRun: boolean },
  ): Promise<IncidentAction[]> {
    const done: IncidentAction[] = [];
    let incidentId = on.incident?.id ?? null;
    const actor = `playbook:${playbook.name}`;
    for (const step of playbook.steps) {
      const action = await this.runStep(playbook, step, { ...on, incidentId }, actor);
      if (action.kind === 'quarantine' && typeof action.detail.incident === 'string')
        incidentId = action.detail.incident;
      done.push(action);
    }
    return done;
  }

  private async runStep(
    playbook: Playbook,
    step: PlaybookStep,
    on: { incidentId: string | null; agentId: string | null; dryRun: boolean },
    actor: string,
  ): Promise<IncidentAction> {
    const record = (status: IncidentAction['status'], detail: Record<string, unknown>) =>
      this.recordAction(on.incidentId, step.kind, status, actor, playbook.name, detail);
    const agentId = on.agentId;
    const needsAgent = step.kind !== 'notify';
    if (needsAgent && agentId === null) return record('noop', { why: 'no agent to act on' });
    switch (step.kind) {
      case 'quarantine': {
        const id = agentId as string;
        const existing = this.index.get('agent', id);
        if (existing !== undefined)
          return record('noop', { why: 'already quarantined', containment: existing.id });
        if (on.dryRun) return record('dry-run', { would: `quarantine agent ${id}` });
        const reason =
          typeof step.options.reason === 'string' ? step.options.reason : `playbook ${playbook.name}`;
        const c = this.containNow({
          scope: 'agent',
          target: id,
          reason,
          actor,
          incidentId: this.deps.ids.next('inc'),
          time: this.deps.clock.now(),
        });
        await this.afterContain(c, {
          detector: 'manual',
          detail: reason,
          onsetAt: c.createdAt,
          agentId: id,
          taskId: null,
          playbooks: false,
        });
        return record('done', { containment: c.id, incident: c.incidentId });
      }
      case 'revoke_bindings': {
        const hook = this.hooks.revokeBindings;
        if (hook === undefined)
          return record('noop', {
            why: 'no vault hook is registered yet: upstream bindings were not revoked (the agent holds no upstream secrets; Custos injects them)',
          });
        if (on.dryRun) return record('dry-run', { would: `revoke the upstream bindings of ${agentId}` });
        try {
          return record('done', await hook(agentId as string));
        } catch (error) {
          return record('failed', { error: errorMessage(error) });
        }
      }
      case 'notify': {
        const url = (step.options.webhook as string | undefined) ?? this.deps.config.notify.webhook;
        if (url === null) return record('noop', { why: 'no webhook configured' });
        const text =
          (step.options.text as string | undefined) ??
          `Custos playbook ${playbook.name} ran${agentId ? ` for agent ${agentId}` : ''}${on.incidentId ? ` (incident ${on.incidentId})` : ''}`;
        if (on.dryRun) return record('dry-run', { would: `post to ${webhookOrigin(url)}`, text });
        try {
          const { status, attempts } = await postWebhook(
            url,
            { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] },
            this.retryPolicy(),
          );
          return record('done', { webhook: webhookOrigin(url), status, attempts });
        } catch (error) {
          return record('failed', {
            webhook: webhookOrigin(url),
            error: errorMessage(error),
            attempts: (error as { attempts?: number }).attempts ?? 1,
          });
        }
      }
      case 'open_approval': {
        const containment = this.index.get('agent', agentId as string);
        const approvers = (step.options.approvers as number | undefined) ?? this.deps.config.resume.approvers;
        if (containment === undefined) return record('noop', { why: 'the agent is not contained' });
        const hook = this.hooks.openResumeApproval;
        if (hook === undefined)
          return record('noop', {
            why: `resume with \`custos resume --agent\` (or the console): it lifts once detect.resume.approvers (${this.deps.config.resume.approvers}) different people asked; the approvals engine's requests are bound to a call the agent retries, and a resume has none`,
            approvers,
          });
        if (on.dryRun)
          return record('dry-run', { would: `open an approval to resume ${agentId}`, approvers });
        try {
          return record('done', await hook(containment, approvers));
        } catch (error) {
          return record('failed', { error: errorMessage(error) });
        }
      }
      case 'snapshot': {
        if (on.dryRun) return record('dry-run', { would: `snapshot the state of agent ${agentId}` });
        return record('done', await this.snapshot(agentId as string));
      }
    }
  }

  /** An agent's state at a moment: identity, containments, detector numbers, tools used, last calls. */
  async snapshot(agentId: string): Promise<Record<string, unknown>> {
    const agent = await this.deps.agents.get(agentId);
    const state = this.agentStates.get(agentId);
    const recent = await listEvents(this.deps.store, { agentId, limit: 20 });
    return {
      at: this.deps.clock.now(),
      agent: agent ?? null,
      containments: this.index
        .list()
        .filter((c) => c.scope === 'all' || (c.scope === 'agent' && c.target === agentId))
        .map((c) => c.id),
      detectors: state?.meter.describe() ?? null,
      used: state ? [...state.seen].sort() : [...(this.seenLoaded.get(agentId) ?? [])].sort(),
      inFlight: [...this.flights].filter((f) => f.principal.agentId === agentId).length,
      recentEvents: recent.map((e) => ({
        seq: e.seq,
        time: e.time,
        call: `${e.server ?? ''}.${e.target ?? ''}`,
        outcome: e.outcome,
        code: e.errorCode,
      })),
    };
  }

  // ---------------------------------------------------------------- records

  private async recordFinding(finding: Finding, ctx: CallContext): Promise<void> {
    const p = ctx.principal;
    await this.insertDetection({
      time: ctx.time,
      agentId: p.agentId,
      taskId: p.task?.id ?? null,
      server: ctx.upstream?.name ?? null,
      target: ctx.upstreamName ?? ctx.target.name,
      detector: finding.detector,
      action: finding.action,
      detail: finding.detail,
      incidentId: null,
    });
    this.deps.logger?.warn(
      { agent: p.agentId, detector: finding.detector, action: finding.action, detail: finding.detail },
      'detector fired',
    );
    await this.runMatching(finding.detector, finding.action, { incident: null, agentId: p.agentId });
  }

  private async insertDetection(d: {
    time: number;
    agentId: string | null;
    taskId: string | null;
    server: string | null;
    target: string | null;
    detector: string;
    action: string;
    detail: string;
    incidentId: string | null;
  }): Promise<void> {
    await this.deps.store.db
      .insertInto('detections')
      .values({
        id: this.deps.ids.next('det'),
        time: d.time,
        agent_id: d.agentId,
        task_id: d.taskId,
        server: d.server,
        target: d.target,
        detector: d.detector,
        action: d.action,
        detail: d.detail,
        incident_id: d.incidentId,
      })
      .execute();
  }

  private async recordAction(
    incidentId: string | null,
    kind: string,
    status: IncidentAction['status'],
    actor: string,
    playbook: string | null,
    detail: Record<string, unknown>,
  ): Promise<IncidentAction> {
    const action: IncidentAction = {
      id: this.deps.ids.next('act'),
      incidentId,
      time: this.deps.clock.now(),
      kind,
      status,
      actor,
      playbook,
      detail,
    };
    await this.deps.store.db
      .insertInto('incident_actions')
      .values({
        id: action.id,
        incident_id: incidentId,
        time: action.time,
        ordinal: this.ordinal++,
        kind,
        status,
        actor,
        playbook,
        detail: JSON.stringify(detail),
      })
      .execute();
    return action;
  }

  /**
   * One audit event for a containment change. The contained agent, task, server or tool is
   * named in the event's columns, so the agent's own trail shows it; the person (or detector)
   * who acted is in the reasons and arguments.
   */
  private async recordAudit(
    method: string,
    c: Containment,
    fields: {
      agentId: string | null;
      taskId: string | null;
      effect: 'allow' | 'deny';
      reasons: string[];
      arguments: Record<string, unknown>;
    },
    time = this.deps.clock.now(),
  ): Promise<void> {
    const audit = this.deps.audit;
    if (audit === undefined) return;
    const dot = c.scope === 'tool' ? c.target.indexOf('.') : -1;
    await audit.record({
      time,
      agentId: fields.agentId,
      owner: null,
      taskId: fields.taskId,
      method,
      server: c.scope === 'server' ? c.target : dot > 0 ? c.target.slice(0, dot) : null,
      target: dot > 0 ? c.target.slice(dot + 1) : null,
      argsHash: null,
      effect: fields.effect,
      policyIds: [],
      reasons: fields.reasons,
      outcome: 'executed',
      errorCode: null,
      latencyUs: 0,
      traceId: null,
      arguments: fields.arguments,
    });
  }

  private recordIncidentAudit(
    method: string,
    incident: Incident,
    reasons: string[],
    args: Record<string, unknown>,
    time?: number,
  ): Promise<void> {
    const c: Containment = {
      id: '',
      scope: incident.scope,
      target: incident.target,
      reason: '',
      actor: '',
      incidentId: incident.id,
      createdAt: incident.detectedAt,
      resumeVotes: [],
      liftedAt: null,
    };
    return this.recordAudit(
      method,
      c,
      {
        agentId: incident.agentId,
        taskId: incident.taskId,
        effect: 'allow',
        reasons: [`incident ${incident.id}`, ...reasons],
        arguments: { incident: incident.id, ...args },
      },
      time,
    );
  }

  private async rememberSeen(agentId: string, key: string, time: number): Promise<void> {
    await this.deps.store.db
      .insertInto('detect_seen')
      .values({ agent_id: agentId, key, first_at: time })
      .onConflict((oc) => oc.columns(['agent_id', 'key']).doNothing())
      .execute();
  }

  /** Keep background work (records, notifications) visible to settle() and its failures in the log. */
  private track(work: Promise<unknown>): void {
    const tracked = work.catch((error) =>
      this.deps.logger?.error({ err: error }, 'detect: recording failed'),
    );
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }

  /** Wait until the records, notifications and playbooks started so far are done. */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
    await this.flushRefusals();
  }

  /** Drop detector state of tasks and tools idle for a while (task tokens are short-lived). */
  private pruneIdle(): void {
    const before = this.deps.clock.now() - idleStateMs;
    for (const [key, state] of this.taskStates) if (state.lastSeen < before) this.taskStates.delete(key);
    for (const [key, state] of this.toolStates) if (state.lastSeen < before) this.toolStates.delete(key);
  }

  async close(): Promise<void> {
    await this.settle();
  }
}

function containedVerdict(c: Containment): Verdict {
  return {
    stop: true,
    code: 'contained',
    message: containedMessage(c),
    reasons: [`containment ${c.id}`, ...(c.incidentId ? [`incident ${c.incidentId}`] : [])],
  };
}
