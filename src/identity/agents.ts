import type { Transaction } from 'kysely';
import { z } from 'zod';
import type { Clock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import type { IdGenerator } from '../core/ids.js';
import type { AgentCredentialTable, AgentTable, Database, Store } from '../store/index.js';
import { type ClientPublicKey, parseClientPublicKey } from './client-keys.js';
import { type AgentDirectory, agentViewFromRow } from './directory.js';
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
  expiresAt?: number | null;
  credential?: CredentialSpec;
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

  constructor(options: AgentServiceOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.ids = options.ids;
    this.directory = options.directory;
  }

  /**
   * Register an agent with its first credential. A client secret is generated and
   * returned in the result only; the store keeps its scrypt hash.
   */
  async add(input: NewAgent): Promise<AddedAgent> {
    const parsed = newAgentSchema.safeParse(input);
    if (!parsed.success) throw invalid(parsed.error);
    const spec = input.credential ?? { kind: 'client_secret' };
    const prepared = await this.prepareCredential(spec);
    const now = this.clock.now();
    if (parsed.data.expiresAt !== null && parsed.data.expiresAt <= now) {
      throw new CustosError('bad_request', 'expiresAt: must be in the future');
    }
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
      expires_at: parsed.data.expiresAt,
      require_dpop: 0,
    };
    const credential = this.credentialRow(row.id, prepared, now);
    try {
      await this.store.db.transaction().execute(async (trx) => {
        const taken = await trx
          .selectFrom('agents')
          .select('id')
          .where('name', '=', row.name)
          .executeTakeFirst();
        if (taken !== undefined) throw this.nameTaken(row.name);
        await trx.insertInto('agents').values(row).execute();
        await trx.insertInto('agent_credentials').values(credential).execute();
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
  async suspend(ref: string): Promise<Agent> {
    return this.transition(ref, async (trx, agent, now) => {
      if (agent.status === 'offboarded') throw this.offboarded(agent);
      if (agent.status === 'suspended') return false;
      await this.bump(trx, agent.id, 'suspended', now);
      return true;
    });
  }

  /**
   * Let a suspended agent work again. Tokens from before the suspension stay dead (their
   * epoch is behind); the agent gets new ones. An offboarded agent cannot come back.
   */
  async resume(ref: string): Promise<Agent> {
    return this.transition(ref, async (trx, agent, now) => {
      if (agent.status === 'offboarded') throw this.offboarded(agent);
      if (agent.status === 'active') return false;
      await trx
        .updateTable('agents')
        .set({ status: 'active', updated_at: now })
        .where('id', '=', agent.id)
        // Never resurrect an agent another process offboarded since we read it.
        .where('status', '=', 'suspended')
        .execute();
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
   * End every token the agent holds without changing its status (the epoch moves on), so
   * a quarantined agent must come back for a new token. An offboarded agent is left alone.
   */
  async revokeTokens(ref: string): Promise<Agent> {
    return this.transition(ref, async (trx, agent, now) => {
      if (agent.status === 'offboarded') return false;
      await this.bump(trx, agent.id, agent.status, now);
      return true;
    });
  }

  /**
   * Retire an agent for good, in one transaction: status offboarded, epoch bumped (every
   * token dies) and every credential revoked (no new tokens). Offboarding twice is a no-op.
   */
  async offboard(ref: string): Promise<Agent> {
    return this.transition(ref, async (trx, agent, now) => {
      if (agent.status === 'offboarded') return false;
      await this.bump(trx, agent.id, 'offboarded', now);
      await trx
        .updateTable('agent_credentials')
        .set({ revoked_at: now })
        .where('agent_id', '=', agent.id)
        .where('revoked_at', 'is', null)
        .execute();
      return true;
    });
  }

  private async transition(
    ref: string,
    step: (trx: Transaction<Database>, agent: Agent, now: number) => Promise<boolean>,
  ): Promise<Agent> {
    const now = this.clock.now();
    const row = await this.store.db.transaction().execute(async (trx) => {
      const current = await trx
        .selectFrom('agents')
        .selectAll()
        .where(agentIdPattern.test(ref) ? 'id' : 'name', '=', ref)
        .executeTakeFirst();
      if (current === undefined) throw new CustosError('not_found', `no agent "${ref}"`);
      const changed = await step(trx, toAgent(current, now), now);
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
  ): Promise<void> {
    await trx
      .updateTable('agents')
      .set((eb) => ({ status, updated_at: now, epoch: eb('epoch', '+', 1) }))
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

  private offboarded(agent: Agent): CustosError {
    return new CustosError('agent_offboarded', `agent "${agent.name}" is offboarded and cannot be changed`, {
      detail: { agentId: agent.id },
    });
  }
}
