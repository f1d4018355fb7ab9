import { randomBytes } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import * as oidc from 'openid-client';
import type { AuditEventInput } from '../../audit/index.js';
import type { Clock } from '../../core/clock.js';
import type { OAuthConfig, OAuthCredentialConfig } from '../../core/config.js';
import { CustosError } from '../../core/errors.js';
import type { Database, OAuthCredentialTable, Store } from '../../store/index.js';
import type { Vault } from '../secrets.js';
import { openidProvider, type ProviderClient, type TokenGrant } from './provider.js';
import { sealVerifier, stateHash, unsealVerifier } from './seal.js';

/**
 * What the broker needs of the vault (src/vault/secrets.ts): secrets encrypted at rest, written
 * inside the broker's own transaction so tokens and the row that says which generation they are
 * change together.
 */
export type BrokerSecrets = Pick<Vault, 'set' | 'reveal'>;

/** The vault secrets holding a credential's access and refresh tokens. */
export function tokenSecretNames(credential: string): { access: string; refresh: string } {
  return { access: `oauth/${credential}/access`, refresh: `oauth/${credential}/refresh` };
}

/** A credential's tokens, as read from the vault. */
interface StoredTokens {
  access_token: string;
  refresh_token?: string;
  token_type: string;
}

/** A credential as the admin API and the CLI show it: never a token. */
export interface OAuthCredentialStatus {
  name: string;
  grant: 'authorization_code' | 'client_credentials';
  status: 'disconnected' | 'connected' | 'reconnect_required';
  scope: string | null;
  accessExpiresAt: number | null;
  hasRefreshToken: boolean;
  connectedAt: number | null;
  connectedBy: string | null;
  refreshedAt: number | null;
  refreshCount: number;
  lastError: string | null;
}

export interface BrokerDeps {
  store: Store;
  clock: Clock;
  secrets: BrokerSecrets;
  config: OAuthConfig;
  /** Custos's public base URL: redirects come back to <baseUrl>/oauth/callback/<name>. */
  baseUrl: string;
  /** Records connect and disconnect (admin events); absent, nothing is recorded. */
  audit?: { record(event: AuditEventInput): Promise<unknown> };
  /** Replaces openid-client for a credential (tests of failure paths only). */
  providerFor?: (name: string, settings: OAuthCredentialConfig) => ProviderClient;
  /** How often a process waiting on another's refresh looks at the store (ms). */
  pollMs?: number;
}

/** What connecting starts: a browser redirect, or (client credentials) a connection made at once. */
export type ConnectStart =
  | { kind: 'redirect'; url: string; redirectUri: string; expiresAt: number }
  | { kind: 'connected'; credential: OAuthCredentialStatus };

interface CachedToken {
  accessToken: string;
  expiresAt: number | null;
  generation: number;
  /** When this process last checked the store's generation (another process may have reconnected or disconnected). */
  checkedAt: number;
}

/** How long a process trusts its cached token without looking at the store's row (ms). */
const recheckMs = 2000;

/**
 * The OAuth broker: connects upstream OAuth 2 credentials once (authorization code with PKCE,
 * or client credentials), keeps their tokens in the vault, and hands out a fresh access token
 * at forward time.
 *
 * Exactly one refresh per credential is in flight, whatever the concurrency: within a process
 * concurrent callers share one promise (single flight); across processes sharing the store, a
 * refresher must first take the credential's lease, a conditional UPDATE on the row that only
 * succeeds when no live lease exists and the token generation is still the one it saw. Others
 * wait for the generation to move and then read the new tokens from the vault.
 */
export class OAuthBroker {
  private readonly cache = new Map<string, CachedToken>();
  private readonly flights = new Map<string, Promise<CachedToken>>();
  private readonly providers = new Map<string, ProviderClient>();
  /** Identifies this broker's leases (one per process, random). */
  readonly holder = `brk_${randomBytes(9).toString('base64url')}`;
  private readonly leaseMs: number;
  private readonly pollMs: number;

  constructor(private readonly deps: BrokerDeps) {
    // A lease outlives the longest token request, so it never lapses under a live refresher.
    this.leaseMs = deps.config.timeoutSeconds * 2000 + 5000;
    this.pollMs = deps.pollMs ?? 50;
  }

  /** The configured credentials by name. */
  names(): string[] {
    return Object.keys(this.deps.config.credentials).sort();
  }

  private settings(name: string): OAuthCredentialConfig {
    const settings = this.deps.config.credentials[name];
    if (settings === undefined) {
      throw new CustosError('not_found', `no OAuth credential ${name} in custos.yaml (oauth.credentials)`, {
        detail: { credential: name },
      });
    }
    return settings;
  }

  private provider(name: string): ProviderClient {
    let provider = this.providers.get(name);
    if (provider === undefined) {
      const settings = this.settings(name);
      provider =
        this.deps.providerFor?.(name, settings) ??
        openidProvider(name, settings, {
          timeoutSeconds: this.deps.config.timeoutSeconds,
          clientSecret: () =>
            settings.clientSecret === undefined
              ? Promise.resolve(undefined)
              : this.deps.secrets.reveal(settings.clientSecret),
        });
      this.providers.set(name, provider);
    }
    return provider;
  }

  private skewMs(name: string): number {
    return (this.settings(name).refreshSkewSeconds ?? this.deps.config.refreshSkewSeconds) * 1000;
  }

  private fresh(name: string, expiresAt: number | null): boolean {
    return expiresAt === null || expiresAt - this.skewMs(name) > this.deps.clock.now();
  }

  private row(name: string): Promise<OAuthCredentialTable | undefined> {
    return this.deps.store.db
      .selectFrom('oauth_credentials')
      .selectAll()
      .where('name', '=', name)
      .executeTakeFirst();
  }

  /** Every configured credential with its state (no tokens). */
  async list(): Promise<OAuthCredentialStatus[]> {
    const rows = await this.deps.store.db.selectFrom('oauth_credentials').selectAll().execute();
    const byName = new Map(rows.map((r) => [r.name, r]));
    return this.names().map((name) => statusOf(name, this.settings(name), byName.get(name)));
  }

  async get(name: string): Promise<OAuthCredentialStatus> {
    return statusOf(name, this.settings(name), await this.row(name));
  }

  /** The redirect URI registered with the provider for a credential. */
  redirectUri(name: string): string {
    return `${this.deps.baseUrl.replace(/\/$/, '')}/oauth/callback/${encodeURIComponent(name)}`;
  }

  /**
   * Connect a credential. Authorization code: the URL a human opens to consent; the connection
   * stays open for oauth.connectTtlSeconds and completes once, at the callback. Client
   * credentials: a token is obtained at once (which checks the client secret).
   */
  async connect(name: string, actor: string): Promise<ConnectStart> {
    const settings = this.settings(name);
    if (settings.grant === 'client_credentials') {
      const now = this.deps.clock.now();
      await this.deps.store.db
        .insertInto('oauth_credentials')
        .values(emptyRow(name, 'client_credentials', 'connected', now))
        .onConflict((oc) => oc.column('name').doNothing())
        .execute();
      await this.deps.store.db
        .updateTable('oauth_credentials')
        .set({
          status: 'connected',
          access_expires_at: 0,
          connected_at: now,
          connected_by: actor,
          updated_at: now,
        })
        .where('name', '=', name)
        .execute();
      this.cache.delete(name);
      await this.accessToken(name);
      await this.record('oauth/connect', name, actor, [`connected by ${actor}`, 'client credentials']);
      return { kind: 'connected', credential: await this.get(name) };
    }
    const now = this.deps.clock.now();
    const state = oidc.randomState();
    const verifier = oidc.randomPKCECodeVerifier();
    const redirectUri = this.redirectUri(name);
    const url = await this.provider(name).authorizationUrl({
      redirectUri,
      state,
      codeChallenge: await oidc.calculatePKCECodeChallenge(verifier),
    });
    const expiresAt = now + this.deps.config.connectTtlSeconds * 1000;
    await this.deps.store.db.deleteFrom('oauth_connects').where('expires_at', '<=', now).execute();
    await this.deps.store.db
      .insertInto('oauth_connects')
      .values({
        state_hash: stateHash(state),
        credential: name,
        sealed_verifier: sealVerifier(state, verifier),
        redirect_uri: redirectUri,
        requested_by: actor,
        created_at: now,
        expires_at: expiresAt,
      })
      .execute();
    return { kind: 'redirect', url: url.href, redirectUri, expiresAt };
  }

  /**
   * Finish a connection from the provider's redirect (`callback` is the full URL Custos was
   * called at): check and spend the state, exchange the code with the PKCE verifier, and store
   * the tokens in the vault.
   */
  async finishConnect(name: string, callback: URL): Promise<OAuthCredentialStatus> {
    this.settings(name);
    const state = callback.searchParams.get('state');
    if (state === null || state === '') {
      throw new CustosError(
        'oauth_connect_invalid',
        'the redirect carries no state; start the connection again',
      );
    }
    const hash = stateHash(state);
    const open = await this.deps.store.db
      .selectFrom('oauth_connects')
      .selectAll()
      .where('state_hash', '=', hash)
      .where('credential', '=', name)
      .executeTakeFirst();
    // Spent on first use, whatever happens next: a replayed redirect finds nothing.
    const spent = open
      ? await this.deps.store.db
          .deleteFrom('oauth_connects')
          .where('state_hash', '=', hash)
          .executeTakeFirst()
      : undefined;
    if (open === undefined || Number(spent?.numDeletedRows ?? 0) !== 1) {
      throw new CustosError(
        'oauth_connect_invalid',
        `no open connection of ${name} has this state; start again`,
        {
          detail: { credential: name },
        },
      );
    }
    if (open.expires_at <= this.deps.clock.now()) {
      throw new CustosError('oauth_connect_invalid', `the connection of ${name} expired; start again`, {
        detail: { credential: name },
      });
    }
    const refused = callback.searchParams.get('error');
    if (refused !== null) {
      throw new CustosError(
        'oauth_connect_invalid',
        `the provider refused the connection of ${name} (${refused})`,
        {
          detail: { credential: name, providerError: refused },
        },
      );
    }
    const verifier = unsealVerifier(state, open.sealed_verifier);
    const grant = await this.provider(name).exchangeCode(callback, {
      redirectUri: open.redirect_uri,
      state,
      verifier,
    });
    await this.storeGrant(name, grant, undefined, { connectedBy: open.requested_by });
    await this.record('oauth/connect', name, open.requested_by, [
      `connected by ${open.requested_by}`,
      `scope ${grant.scope ?? this.settings(name).scopes.join(' ')}`,
      grant.refreshToken === undefined ? 'no refresh token issued' : 'refresh token stored',
    ]);
    return this.get(name);
  }

  /** Forget a credential's tokens (the vault secret is deleted); it must be connected again. */
  async disconnect(name: string, actor: string): Promise<OAuthCredentialStatus> {
    this.settings(name);
    const now = this.deps.clock.now();
    const secrets = tokenSecretNames(name);
    await this.deps.store.db.transaction().execute(async (trx) => {
      // Deleted here rather than through Vault.delete, which also drops bindings naming the secret.
      await trx.deleteFrom('vault_secrets').where('name', 'in', [secrets.access, secrets.refresh]).execute();
      await trx
        .updateTable('oauth_credentials')
        .set({
          status: 'disconnected',
          generation: sql<number>`generation + 1`,
          scope: null,
          access_expires_at: null,
          has_refresh_token: 0,
          lease_holder: null,
          lease_until: null,
          connected_at: null,
          connected_by: null,
          last_error: null,
          updated_at: now,
        })
        .where('name', '=', name)
        .execute();
    });
    this.cache.delete(name);
    await this.record('oauth/disconnect', name, actor, [`disconnected by ${actor}`]);
    return this.get(name);
  }

  /**
   * A fresh access token for the credential, refreshed (or, for client credentials, obtained)
   * when it is within the refresh skew of its expiry. Throws `oauth_not_connected` for a
   * credential nobody connected (or whose refresh token the provider refused) and
   * `oauth_refresh_failed` when the provider cannot be reached or refuses.
   */
  async accessToken(name: string): Promise<string> {
    const cached = this.cache.get(name);
    if (
      cached !== undefined &&
      this.fresh(name, cached.expiresAt) &&
      this.deps.clock.now() - cached.checkedAt < recheckMs
    ) {
      return cached.accessToken;
    }
    let flight = this.flights.get(name);
    if (flight === undefined) {
      flight = this.renew(name).finally(() => this.flights.delete(name));
      this.flights.set(name, flight);
    }
    return (await flight).accessToken;
  }

  /**
   * An upstream refused `accessToken` as invalid or expired (401): never use it again. The next
   * call refreshes, in this process and in any other sharing the store.
   */
  async invalidate(name: string, accessToken: string): Promise<void> {
    const cached = this.cache.get(name);
    if (cached === undefined || cached.accessToken !== accessToken) return;
    this.cache.delete(name);
    await this.deps.store.db
      .updateTable('oauth_credentials')
      .set({ access_expires_at: 0 })
      .where('name', '=', name)
      .where('generation', '=', cached.generation)
      .execute();
  }

  /** `invalidate` for whichever credential holds this access token (the gateway knows only the header). */
  invalidateToken(accessToken: string): void {
    for (const [name, cached] of this.cache) {
      if (cached.accessToken === accessToken) {
        this.invalidate(name, accessToken).catch(() => {
          // The row keeps its expiry; the token is out of this process's cache either way.
        });
      }
    }
  }

  private async renew(name: string): Promise<CachedToken> {
    const settings = this.settings(name);
    const deadline = this.deps.clock.now() + this.leaseMs + 5000;
    let waitMs = this.pollMs;
    for (;;) {
      let row = await this.row(name);
      if (row === undefined && settings.grant === 'client_credentials') {
        await this.deps.store.db
          .insertInto('oauth_credentials')
          .values(emptyRow(name, 'client_credentials', 'connected', this.deps.clock.now()))
          .onConflict((oc) => oc.column('name').doNothing())
          .execute();
        row = await this.row(name);
      }
      if (row === undefined || row.status !== 'connected') {
        this.cache.delete(name);
        throw new CustosError(
          'oauth_not_connected',
          row?.status === 'reconnect_required'
            ? `the OAuth credential ${name} must be connected again (the provider refused its refresh token)`
            : `the OAuth credential ${name} is not connected`,
          { detail: { credential: name, fix: `custos oauth connect ${name}` } },
        );
      }
      const now = this.deps.clock.now();
      if (row.generation > 0 && this.fresh(name, row.access_expires_at)) {
        const cached = this.cache.get(name);
        if (cached?.generation === row.generation) {
          cached.checkedAt = now;
          return cached;
        }
        const stored = await this.readTokens(name);
        if (stored !== undefined) return this.remember(name, stored.access_token, row);
      }
      // Stale: take the lease, or wait for whoever holds it.
      const taken = await this.deps.store.db
        .updateTable('oauth_credentials')
        .set({ lease_holder: this.holder, lease_until: now + this.leaseMs })
        .where('name', '=', name)
        .where('generation', '=', row.generation)
        .where('status', '=', 'connected')
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', now)]))
        .executeTakeFirst();
      if (Number(taken.numUpdatedRows) === 1) return this.refreshHoldingLease(name, settings, row);
      if (this.deps.clock.now() > deadline) {
        throw new CustosError('oauth_refresh_failed', `timed out waiting for the refresh of ${name}`, {
          detail: { credential: name },
        });
      }
      await new Promise((resolve) => setTimeout(resolve, waitMs));
      waitMs = Math.min(waitMs * 2, 500);
    }
  }

  private async refreshHoldingLease(
    name: string,
    settings: OAuthCredentialConfig,
    row: OAuthCredentialTable,
  ): Promise<CachedToken> {
    let grant: TokenGrant;
    let previous: StoredTokens | undefined;
    try {
      if (settings.grant === 'client_credentials') {
        grant = await this.provider(name).clientCredentials();
      } else {
        previous = await this.readTokens(name);
        if (previous?.refresh_token === undefined) {
          await this.markReconnect(name, 'no_refresh_token');
          throw new CustosError(
            'oauth_not_connected',
            `the OAuth credential ${name} has no refresh token; connect it again`,
            { detail: { credential: name, fix: `custos oauth connect ${name}` } },
          );
        }
        grant = await this.provider(name).refresh(previous.refresh_token);
      }
    } catch (error) {
      const code =
        error instanceof CustosError ? (error.detail?.providerError as string | undefined) : undefined;
      if (code === 'invalid_grant' && settings.grant === 'authorization_code') {
        // The refresh token is dead (revoked, expired, or reused): only a human can fix that.
        await this.markReconnect(name, 'invalid_grant');
        throw new CustosError(
          'oauth_not_connected',
          `the provider refused the refresh token of ${name}; connect it again`,
          { detail: { credential: name, fix: `custos oauth connect ${name}` }, cause: error },
        );
      }
      await this.releaseLease(name, error instanceof CustosError ? error.code : 'internal');
      throw error;
    }
    const stored = await this.storeGrant(name, grant, previous, { lease: true, generation: row.generation });
    return stored;
  }

  private async markReconnect(name: string, reason: string): Promise<void> {
    await this.deps.store.db
      .updateTable('oauth_credentials')
      .set({
        status: 'reconnect_required',
        lease_holder: null,
        lease_until: null,
        last_error: reason,
        updated_at: this.deps.clock.now(),
      })
      .where('name', '=', name)
      .where('lease_holder', '=', this.holder)
      .execute();
    this.cache.delete(name);
  }

  private async releaseLease(name: string, reason: string): Promise<void> {
    await this.deps.store.db
      .updateTable('oauth_credentials')
      .set({ lease_holder: null, lease_until: null, last_error: reason, updated_at: this.deps.clock.now() })
      .where('name', '=', name)
      .where('lease_holder', '=', this.holder)
      .execute();
  }

  /**
   * Write a new token set: the vault secret first, then the row (generation + 1), so a reader
   * that sees the new generation always finds the new tokens. A refresh that did not rotate the
   * refresh token keeps the previous one (RFC 6749 section 6).
   */
  private async storeGrant(
    name: string,
    grant: TokenGrant,
    previous: StoredTokens | undefined,
    how: { connectedBy?: string; lease?: boolean; generation?: number },
  ): Promise<CachedToken> {
    const settings = this.settings(name);
    const now = this.deps.clock.now();
    const refreshToken = grant.refreshToken ?? previous?.refresh_token;
    const expiresAt = grant.expiresIn === undefined ? null : now + grant.expiresIn * 1000;
    const secrets = tokenSecretNames(name);
    const common = {
      status: 'connected' as const,
      scope: grant.scope ?? (settings.scopes.join(' ') || null),
      access_expires_at: expiresAt,
      has_refresh_token: refreshToken === undefined ? 0 : 1,
      lease_holder: null,
      lease_until: null,
      last_error: null,
      updated_at: now,
    };
    const metadata = { credential: name };
    const generation = await this.deps.store.db.transaction().execute(async (trx: Kysely<Database>) => {
      await this.deps.secrets.set(secrets.access, grant.accessToken, {
        db: trx,
        kind: 'oauth_access_token',
        metadata: { ...metadata, expiresAt },
      });
      if (grant.refreshToken !== undefined) {
        await this.deps.secrets.set(secrets.refresh, grant.refreshToken, {
          db: trx,
          kind: 'oauth_refresh_token',
          metadata,
        });
      } else if (refreshToken === undefined) {
        await trx.deleteFrom('vault_secrets').where('name', '=', secrets.refresh).execute();
      }
      if (how.lease) {
        // Fenced by the lease: a refresher that lost it (a lease that lapsed) writes nothing.
        const updated = await trx
          .updateTable('oauth_credentials')
          .set({
            ...common,
            generation: sql<number>`generation + 1`,
            refreshed_at: now,
            refresh_count: sql<number>`refresh_count + 1`,
          })
          .where('name', '=', name)
          .where('lease_holder', '=', this.holder)
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) !== 1) {
          throw new CustosError('oauth_refresh_failed', `the refresh lease of ${name} was lost`, {
            detail: { credential: name },
          });
        }
        return (how.generation ?? 0) + 1;
      }
      const existing = await trx
        .selectFrom('oauth_credentials')
        .select('generation')
        .where('name', '=', name)
        .executeTakeFirst();
      const fields = { ...common, connected_at: now, connected_by: how.connectedBy ?? null };
      if (existing === undefined) {
        await trx
          .insertInto('oauth_credentials')
          .values({ ...emptyRow(name, settings.grant, 'connected', now), ...fields, generation: 1 })
          .execute();
        return 1;
      }
      await trx
        .updateTable('oauth_credentials')
        .set({ ...fields, generation: existing.generation + 1 })
        .where('name', '=', name)
        .execute();
      return existing.generation + 1;
    });
    return this.remember(name, grant.accessToken, { generation, access_expires_at: expiresAt });
  }

  private remember(
    name: string,
    accessToken: string,
    row: Pick<OAuthCredentialTable, 'generation' | 'access_expires_at'>,
  ): CachedToken {
    const cached = {
      accessToken,
      expiresAt: row.access_expires_at,
      generation: row.generation,
      checkedAt: this.deps.clock.now(),
    };
    this.cache.set(name, cached);
    return cached;
  }

  private async readTokens(name: string): Promise<StoredTokens | undefined> {
    const secrets = tokenSecretNames(name);
    const access = await this.deps.secrets.reveal(secrets.access);
    if (access === undefined) return undefined;
    const refresh = await this.deps.secrets.reveal(secrets.refresh);
    return {
      access_token: access,
      ...(refresh === undefined ? {} : { refresh_token: refresh }),
      token_type: 'Bearer',
    };
  }

  private async record(method: string, name: string, actor: string, reasons: string[]): Promise<void> {
    await this.deps.audit?.record({
      time: this.deps.clock.now(),
      agentId: null,
      owner: actor,
      taskId: null,
      method,
      server: null,
      target: name,
      argsHash: null,
      effect: 'allow',
      policyIds: [],
      reasons,
      outcome: 'executed',
      errorCode: null,
      latencyUs: 0,
      traceId: null,
    });
  }
}

function emptyRow(
  name: string,
  grant: OAuthCredentialTable['grant_type'],
  status: OAuthCredentialTable['status'],
  now: number,
): OAuthCredentialTable {
  return {
    name,
    grant_type: grant,
    status,
    generation: 0,
    scope: null,
    access_expires_at: null,
    has_refresh_token: 0,
    lease_holder: null,
    lease_until: null,
    connected_at: null,
    connected_by: null,
    refreshed_at: null,
    refresh_count: 0,
    last_error: null,
    updated_at: now,
  };
}

function statusOf(
  name: string,
  settings: OAuthCredentialConfig,
  row: OAuthCredentialTable | undefined,
): OAuthCredentialStatus {
  return {
    name,
    grant: settings.grant,
    status: row?.status ?? 'disconnected',
    scope: row?.scope ?? null,
    accessExpiresAt: row?.access_expires_at ?? null,
    hasRefreshToken: row?.has_refresh_token === 1,
    connectedAt: row?.connected_at ?? null,
    connectedBy: row?.connected_by ?? null,
    refreshedAt: row?.refreshed_at ?? null,
    refreshCount: row?.refresh_count ?? 0,
    lastError: row?.last_error ?? null,
  };
}
