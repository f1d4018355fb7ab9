import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { AuditEvent, AuditEventInput } from '../audit/index.js';
import type { Clock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import type { IdGenerator } from '../core/ids.js';
import type { Store, UserTable, UserTokenTable } from '../store/index.js';
import { hashClientSecret, type ScryptCost, verifyClientSecret } from './secrets.js';

/** What a person may do: admin (everything), approver (decide approvals), auditor (read only). */
export type UserRole = 'admin' | 'approver' | 'auditor';
export const userRoles: readonly UserRole[] = ['admin', 'approver', 'auditor'];

/** A person who uses the console or the admin API; never carries a password hash. */
export interface User {
  readonly id: string;
  readonly email: string;
  readonly name: string;
  readonly roles: readonly UserRole[];
  readonly groups: readonly string[];
  readonly status: 'active' | 'disabled';
  /** Whether a local password is set (false for single sign-on only accounts). */
  readonly hasPassword: boolean;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** An API token's public facts; the token itself is shown once, at creation. */
export interface UserTokenInfo {
  readonly id: string;
  readonly userId: string;
  readonly name: string;
  readonly createdAt: number;
  readonly lastUsedAt: number | null;
  readonly revokedAt: number | null;
}

export interface NewUser {
  email: string;
  name?: string;
  roles: UserRole[];
  groups?: string[];
  password?: string;
}

export interface UserServiceOptions {
  store: Store;
  clock: Clock;
  ids: IdGenerator;
  /** Longest life of a console session, from login. */
  sessionTtlMs?: number;
  /** A session unused for this long ends. */
  sessionIdleMs?: number;
  /** scrypt cost of password hashes; the default follows OWASP's minimum (N=2^17, r=8, p=1). */
  passwordCost?: ScryptCost;
  /** The audit log: every change to a person, their roles or their tokens is an event there. */
  audit?: { record(input: AuditEventInput): Promise<AuditEvent> };
}

/** Who made a change to a user: a person's email, "admin token", or the CLI's login name. */
export type UserAdmin = string;

/** OWASP Password Storage Cheat Sheet's minimum for scrypt. */
export const passwordCost: ScryptCost = { log2n: 17, r: 8, p: 1 };
const tokenPrefix = 'custos_ut_';
const minPasswordLength = 12;
// Touching last_seen_at on every request would write per request; once a minute is enough for idle expiry.
const touchIntervalMs = 60_000;

const emailSchema = z.email({ error: 'a user is named by an email address' });
const groupSchema = z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'groups are lower-case names');
const newUserSchema = z.strictObject({
  email: emailSchema,
  name: z.string().trim().min(1).max(200).optional(),
  roles: z
    .array(z.enum(['admin', 'approver', 'auditor']))
    .min(1, { error: 'give at least one role: admin, approver or auditor' }),
  groups: z.array(groupSchema).optional(),
  password: z.string().optional(),
});

/** SHA-256 of a high-entropy secret (session id, API token): no slow hash is needed at 256 bits. */
function digest(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

function userFromRow(row: UserTable): User {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    roles: JSON.parse(row.roles) as UserRole[],
    groups: JSON.parse(row.groups) as string[],
    status: row.status,
    hasPassword: row.password_hash !== null,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

function tokenFromRow(row: UserTokenTable): UserTokenInfo {
  return {
    id: row.id,
    userId: row.user_id,
    name: row.name,
    createdAt: Number(row.created_at),
    lastUsedAt: row.last_used_at === null ? null : Number(row.last_used_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}

function checkPassword(password: string): void {
  if (password.length < minPasswordLength) {
    throw new CustosError('bad_request', `a password needs at least ${minPasswordLength} characters`);
  }
  if (password.length > 1024) throw new CustosError('bad_request', 'a password is at most 1024 characters');
}

let dummyPasswordHash: Promise<string> | undefined;

/**
 * Human users, their passwords, console sessions and API tokens. Passwords are scrypt
 * hashes; session ids and API tokens are 256 random bits stored as SHA-256.
 */
export class UserService {
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly ids: IdGenerator;
  private readonly sessionTtlMs: number;
  private readonly sessionIdleMs: number;
  private readonly cost: ScryptCost;
  private readonly audit: UserServiceOptions['audit'];

  constructor(options: UserServiceOptions) {
    this.audit = options.audit;
    this.store = options.store;
    this.clock = options.clock;
    this.ids = options.ids;
    this.sessionTtlMs = options.sessionTtlMs ?? 12 * 3_600_000;
    this.sessionIdleMs = options.sessionIdleMs ?? 3_600_000;
    this.cost = options.passwordCost ?? passwordCost;
  }

  async add(input: NewUser, by: UserAdmin = 'unknown'): Promise<User> {
    const parsed = newUserSchema.safeParse(input);
    if (!parsed.success) {
      throw new CustosError(
        'bad_request',
        parsed.error.issues.map((i) => `${i.path.join('.') || 'user'}: ${i.message}`).join('; '),
      );
    }
    const value = parsed.data;
    const email = value.email.toLowerCase();
    if (value.password !== undefined) checkPassword(value.password);
    if ((await this.find(email)) !== undefined) {
      throw new CustosError('conflict', `a user ${email} already exists`);
    }
    const now = this.clock.now();
    const row: UserTable = {
      id: this.ids.next('usr'),
      email,
      name: value.name ?? email,
      roles: JSON.stringify([...new Set(value.roles)].sort()),
      groups: JSON.stringify([...new Set(value.groups ?? [])].sort()),
      password_hash: value.password === undefined ? null : await hashClientSecret(value.password, this.cost),
      status: 'active',
      created_at: now,
      updated_at: now,
    };
    await this.store.db.insertInto('users').values(row).execute();
    const user = userFromRow(row);
    await this.record('users/create', user, by, [`roles ${user.roles.join(',')}`], {
      roles: user.roles,
      groups: user.groups,
      password: user.hasPassword,
    });
    return user;
  }

  /** Replace a user's roles (at least one). */
  async setRoles(ref: string, roles: readonly UserRole[], by: UserAdmin = 'unknown'): Promise<User> {
    const parsed = newUserSchema.shape.roles.safeParse(roles);
    if (!parsed.success)
      throw new CustosError('bad_request', parsed.error.issues.map((i) => `roles: ${i.message}`).join('; '));
    const before = await this.require(ref);
    const next = [...new Set(parsed.data)].sort();
    await this.store.db
      .updateTable('users')
      .set({ roles: JSON.stringify(next), updated_at: this.clock.now() })
      .where('id', '=', before.id)
      .execute();
    const after = await this.require(before.id);
    await this.record(
      'users/roles',
      after,
      by,
      [`roles ${before.roles.join(',')} -> ${after.roles.join(',')}`],
      { before: before.roles, after: after.roles },
    );
    return after;
  }

  async list(): Promise<User[]> {
    const rows = await this.store.db.selectFrom('users').selectAll().orderBy('email').execute();
    return rows.map(userFromRow);
  }

  /** A user by id or email. */
  async find(ref: string): Promise<User | undefined> {
    const row = await this.row(ref);
    return row === undefined ? undefined : userFromRow(row);
  }

  async require(ref: string): Promise<User> {
    const user = await this.find(ref);
    if (user === undefined) throw new CustosError('not_found', `no user ${ref}`);
    return user;
  }

  /** Disable a user: their sessions end and their API tokens stop working at once. */
  async disable(ref: string, by: UserAdmin = 'unknown'): Promise<User> {
    const user = await this.require(ref);
    await this.store.db.transaction().execute(async (tx) => {
      await tx
        .updateTable('users')
        .set({ status: 'disabled', updated_at: this.clock.now() })
        .where('id', '=', user.id)
        .execute();
      await tx.deleteFrom('user_sessions').where('user_id', '=', user.id).execute();
    });
    const after = await this.require(user.id);
    await this.record('users/disable', after, by, [`status ${user.status} -> disabled`], {});
    return after;
  }

  async enable(ref: string, by: UserAdmin = 'unknown'): Promise<User> {
    const user = await this.require(ref);
    await this.store.db
      .updateTable('users')
      .set({ status: 'active', updated_at: this.clock.now() })
      .where('id', '=', user.id)
      .execute();
    const after = await this.require(user.id);
    await this.record('users/enable', after, by, [`status ${user.status} -> active`], {});
    return after;
  }

  /** Set a new password; the user's other sessions end. */
  async setPassword(ref: string, password: string, by: UserAdmin = 'unknown'): Promise<void> {
    checkPassword(password);
    const user = await this.require(ref);
    const hash = await hashClientSecret(password, this.cost);
    await this.store.db.transaction().execute(async (tx) => {
      await tx
        .updateTable('users')
        .set({ password_hash: hash, updated_at: this.clock.now() })
        .where('id', '=', user.id)
        .execute();
      await tx.deleteFrom('user_sessions').where('user_id', '=', user.id).execute();
    });
    await this.record('users/password', user, by, ['password set; sessions ended'], {});
  }

  /**
   * The active user with this email and password, or undefined. An unknown email costs the
   * same scrypt work as a wrong password, so timing does not tell which accounts exist.
   */
  async verifyPassword(email: string, password: string): Promise<User | undefined> {
    const row = await this.row(email.toLowerCase());
    if (row === undefined || row.password_hash === null || password.length > 1024) {
      dummyPasswordHash ??= hashClientSecret(randomBytes(16).toString('hex'), this.cost);
      await verifyClientSecret(password.slice(0, 1024), await dummyPasswordHash);
      return undefined;
    }
    const ok = await verifyClientSecret(password, row.password_hash);
    if (!ok || row.status !== 'active') return undefined;
    return userFromRow(row);
  }

  /** Start a console session; the returned secret goes into the cookie and is not stored. */
  async createSession(userId: string): Promise<{ secret: string; expiresAt: number }> {
    const secret = randomBytes(32).toString('base64url');
    const now = this.clock.now();
    const expiresAt = now + this.sessionTtlMs;
    await this.store.db
      .insertInto('user_sessions')
      .values({
        id_hash: digest(secret),
        user_id: userId,
        created_at: now,
        last_seen_at: now,
        expires_at: expiresAt,
      })
      .execute();
    return { secret, expiresAt };
  }

  /** The active user of a live session, or undefined (unknown, expired, idle too long, or user disabled). */
  async resolveSession(secret: string): Promise<User | undefined> {
    if (secret.length === 0 || secret.length > 100) return undefined;
    const idHash = digest(secret);
    const row = await this.store.db
      .selectFrom('user_sessions')
      .innerJoin('users', 'users.id', 'user_sessions.user_id')
      .selectAll('users')
      .select(['user_sessions.last_seen_at', 'user_sessions.expires_at'])
      .where('user_sessions.id_hash', '=', idHash)
      .executeTakeFirst();
    if (row === undefined) return undefined;
    const now = this.clock.now();
    const lastSeen = Number(row.last_seen_at);
    if (now >= Number(row.expires_at) || now - lastSeen >= this.sessionIdleMs || row.status !== 'active') {
      await this.store.db.deleteFrom('user_sessions').where('id_hash', '=', idHash).execute();
      return undefined;
    }
    if (now - lastSeen >= touchIntervalMs) {
      await this.store.db
        .updateTable('user_sessions')
        .set({ last_seen_at: now })
        .where('id_hash', '=', idHash)
        .execute();
    }
    return userFromRow(row);
  }

  async endSession(secret: string): Promise<void> {
    await this.store.db.deleteFrom('user_sessions').where('id_hash', '=', digest(secret)).execute();
  }

  /** A new API token for a user: the token is in this result only; the store keeps its SHA-256. */
  async createToken(
    ref: string,
    name: string,
    by: UserAdmin = 'unknown',
  ): Promise<{ token: string; info: UserTokenInfo }> {
    const user = await this.require(ref);
    if (user.status !== 'active') throw new CustosError('conflict', `user ${user.email} is disabled`);
    const label = name.trim();
    if (label === '' || label.length > 100)
      throw new CustosError('bad_request', 'a token needs a name (1-100 characters)');
    const token = `${tokenPrefix}${randomBytes(32).toString('base64url')}`;
    const row: UserTokenTable = {
      id: this.ids.next('utok'),
      user_id: user.id,
      name: label,
      token_hash: digest(token),
      created_at: this.clock.now(),
      last_used_at: null,
      revoked_at: null,
    };
    await this.store.db.insertInto('user_tokens').values(row).execute();
    // The token's id and name only: the token itself never enters the log.
    await this.record('users/token-issue', user, by, [`token ${row.id} (${label})`], {
      tokenId: row.id,
      name: label,
    });
    return { token, info: tokenFromRow(row) };
  }

  async listTokens(ref: string): Promise<UserTokenInfo[]> {
    const user = await this.require(ref);
    const rows = await this.store.db
      .selectFrom('user_tokens')
      .selectAll()
      .where('user_id', '=', user.id)
      .orderBy('created_at')
      .execute();
    return rows.map(tokenFromRow);
  }

  async revokeToken(tokenId: string, by: UserAdmin = 'unknown'): Promise<void> {
    const result = await this.store.db
      .updateTable('user_tokens')
      .set({ revoked_at: this.clock.now() })
      .where('id', '=', tokenId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) throw new CustosError('not_found', `no live token ${tokenId}`);
    const owner = await this.store.db
      .selectFrom('user_tokens')
      .select('user_id')
      .where('id', '=', tokenId)
      .executeTakeFirst();
    const user = owner === undefined ? undefined : await this.find(owner.user_id);
    if (user !== undefined)
      await this.record('users/token-revoke', user, by, [`token ${tokenId}`], { tokenId });
  }

  /** One audit event for a change to a person: who changed whom, and what. */
  private async record(
    method: string,
    user: User,
    by: UserAdmin,
    what: string[],
    args: Record<string, unknown>,
  ): Promise<void> {
    if (this.audit === undefined) return;
    await this.audit.record({
      time: this.clock.now(),
      agentId: null,
      owner: by,
      taskId: null,
      method,
      server: null,
      target: user.email,
      argsHash: null,
      effect: 'allow',
      policyIds: [],
      reasons: [`user ${user.email} (${user.id})`, `by ${by}`, ...what],
      outcome: 'executed',
      errorCode: null,
      latencyUs: 0,
      traceId: null,
      arguments: { user: user.id, email: user.email, by, ...args },
    });
  }

  /** Whether a bearer value looks like a user API token (so other token kinds are not looked up). */
  static isUserToken(token: string): boolean {
    return token.startsWith(tokenPrefix);
  }

  /** The active user an API token belongs to, or undefined (unknown, revoked, or user disabled). */
  async authenticateToken(token: string): Promise<User | undefined> {
    if (!UserService.isUserToken(token) || token.length > 200) return undefined;
    const hash = digest(token);
    const row = await this.store.db
      .selectFrom('user_tokens')
      .innerJoin('users', 'users.id', 'user_tokens.user_id')
      .selectAll('users')
      .select([
        'user_tokens.id as token_id',
        'user_tokens.token_hash',
        'user_tokens.revoked_at',
        'user_tokens.last_used_at',
      ])
      .where('user_tokens.token_hash', '=', hash)
      .executeTakeFirst();
    // The lookup is by hash; compare again in constant time so a collation quirk cannot match loosely.
    if (row === undefined || !timingSafeEqual(Buffer.from(row.token_hash), Buffer.from(hash)))
      return undefined;
    if (row.revoked_at !== null || row.status !== 'active') return undefined;
    const now = this.clock.now();
    if (row.last_used_at === null || now - Number(row.last_used_at) >= touchIntervalMs) {
      await this.store.db
        .updateTable('user_tokens')
        .set({ last_used_at: now })
        .where('id', '=', row.token_id)
        .execute();
    }
    return userFromRow(row);
  }

  private async row(ref: string): Promise<UserTable | undefined> {
    const lowered = ref.toLowerCase();
    return this.store.db
      .selectFrom('users')
      .selectAll()
      .where((eb) => eb.or([eb('id', '=', ref), eb('email', '=', lowered)]))
      .executeTakeFirst();
  }
}
