import type { Transaction } from 'kysely';
import { z } from 'zod';
import type { Clock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import type { IdGenerator } from '../core/ids.js';
import type { AgentCredentialTable, AgentTable, Database, Store } from '../store/index.js';
import { type ClientPublicKey, parseClientPublicKey } from './client-keys.js';
import { type AgentDirectory, agentViewFromRow } from './directory.js';
import {
  dayMs,
  defaultExpiryRules,
  type ExpiryRules,
  type LifecycleAudit,
  type LifecycleAuditTransaction,
  lifecycleEvent,
  type OffboardStep,
  unrecordedLifecycle,
} from './lifecycle.js';
import { generateClientSecret, hashClientSecret } from './secrets.js';

export type AgentStatus = 'active' | 'suspended' | 'offboarded';

/** An agent as the control plane sees it. Times are milliseconds since the Unix epoch. */
export interface Agent {
  readonly id: string;
  readonly name: string;
  /** Email of the human who answers for the agent. */
  readonly owner: string;
  readonly purpose: string;
  readonly environment: string;
  readonly status: AgentStatus;
  /** Revocation epoch: tokens carry it and stop working once it moves on. */
  readonly epoch: number;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly expiresAt: number | null;
  /** Why a suspended agent is suspended: 'expired' (renewing lifts it), 'manual', or null. */
  readonly statusReason: string | null;
  /** Its access tokens must be DPoP-bound (RFC 9449); bearer tokens are refused. */
  readonly requireDpop: boolean;
  /** Status active and not past expiresAt, at the time of reading. */
  readonly active: boolean;
}

export type CredentialKind = AgentCredentialTable['kind'];

/** A credential's public facts; never the hash. */
export interface CredentialInfo {
  readonly id: string;
  readonly agentId: string;
  readonly kind: CredentialKind;
  readonly createdAt: number;
  readonly revokedAt: number | null;
  /** The registered public JWK (kind public_key). */
  readonly publicJwk: Record<string, unknown> | null;
}

/** How a new agent (or a rotation) authenticates: a generated secret, or a registered public key. */
export type CredentialSpec = { kind: 'client_secret' } | { kind: 'public_key'; jwk: unknown };

export interface NewAgent {
  name: string;
  owner: string;
  purpose: string;
  environment?: string;
  /** When the agent expires (ms); null or absent means the default (lifecycle.defaultExpiryDays). */
  expiresAt?: number | null;
  /** Days until the agent expires; an alternative to expiresAt. */
  expiresInDays?: number;
  credential?: CredentialSpec;
}

/** Who makes a lifecycle change, for the audit log: a user's email, "admin token", "lifecycle sweep". */
export interface ChangeOptions {
  by?: string;
}

/** What an offboarding removed, step by step (the same object the agents/offboard event records). */
export interface OffboardReport {
  readonly agent: Agent;
  /** False when the agent was already offboarded (nothing was done). */
  readonly changed: boolean;
  readonly credentialsErased: number;
  readonly steps: Readonly<Record<string, Record<string, unknown>>>;
}

export interface IssuedCredential {
  readonly credential: CredentialInfo;
  /** The client secret, present only for kind client_secret and only in this result. */
  readonly clientSecret?: string;
}

export interface AddedAgent extends IssuedCredential {
  readonly agent: Agent;
  /** OAuth client_id: the agent id. */
  readonly clientId: string;
}

export interface AgentFilter {
  status?: AgentStatus;
  owner?: string;
}

const nameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'use lower-case letters, digits, "-" and "_", up to 63 characters');

const newAgentSchema = z.object({
  name: nameSchema,
  owner: z.email({ error: "owner must be the accountable human's email address" }),
  purpose: z.string().trim().min(1, { error: 'purpose is required: say what the agent is for' }).max(1000),
  environment: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'use lower-case letters, digits, "-" and "_"')
    .default('development'),
  expiresAt: z.number().int().positive().nullable().default(null),
  expiresInDays: z.number().int().positive().optional(),
});

function invalid(error: z.ZodError): CustosError {
  const problems = error.issues.map((issue) => ({
    path: issue.path.map(String).join('.'),
    problem: issue.message,
  }));
  return new CustosError('bad_request', problems.map((p) => `${p.path}: ${p.problem}`).join('; '), {
    detail: { problems },
  });
}

function toAgent(row: AgentTable, now: number): Agent {
  const expiresAt = row.expires_at === null ? null : Number(row.expires_at);
  return {
    id: row.id,
    name: row.name,
    owner: row.owner,
    purpose: row.purpose,
    environment: row.environment,
    status: row.status,
    epoch: Number(row.epoch),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    expiresAt,
    statusReason: row.status === 'suspended' ? (row.status_reason ?? 'manual') : null,
    requireDpop: Number(row.require_dpop) === 1,
    active: row.status === 'active' && (expiresAt === null || expiresAt > now),
  };
}

function toCredentialInfo(row: AgentCredentialTable): CredentialInfo {
  return {
    id: row.id,
    agentId: row.agent_id,
    kind: row.kind,
    createdAt: Number(row.created_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
    publicJwk: row.public_jwk === null ? null : (JSON.parse(row.public_jwk) as Record<string, unknown>),
  };
}

const agentIdPattern = /^agt_[0-9a-z]+$/;

export interface AgentServiceOptions {
  store: Store;
  clock: Clock;
  ids: IdGenerator;
  /** Updated after every committed write, so this process sees its own changes at once. */
  directory?: AgentDirectory;
  /**
   * Runs each lifecycle change with its audit event in one transaction (the audit recorder).
   * Without it changes are not recorded: for unit tests and read-only tools only.
   */
  audit?: LifecycleAudit;
  /** Expiry default and maximum (config `lifecycle`); 90 and 365 days by default. */
  expiry?: ExpiryRules;
  /** What else offboarding removes, in order, inside its transaction (approvals, vault bindings). */
  offboardSteps?: readonly OffboardStep[];
  /**
   * Called at named points inside the offboarding transaction (after each step, and
   * `before-commit` once the audit event is written). The crash tests pause there; nothing
   * else should set it.
   */
  pause?: (point: string) => Promise<void>;
}

/**
 * The agent inventory: every agent has an accountable owner and a purpose, a lifecycle
 * (active, suspended, offboarded) and credentials. Suspending and offboarding bump the
 * revocation epoch, which ends every token issued before.
 */
export class AgentService {
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly ids: IdGenerator;
  private readonly directory: AgentDirectory | undefined;
  private readonly audit: LifecycleAudit;
  readonly expiry: ExpiryRules;
  private readonly steps: OffboardStep[];
  private readonly pause: ((point: string) => Promise<void>) | undefined;

  constructor(options: AgentServiceOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.ids = options.ids;
    this.directory = options.directory;
    this.audit = options.audit ?? unrecordedLifecycle(options.store);
    this.expiry = options.expiry ?? defaultExpiryRules;
    this.steps = [...(options.offboardSteps ?? [])];
    this.pause = options.pause;
  }

  /**
   * Register what offboarding must also remove (the registration point for capabilities:
   * approvals registers its step, the vault registers the deletion of per-agent bindings).
   * Steps run in registration order inside the offboarding transaction.
   */
  registerOffboardStep(step: OffboardStep): void {
    if (this.steps.some((s) => s.name === step.name)) {
      throw new CustosError('internal', `an offboarding step named "${step.name}" is already registered`);
    }
    this.steps.push(step);
  }

  /** Names of the registered offboarding steps, in the order they run. */
  get offboardStepNames(): string[] {
    return this.steps.map((s) => s.name);
  }

  /** The expiry a new agent or a renewal gets: the default, or the one asked for within the maximum. */
  private expiryOf(
    asked: { expiresAt?: number | null; expiresInDays?: number | undefined },
    now: number,
  ): number {
    if (asked.expiresAt != null && asked.expiresInDays !== undefined) {
      throw new CustosError('bad_request', 'give expiresAt or expiresInDays, not both');
    }
    const expiresAt = asked.expiresAt ?? now + (asked.expiresInDays ?? this.expiry.defaultExpiryDays) * dayMs;
    if (expiresAt <= now) throw new CustosError('bad_request', 'expiresAt: must be in the future');
    if (expiresAt > now + this.expiry.maxExpiryDays * dayMs) {
      throw new CustosError(
        'bad_request',
        `expiresAt: at most ${this.expiry.maxExpiryDays} days ahead (lifecycle.maxExpiryDays)`,
        { detail: { maxExpiryDays: this.expiry.maxExpiryDays } },
      );
    }
    return expiresAt;
  }

  /**
   * Register an agent with its first credential. A client secret is generated and
   * returned in the result only; the store keeps its scrypt hash.
   */
  async add(input: NewAgent, options: ChangeOptions = {}): Promise<AddedAgent> {
    const parsed = newAgentSchema.safeParse(input);
    if (!parsed.success) throw invalid(parsed.error);
    const spec = input.credential ?? { kind: 'client_secret' };
    const prepared = await this.prepareCredential(spec);
    const now = this.clock.now();
    const expiresAt = this.expiryOf(parsed.data, now);
    const row: AgentTable = {
      id: this.ids.next('agt'),
      name: parsed.data.name,
      owner: parsed.data.owner,
      purpose: parsed.data.purpose,
      environment: parsed.data.environment,
      status: 'active',
      epoch: 0,
      created_at: now,
      updated_at: now,
      expires_at: expiresAt,
      status_reason: null,
      require_dpop: 0,
    };
    const credential = this.credentialRow(row.id, prepared, now);
    try {
      await this.audit.transaction(async (trx, audit) => {
        const taken = await trx
          .selectFrom('agents')
          .select('id')
          .where('name', '=', row.name)
          .executeTakeFirst();
        if (taken !== undefined) throw this.nameTaken(row.name);
        await trx.insertInto('agents').values(row).execute();
        await trx.insertInto('agent_credentials').values(credential).execute();
        audit.append(
          lifecycleEvent('onboard', row, now, options.by ?? 'system', {
            purpose: row.purpose,
            environment: row.environment,
            expiresAt,
            credential: { id: credential.id, kind: credential.kind },
          }),
        );
      });
    } catch (error) {
      if (error instanceof CustosError) throw error;
      // A concurrent add of the same name loses on the unique index; say so in our terms.
      const taken = await this.store.db
        .selectFrom('agents')
        .select('id')
        .where('name', '=', row.name)
        .executeTakeFirst();
      if (taken !== undefined) throw this.nameTaken(row.name, error);
      throw error;
    }
    this.directory?.observe(agentViewFromRow(row));
    const agent = toAgent(row, now);
    return {
      agent,
      clientId: agent.id,
      credential: toCredentialInfo(credential),
      ...(prepared.secret === undefined ? {} : { clientSecret: prepared.secret }),
    };
  }

  /** Add another credential (rotation without downtime: add, switch the agent over, revoke the old one). */
  async addCredential(ref: string, spec: CredentialSpec): Promise<IssuedCredential> {
    const prepared = await this.prepareCredential(spec);
    const now = this.clock.now();
    const agent = await this.require(ref);
    if (agent.status === 'offboarded') throw this.offboarded(agent);
    const row = this.credentialRow(agent.id, prepared, now);
    await this.store.db.insertInto('agent_credentials').values(row).execute();
    return {
      credential: toCredentialInfo(row),
      ...(prepared.secret === undefined ? {} : { clientSecret: prepared.secret }),
    };
  }

  /** Revoke one credential; tokens already issued keep working until they expire or the agent is suspended. */
  async revokeCredential(credentialId: string): Promise<CredentialInfo> {
    const now = this.clock.now();
    await this.store.db
      .updateTable('agent_credentials')
      .set({ revoked_at: now })
      .where('id', '=', credentialId)
      .where('revoked_at', 'is', null)
      .execute();
    const row = await this.store.db
      .selectFrom('agent_credentials')
      .selectAll()
      .where('id', '=', credentialId)
      .executeTakeFirst();
    if (row === undefined) throw new CustosError('not_found', `no credential ${credentialId}`);
    return toCredentialInfo(row);
  }

  async listCredentials(ref: string): Promise<CredentialInfo[]> {
    const agent = await this.require(ref);
    const rows = await this.store.db
      .selectFrom('agent_credentials')
      .selectAll()
      .where('agent_id', '=', agent.id)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toCredentialInfo);
  }

  async list(filter: AgentFilter = {}): Promise<Agent[]> {
    let query = this.store.db.selectFrom('agents').selectAll();
    if (filter.status !== undefined) query = query.where('status', '=', filter.status);
    if (filter.owner !== undefined) query = query.where('owner', '=', filter.owner);
    const rows = await query.orderBy('name').execute();
    const now = this.clock.now();
    return rows.map((row) => toAgent(row, now));
  }

  /** An agent by id (agt_...) or by name; undefined when there is none. */
  async get(ref: string): Promise<Agent | undefined> {
    const row = await this.store.db
      .selectFrom('agents')
      .selectAll()
      .where(agentIdPattern.test(ref) ? 'id' : 'name', '=', ref)
      .executeTakeFirst();
    return row === undefined ? undefined : toAgent(row, this.clock.now());
  }

  /** Like get, but a missing agent is an error (for commands that act on one). */
  async require(ref: string): Promise<Agent> {
    const agent = await this.get(ref);
    if (agent === undefined) throw new CustosError('not_found', `no agent "${ref}"`);
    return agent;
  }

  /** Stop an agent: its tokens stop working at once (the epoch moves on). Suspending twice is a no-op. */
  async suspend(ref: string, options: ChangeOptions = {}): Promise<Agent> {
    return this.transition(ref, async (trx, agent, now, audit) => {
      if (agent.status === 'offboarded') throw this.offboarded(agent);
      if (agent.status === 'suspended') return false;
      await this.bump(trx, agent.id, 'suspended', now, 'manual');
      audit.append(lifecycleEvent('suspend', agent, now, options.by ?? 'system', { epoch: agent.epoch + 1 }));
      return true;
    });
  }

  /**
   * Let a suspended agent work again. Tokens from before the suspension stay dead (their
   * epoch is behind); the agent gets new ones. An offboarded agent cannot come back, and
   * an agent past its expiry must be renewed instead.
   */
  async resume(ref: string, options: ChangeOptions = {}): Promise<Agent> {
    return this.transition(ref, async (trx, agent, now, audit) => {
      if (agent.status === 'offboarded') throw this.offboarded(agent);
      if (agent.status === 'active') return false;
      if (agent.expiresAt !== null && agent.expiresAt <= now) throw this.expired(agent);
      await trx
        .updateTable('agents')
        .set({ status: 'active', status_reason: null, updated_at: now })
        .where('id', '=', agent.id)
        // Never resurrect an agent another process offboarded since we read it.
        .where('status', '=', 'suspended')
        .execute();
      audit.append(lifecycleEvent('resume', agent, now, options.by ?? 'system', {}));
      return true;
    });
  }

  /**
   * Extend an agent's expiry to `days` from now (the default expiry when absent, at most the
   * maximum). An agent the sweep suspended for expiry is active again; one suspended by a
   * person stays suspended. Offboarded agents cannot be renewed.
   */
  async renew(ref: string, options: ChangeOptions & { days?: number } = {}): Promise<Agent> {
    return this.transition(ref, async (trx, agent, now, audit) => {
      if (agent.status === 'offboarded') throw this.offboarded(agent);
      const expiresAt = this.expiryOf({ expiresInDays: options.days }, now);
      const lift = agent.status === 'suspended' && agent.statusReason === 'expired';
      await trx
        .updateTable('agents')
        .set({
          expires_at: expiresAt,
          updated_at: now,
          ...(lift ? { status: 'active' as const, status_reason: null } : {}),
        })
        .where('id', '=', agent.id)
        .where('status', '=', agent.status)
        .execute();
      audit.append(
        lifecycleEvent(
          'renew',
          agent,
          now,
          options.by ?? 'system',
          { previousExpiresAt: agent.expiresAt, expiresAt, resumed: lift },
          lift ? ['the expiry suspension is lifted'] : [],
        ),
      );
      return true;
    });
  }

  /**
   * Require (or stop requiring) DPoP-bound access tokens for an agent (RFC 9449). Takes effect
   * on the agent's next call: once required, its unbound tokens are refused at the gateway and
   * the token endpoint issues tokens only with a DPoP proof, so a stolen token is useless
   * without the agent's DPoP key.
   */
  async setRequireDpop(ref: string, required: boolean): Promise<Agent> {
    return this.transition(ref, async (trx, agent, now) => {
      if (agent.status === 'offboarded') throw this.offboarded(agent);
      if (agent.requireDpop === required) return false;
      await trx
        .updateTable('agents')
        .set({ require_dpop: required ? 1 : 0, updated_at: now })
        .where('id', '=', agent.id)
        .execute();
      return true;
    });
  }

  /**
   * Suspend every active agent past its expiry, each with an agents/expire event in the same
   * transaction. Tokens of an expired agent are refused from the moment of expiry anyway; the
   * sweep makes the state visible and ends its tokens for good (the epoch moves on). Renewing
   * lifts the suspension. Returns the agents it suspended.
   */
  async expireDue(options: ChangeOptions = {}): Promise<Agent[]> {
    const now = this.clock.now();
    const due = await this.store.db
      .selectFrom('agents')
      .select('id')
      .where('status', '=', 'active')
      .where('expires_at', 'is not', null)
      .where('expires_at', '<=', now)
      .orderBy('expires_at')
      .execute();
    const expired: Agent[] = [];
    for (const { id } of due) {
      let changed = false;
      const agent = await this.transition(id, async (trx, current, at, audit) => {
        // Read again inside the transaction: renewed or suspended meanwhile means nothing to do.
        if (current.status !== 'active' || current.expiresAt === null || current.expiresAt > at) return false;
        await this.bump(trx, current.id, 'suspended', at, 'expired');
        audit.append(
          lifecycleEvent('expire', current, at, options.by ?? 'lifecycle sweep', {
            expiresAt: current.expiresAt,
            epoch: current.epoch + 1,
          }),
        );
        changed = true;
        return true;
      });
      if (changed) expired.push(agent);
    }
    return expired;
  }

  /**
   * End every token the agent holds without changing its status (the epoch moves on), so
   * a quarantined agent must come back for a new token. An offboarded agent is left alone.
   */
  async revokeTokens(ref: string): Promise<Agent> {
    return this.transition(ref, async (trx, agent, now) => {
      if (agent.status === 'offboarded') return false;
      await this.bump(
        trx,
        agent.id,
        agent.status,
        now,
        agent.status === 'suspended' ? agent.statusReason : null,
      );
      return true;
    });
  }

  /**
   * Retire an agent for good, atomically: in one transaction the status becomes offboarded,
   * the epoch moves on (every token dies), every credential is revoked and its secret hash or key
   * erased (no new token), each registered offboarding step runs (pending approvals
   * cancelled, per-agent vault bindings deleted), and one agents/offboard event is appended
   * to the audit log. A crash at any point leaves all of it or none of it. Offboarding twice
   * is a no-op.
   */
  async offboard(ref: string, options: ChangeOptions = {}): Promise<Agent> {
    return (await this.offboardWithReport(ref, options)).agent;
  }

  /** offboard, with what each step removed. */
  async offboardWithReport(ref: string, options: ChangeOptions = {}): Promise<OffboardReport> {
    let report: Omit<OffboardReport, 'agent'> = { changed: false, credentialsErased: 0, steps: {} };
    const agent = await this.transition(ref, async (trx, current, now, audit) => {
      if (current.status === 'offboarded') return false;
      await this.bump(trx, current.id, 'offboarded', now, null);
      await this.pause?.('epoch');
      // The rows stay as tombstones (id, kind, times: evidence that they were revoked); the
      // secret hashes and keys are erased, so nothing can authenticate as the agent again.
      const erased = await trx
        .updateTable('agent_credentials')
        .set((eb) => ({
          secret_hash: null,
          public_jwk: null,
          revoked_at: eb.fn.coalesce('revoked_at', eb.val(now)),
        }))
        .where('agent_id', '=', current.id)
        .where((eb) => eb.or([eb('secret_hash', 'is not', null), eb('public_jwk', 'is not', null)]))
        .executeTakeFirst();
      const credentialsErased = Number(erased.numUpdatedRows);
      await this.pause?.('credentials');
      const steps: Record<string, Record<string, unknown>> = {};
      for (const step of this.steps) {
        steps[step.name] = await step.run(trx, current, now);
        await this.pause?.(step.name);
      }
      audit.append(
        lifecycleEvent(
          'offboard',
          current,
          now,
          options.by ?? 'system',
          { epoch: current.epoch + 1, credentialsErased, steps },
          [`${credentialsErased} credentials erased`, ...Object.keys(steps).map((name) => `step ${name}`)],
        ),
      );
      await audit.write();
      await this.pause?.('before-commit');
      report = { changed: true, credentialsErased, steps };
      return true;
    });
    return { agent, ...report };
  }

  private async transition(
    ref: string,
    step: (
      trx: Transaction<Database>,
      agent: Agent,
      now: number,
      audit: LifecycleAuditTransaction,
    ) => Promise<boolean>,
  ): Promise<Agent> {
    const now = this.clock.now();
    const row = await this.audit.transaction(async (trx, audit) => {
      const current = await trx
        .selectFrom('agents')
        .selectAll()
        .where(agentIdPattern.test(ref) ? 'id' : 'name', '=', ref)
        .executeTakeFirst();
      if (current === undefined) throw new CustosError('not_found', `no agent "${ref}"`);
      const changed = await step(trx, toAgent(current, now), now, audit);
      if (!changed) return current;
      return trx.selectFrom('agents').selectAll().where('id', '=', current.id).executeTakeFirstOrThrow();
    });
    this.directory?.observe(agentViewFromRow(row));
    return toAgent(row, now);
  }

  private async bump(
    trx: Transaction<Database>,
    id: string,
    status: AgentStatus,
    now: number,
    reason: string | null,
  ): Promise<void> {
    await trx
      .updateTable('agents')
      .set((eb) => ({ status, status_reason: reason, updated_at: now, epoch: eb('epoch', '+', 1) }))
      .where('id', '=', id)
      .where('status', '!=', 'offboarded')
      .execute();
  }

  private async prepareCredential(
    spec: CredentialSpec,
  ): Promise<{ kind: CredentialKind; secret?: string; hash?: string; key?: ClientPublicKey }> {
    if (spec.kind === 'client_secret') {
      const secret = generateClientSecret();
      return { kind: 'client_secret', secret, hash: await hashClientSecret(secret) };
    }
    if (spec.kind === 'public_key') return { kind: 'public_key', key: parseClientPublicKey(spec.jwk) };
    throw new CustosError('bad_request', 'credential.kind must be client_secret or public_key');
  }

  private credentialRow(
    agentId: string,
    prepared: { kind: CredentialKind; hash?: string; key?: ClientPublicKey },
    now: number,
  ): AgentCredentialTable {
    return {
      id: this.ids.next('cred'),
      agent_id: agentId,
      kind: prepared.kind,
      secret_hash: prepared.hash ?? null,
      public_jwk: prepared.key === undefined ? null : JSON.stringify(prepared.key.jwk),
      created_at: now,
      revoked_at: null,
    };
  }

  private nameTaken(name: string, cause?: unknown): CustosError {
    return new CustosError('conflict', `an agent named "${name}" already exists`, {
      detail: { name },
      ...(cause === undefined ? {} : { cause }),
    });
  }

  private expired(agent: Agent): CustosError {
    return new CustosError('agent_expired', `agent "${agent.name}" is past its expiry: renew it instead`, {
      detail: { agentId: agent.id, expiresAt: agent.expiresAt, fix: `custos agent renew ${agent.name}` },
    });
  }

  private offboarded(agent: Agent): CustosError {
    return new CustosError('agent_offboarded', `agent "${agent.name}" is offboarded and cannot be changed`, {
      detail: { agentId: agent.id },
    });
  }
}
