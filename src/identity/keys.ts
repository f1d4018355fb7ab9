import {
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
} from 'jose';
import type { Clock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import type { Store } from '../store/index.js';

/** The algorithm of Custos's own token signing keys. */
export const signingAlgorithm = 'EdDSA';

export interface SigningKey {
  /** RFC 7638 JWK thumbprint (SHA-256) of the public key. */
  readonly kid: string;
  readonly publicJwk: JWK;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  readonly createdAt: number;
}

/** A JSON Web Key Set (RFC 7517 §5), served at /oauth/jwks. */
export interface JwksDocument {
  keys: JWK[];
}

/**
 * Where private signing keys live when the vault is present (the vault's Vault fits): the
 * signing_keys row then holds only a reference, `vault:<secret name>`.
 */
export interface PrivateKeyStore {
  set(name: string, value: string, options: { kind: string }): Promise<unknown>;
  reveal(name: string): Promise<string | undefined>;
}

const vaultRef = 'vault:';

/** At most one reload per this many milliseconds when a token names an unknown kid. */
const unknownKidReloadIntervalMs = 10_000;

/**
 * Custos's token signing keys, kept in the signing_keys table. An Ed25519 pair is created
 * the first time Custos starts; every process then signs with the oldest unretired key,
 * so concurrent first starts converge on one key and the JWKS lists all of them.
 *
 * With a PrivateKeyStore (the vault), the private JWK is encrypted at rest like every other
 * secret and the row keeps a reference; rows written before the vault existed (plain JSON)
 * are moved into it on load. Without one, the JWK is stored as plain JSON.
 */
export class SigningKeys {
  private keys: SigningKey[] = [];
  private lastReload = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly secrets?: PrivateKeyStore,
  ) {}

  /** Load the keys, creating the first pair when there is none. */
  async load(): Promise<void> {
    await this.moveIntoVault();
    let rows = await this.activeRows();
    if (rows.length === 0) {
      await this.create();
      rows = await this.activeRows();
    }
    this.keys = await Promise.all(rows.map((row) => toSigningKey(row, this.secrets)));
    this.lastReload = this.clock.now();
  }

  /**
   * Move plain-JSON private keys into the vault: the vault first, then the row, so a crash
   * in between leaves the plain row, moved again (same name, overwritten) on the next load.
   */
  private async moveIntoVault(): Promise<void> {
    const secrets = this.secrets;
    if (secrets === undefined) return;
    const rows = await this.store.db
      .selectFrom('signing_keys')
      .select(['kid', 'private_jwk'])
      .where('private_jwk', 'not like', `${vaultRef}%`)
      .execute();
    for (const row of rows) {
      const name = secretNameOf(row.kid);
      await secrets.set(name, row.private_jwk, { kind: 'signing_key' });
      await this.store.db
        .updateTable('signing_keys')
        .set({ private_jwk: `${vaultRef}${name}` })
        .where('kid', '=', row.kid)
        .execute();
    }
  }

  /** The key new tokens are signed with. */
  current(): SigningKey {
    const key = this.keys[0];
    if (key === undefined) throw new CustosError('internal', 'signing keys are not loaded');
    return key;
  }

  /** The verification key for a kid; reloads (rate limited) when another process added a key. */
  async find(kid: string): Promise<SigningKey | undefined> {
    const known = this.keys.find((key) => key.kid === kid);
    if (known !== undefined) return known;
    if (this.clock.now() - this.lastReload < unknownKidReloadIntervalMs) return undefined;
    const rows = await this.activeRows();
    this.keys = await Promise.all(rows.map((row) => toSigningKey(row, this.secrets)));
    this.lastReload = this.clock.now();
    return this.keys.find((key) => key.kid === kid);
  }

  jwks(): JwksDocument {
    return { keys: this.keys.map((key) => ({ ...key.publicJwk })) };
  }

  private activeRows() {
    return this.store.db
      .selectFrom('signing_keys')
      .selectAll()
      .where('retired_at', 'is', null)
      .orderBy('created_at')
      .orderBy('kid')
      .execute();
  }

  private async create(): Promise<void> {
    const pair = await generateKeyPair('Ed25519', { extractable: true });
    const publicJwk = await exportJWK(pair.publicKey);
    const privateJwk = await exportJWK(pair.privateKey);
    const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
    let stored = JSON.stringify(privateJwk);
    if (this.secrets !== undefined) {
      await this.secrets.set(secretNameOf(kid), stored, { kind: 'signing_key' });
      stored = `${vaultRef}${secretNameOf(kid)}`;
    }
    await this.store.db
      .insertInto('signing_keys')
      .values({
        kid,
        algorithm: signingAlgorithm,
        public_jwk: JSON.stringify({ ...publicJwk, kid, alg: signingAlgorithm, use: 'sig' }),
        private_jwk: stored,
        created_at: this.clock.now(),
        retired_at: null,
      })
      .execute();
  }
}

function secretNameOf(kid: string): string {
  return `custos/signing-key/${kid}`;
}

async function toSigningKey(
  row: {
    kid: string;
    public_jwk: string;
    private_jwk: string;
    created_at: number;
  },
  secrets: PrivateKeyStore | undefined,
): Promise<SigningKey> {
  const publicJwk = JSON.parse(row.public_jwk) as JWK;
  let privateText = row.private_jwk;
  if (privateText.startsWith(vaultRef)) {
    const revealed = await secrets?.reveal(privateText.slice(vaultRef.length));
    if (revealed === undefined) {
      throw new CustosError('vault_locked', `the private key of signing key ${row.kid} is not in the vault`);
    }
    privateText = revealed;
  }
  const privateKey = await importJWK(JSON.parse(privateText) as JWK, signingAlgorithm, {
    extractable: false,
  });
  const publicKey = await importJWK(publicJwk, signingAlgorithm);
  return {
    kid: row.kid,
    publicJwk,
    privateKey: privateKey as CryptoKey,
    publicKey: publicKey as CryptoKey,
    createdAt: Number(row.created_at),
  };
}
