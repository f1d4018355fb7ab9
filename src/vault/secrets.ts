import { randomBytes } from 'node:crypto';
import { existsSync, renameSync, rmSync } from 'node:fs';
import type { Kysely } from 'kysely';
import type { Clock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import type { Database, Store, VaultSecretTable } from '../store/index.js';
import { keyId, keyLength, open, seal, valueAad, wrapAad } from './crypto.js';
import { loadMasterKeyring, type MasterKeyring, nextMasterKeyPath, writeKeyFile } from './master-key.js';

/** What anyone may learn about a secret: everything except its value. */
export interface SecretMetadata {
  readonly name: string;
  readonly kind: string;
  readonly version: number;
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly masterKeyId: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface SetSecretOptions {
  /** What the secret is: api_key (default), oauth_refresh_token, signing_key, ... */
  kind?: string;
  /** Non-secret metadata kept beside the secret (replaced on set, kept on rotate unless given). */
  metadata?: Record<string, unknown>;
  /** Run inside this transaction (or database handle) instead of the store's own. */
  db?: Kysely<Database>;
}

/** Secret names: letters, digits and . _ - : / (so oauth/github/refresh works), up to 128. */
const secretName = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;
const kindName = /^[a-z][a-z0-9_]{0,62}$/;
/** Values are API keys, tokens and keys, not files. */
export const maxSecretBytes = 64 * 1024;

export function validateSecretName(name: string): void {
  if (!secretName.test(name)) {
    throw new CustosError(
      'bad_request',
      `secret name "${name.slice(0, 140)}" must start with a letter or digit and use only letters, digits and . _ - : / (up to 128)`,
    );
  }
}

/**
 * The vault: secrets encrypted at rest with AES-256-GCM, each under its own random data key,
 * the data key wrapped (AES-256-GCM) by the master key. The associated data of both binds
 * the secret's name and version, so a ciphertext moved to another row or replayed from an
 * older version does not open. Values leave only through reveal(), which the inject stage
 * and the OAuth broker call; no API or CLI returns them.
 */
export class Vault {
  private constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private keyring: MasterKeyring,
    private readonly dataDir: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** Open the vault on a store; finishes (or rolls back) a master-key rotation a crash interrupted. */
  static async open(options: {
    store: Store;
    clock: Clock;
    dataDir: string;
    env?: NodeJS.ProcessEnv;
  }): Promise<Vault> {
    const env = options.env ?? process.env;
    const vault = new Vault(
      options.store,
      options.clock,
      loadMasterKeyring(options.dataDir, env),
      options.dataDir,
      env,
    );
    await vault.recoverRotation();
    return vault;
  }

  /** The id of the master key new secrets are wrapped with. */
  get masterKeyId(): string {
    return this.keyring.current.id;
  }

  /** Create a secret, or replace its value (a new version and a new data key). */
  async set(name: string, value: string | Buffer, options: SetSecretOptions = {}): Promise<SecretMetadata> {
    validateSecretName(name);
    const kind = options.kind ?? 'api_key';
    if (!kindName.test(kind))
      throw new CustosError('bad_request', `secret kind "${kind.slice(0, 70)}" must match [a-z][a-z0-9_]*`);
    const plaintext = toBytes(value);
    const run = async (db: Kysely<Database>) => {
      const existing = await db
        .selectFrom('vault_secrets')
        .select(['version', 'created_at'])
        .where('name', '=', name)
        .executeTakeFirst();
      const now = this.clock.now();
      const version = (existing?.version ?? 0) + 1;
      const row: VaultSecretTable = {
        name,
        kind,
        version,
        metadata: JSON.stringify(options.metadata ?? {}),
        ...this.encrypt(name, version, plaintext),
        created_at: existing?.created_at ?? now,
        updated_at: now,
      };
      if (existing === undefined) await db.insertInto('vault_secrets').values(row).execute();
      else await db.updateTable('vault_secrets').set(row).where('name', '=', name).execute();
      return toMetadata(row);
    };
    return options.db ? run(options.db) : this.store.db.transaction().execute(run);
  }

  /**
   * Replace the value of an existing secret: the next reveal returns the new value, and the
   * old one is gone (its data key is overwritten in the same row).
   */
  async rotate(
    name: string,
    value: string | Buffer,
    options: Omit<SetSecretOptions, 'kind'> = {},
  ): Promise<SecretMetadata> {
    validateSecretName(name);
    const plaintext = toBytes(value);
    const run = async (db: Kysely<Database>) => {
      const existing = await db
        .selectFrom('vault_secrets')
        .selectAll()
        .where('name', '=', name)
        .executeTakeFirst();
      if (existing === undefined) throw new CustosError('not_found', `no secret named "${name}"`);
      const version = existing.version + 1;
      const row: VaultSecretTable = {
        ...existing,
        version,
        metadata: options.metadata === undefined ? existing.metadata : JSON.stringify(options.metadata),
        ...this.encrypt(name, version, plaintext),
        updated_at: this.clock.now(),
      };
      await db.updateTable('vault_secrets').set(row).where('name', '=', name).execute();
      return toMetadata(row);
    };
    return options.db ? run(options.db) : this.store.db.transaction().execute(run);
  }

  /** The secret's value, or undefined when there is no such secret. Only for injection. */
  async reveal(name: string, db: Kysely<Database> = this.store.db): Promise<string | undefined> {
    const bytes = await this.revealBytes(name, db);
    return bytes?.toString('utf8');
  }

  async revealBytes(name: string, db: Kysely<Database> = this.store.db): Promise<Buffer | undefined> {
    const row = await db
      .selectFrom('vault_secrets')
      .select(['name', 'version', 'wrapped_key', 'master_key_id', 'ciphertext'])
      .where('name', '=', name)
      .executeTakeFirst();
    if (row === undefined) return undefined;
    return this.decrypt(row);
  }

  async get(name: string, db: Kysely<Database> = this.store.db): Promise<SecretMetadata | undefined> {
    const row = await db.selectFrom('vault_secrets').selectAll().where('name', '=', name).executeTakeFirst();
    return row && toMetadata(row);
  }

  async list(filter: { kind?: string; prefix?: string } = {}): Promise<SecretMetadata[]> {
    let query = this.store.db.selectFrom('vault_secrets').selectAll().orderBy('name');
    if (filter.kind !== undefined) query = query.where('kind', '=', filter.kind);
    const rows = await query.execute();
    const prefix = filter.prefix;
    return (prefix === undefined ? rows : rows.filter((r) => r.name.startsWith(prefix))).map(toMetadata);
  }

  /** Delete a secret and every binding that uses it; false when there was none. */
  async delete(name: string, db?: Kysely<Database>): Promise<boolean> {
    const run = async (trx: Kysely<Database>) => {
      await trx.deleteFrom('vault_bindings').where('secret', '=', name).execute();
      const result = await trx.deleteFrom('vault_secrets').where('name', '=', name).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    };
    return db ? run(db) : this.store.db.transaction().execute(run);
  }

  /**
   * Re-wrap every data key with a new master key in one transaction (values are not
   * re-encrypted: their data keys do not change). With a key file, the new key is first
   * written to master-key.next and replaces master-key only after the commit, so a crash at
   * any point leaves every secret readable. With CUSTOS_MASTER_KEY, pass the new key; the
   * operator then restarts Custos with it.
   */
  async rotateMasterKey(
    newKey?: Buffer,
  ): Promise<{ previousKeyId: string; keyId: string; rewrapped: number }> {
    const key = newKey ?? randomBytes(keyLength);
    if (key.length !== keyLength) throw new CustosError('bad_request', 'a master key is 32 bytes');
    if (this.keyring.source.kind === 'env' && newKey === undefined) {
      throw new CustosError(
        'usage',
        'the master key comes from CUSTOS_MASTER_KEY: give the new key with --new-key-file',
      );
    }
    const previousKeyId = this.keyring.current.id;
    const id = keyId(key);
    const next = nextMasterKeyPath(this.dataDir);
    if (this.keyring.source.kind === 'file') writeKeyFile(next, key);
    const keys = new Map(this.keyring.keys);
    keys.set(id, key);
    const rewrapped = await this.store.db.transaction().execute(async (trx) => {
      const rows = await trx
        .selectFrom('vault_secrets')
        .select(['name', 'version', 'wrapped_key', 'master_key_id'])
        .execute();
      for (const row of rows) {
        const dataKey = this.unwrap(row, keys);
        const wrapped = seal(key, dataKey, wrapAad(row.name, row.version)).toString('base64');
        dataKey.fill(0);
        await trx
          .updateTable('vault_secrets')
          .set({ wrapped_key: wrapped, master_key_id: id })
          .where('name', '=', row.name)
          .where('version', '=', row.version)
          .execute();
      }
      return rows.length;
    });
    if (this.keyring.source.kind === 'file') renameSync(next, this.keyring.source.path);
    this.keyring = { current: { id, key }, keys: new Map([[id, key]]), source: this.keyring.source };
    return { previousKeyId, keyId: id, rewrapped };
  }

  /** After a crash during rotateMasterKey: keep whichever key the rows are wrapped with. */
  private async recoverRotation(): Promise<void> {
    if (this.keyring.source.kind !== 'file') return;
    const next = nextMasterKeyPath(this.dataDir);
    if (!existsSync(next)) return;
    const pendingId = [...this.keyring.keys.keys()].find((id) => id !== this.keyring.current.id);
    const rows = await this.store.db
      .selectFrom('vault_secrets')
      .select('master_key_id')
      .groupBy('master_key_id')
      .execute();
    const committed =
      pendingId !== undefined && rows.length > 0 && rows.every((r) => r.master_key_id === pendingId);
    if (committed) {
      renameSync(next, this.keyring.source.path);
      this.keyring = loadMasterKeyring(this.dataDir, this.env);
    } else if (!rows.some((r) => r.master_key_id === pendingId)) {
      rmSync(next, { force: true });
      this.keyring = loadMasterKeyring(this.dataDir, this.env);
    }
  }

  private encrypt(name: string, version: number, plaintext: Buffer) {
    const dataKey = randomBytes(keyLength);
    const ciphertext = seal(dataKey, plaintext, valueAad(name, version)).toString('base64');
    const wrapped = seal(this.keyring.current.key, dataKey, wrapAad(name, version)).toString('base64');
    dataKey.fill(0);
    return { wrapped_key: wrapped, master_key_id: this.keyring.current.id, ciphertext };
  }

  private decrypt(
    row: Pick<VaultSecretTable, 'name' | 'version' | 'wrapped_key' | 'master_key_id' | 'ciphertext'>,
  ): Buffer {
    if (!this.keyring.keys.has(row.master_key_id) && this.keyring.source.kind === 'file') {
      // Another process (custos secret rotate-master-key) rotated the key file under us.
      this.keyring = loadMasterKeyring(this.dataDir, this.env);
    }
    const dataKey = this.unwrap(row, this.keyring.keys);
    try {
      return open(dataKey, Buffer.from(row.ciphertext, 'base64'), valueAad(row.name, row.version));
    } catch (error) {
      throw new CustosError('vault_locked', `secret "${row.name}" failed its integrity check`, {
        cause: error,
      });
    } finally {
      dataKey.fill(0);
    }
  }

  private unwrap(
    row: Pick<VaultSecretTable, 'name' | 'version' | 'wrapped_key' | 'master_key_id'>,
    keys: ReadonlyMap<string, Buffer>,
  ): Buffer {
    const master = keys.get(row.master_key_id);
    if (master === undefined) {
      throw new CustosError(
        'vault_locked',
        `secret "${row.name}" is wrapped by master key ${row.master_key_id}, which this process does not hold`,
        {
          detail: {
            fix: 'start Custos with the master key the vault was written with (CUSTOS_MASTER_KEY or <data>/master-key)',
          },
        },
      );
    }
    try {
      return open(master, Buffer.from(row.wrapped_key, 'base64'), wrapAad(row.name, row.version));
    } catch (error) {
      throw new CustosError(
        'vault_locked',
        `the data key of secret "${row.name}" failed its integrity check`,
        { cause: error },
      );
    }
  }
}

function toBytes(value: string | Buffer): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  if (bytes.length === 0) throw new CustosError('bad_request', 'a secret value is empty');
  if (bytes.length > maxSecretBytes)
    throw new CustosError('bad_request', `a secret value is larger than ${maxSecretBytes} bytes`);
  return bytes;
}

function toMetadata(row: VaultSecretTable): SecretMetadata {
  return {
    name: row.name,
    kind: row.kind,
    version: Number(row.version),
    metadata: JSON.parse(row.metadata) as Record<string, unknown>,
    masterKeyId: row.master_key_id,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}
