import { constants, createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import { ReplayCache } from './replay.js';

/**
 * JWS algorithms accepted for DPoP proofs (RFC 9449 §4.3 item 5: asymmetric only, never
 * `none` or a MAC). Advertised as dpop_signing_alg_values_supported.
 */
export const dpopAlgorithms: readonly string[] = ['EdDSA', 'Ed25519', 'ES256', 'ES384', 'PS256', 'RS256'];

/** RFC 9449 §4.2 media type of a proof. */
const proofType = 'dpop+jwt';
const maxProofLength = 8192;
const privateMembers = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/** What a proof must match: the request it came with and, at the resource, the token it presents. */
export interface DpopRequest {
  /** HTTP method (htm). */
  readonly method: string;
  /** The request's URL as Custos publishes it, without query or fragment (htu). */
  readonly url: string;
  /** The access token presented with the proof; its hash must be the proof's ath (RFC 9449 §4.3 item 12). */
  readonly accessToken?: string;
}

/** A verified proof: the thumbprint of its key (RFC 7638), to compare with or bind as cnf.jkt. */
export interface VerifiedProof {
  readonly jkt: string;
}

export interface DpopVerifierOptions {
  clock: Clock;
  /** How old a proof may be (now minus iat); 60 seconds by default. */
  maxAgeSeconds?: number;
  /** How far a proof's iat may lie in the future (clock skew); 5 seconds by default. */
  futureSkewSeconds?: number;
  /** Proof jtis remembered for replay detection; 200,000 by default. */
  replayCacheSize?: number;
}

/** invalid_dpop_proof with a terse wire message and the reason in `cause`. */
export function invalidProof(reason: string, cause?: unknown): CustosError {
  return new CustosError('invalid_dpop_proof', 'the DPoP proof is not valid', {
    cause: new Error(reason, cause === undefined ? undefined : { cause }),
  });
}

/** RFC 9449 §4.1 ath: base64url SHA-256 of the access token's ASCII bytes. */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token, 'ascii').digest('base64url');
}

/** The RFC 7638 thumbprint input of a public JWK (required members, lexicographic order), and the algorithms its key type allows. */
function thumbprintInput(jwk: Record<string, unknown>): { input: string; algorithms: readonly string[] } {
  const str = (name: string): string => {
    const value = jwk[name];
    if (typeof value !== 'string' || value === '') throw invalidProof(`jwk lacks "${name}"`);
    return value;
  };
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') {
    return {
      input: JSON.stringify({ crv: 'Ed25519', kty: 'OKP', x: str('x') }),
      algorithms: ['EdDSA', 'Ed25519'],
    };
  }
  if (jwk.kty === 'EC' && (jwk.crv === 'P-256' || jwk.crv === 'P-384')) {
    return {
      input: JSON.stringify({ crv: jwk.crv, kty: 'EC', x: str('x'), y: str('y') }),
      algorithms: [jwk.crv === 'P-256' ? 'ES256' : 'ES384'],
    };
  }
  if (jwk.kty === 'RSA') {
    return {
      input: JSON.stringify({ e: str('e'), kty: 'RSA', n: str('n') }),
      algorithms: ['PS256', 'RS256'],
    };
  }
  throw invalidProof('unsupported jwk key type');
}

/** RFC 7638 JWK SHA-256 thumbprint, base64url: the value of cnf.jkt (RFC 9449 §6.1). */
export function jwkThumbprint(jwk: Record<string, unknown>): string {
  return createHash('sha256').update(thumbprintInput(jwk).input).digest('base64url');
}

/** The hash of a JWS algorithm for crypto.verify (null: EdDSA hashes internally). */
function digestOf(alg: string): string | null {
  return alg === 'ES384' ? 'sha384' : alg === 'EdDSA' || alg === 'Ed25519' ? null : 'sha256';
}

/**
 * Key and options for crypto.verify by JWS algorithm (RFC 7518 §3): ECDSA signatures are
 * R || S, PS256 is PSS with a salt as long as the hash. Verified with node:crypto directly:
 * jose goes through WebCrypto, which cost several times the signature check itself per call.
 */
function verifyKey(alg: string, key: KeyObject) {
  if (alg === 'ES256' || alg === 'ES384') return { key, dsaEncoding: 'ieee-p1363' as const };
  if (alg === 'PS256') return { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
  return key;
}

/** The URL without query and fragment, scheme and host normalised (RFC 9449 §4.3 item 9). */
function targetUri(value: string): string | undefined {
  try {
    const url = new URL(value);
    return `${url.protocol}//${url.host}${url.pathname}`;
  } catch {
    return undefined;
  }
}

/**
 * Verifies DPoP proofs (RFC 9449 §4.3) at the token endpoint and at the gateway: one DPoP
 * header, typ dpop+jwt, an allowed asymmetric alg, a public jwk whose key signed the proof,
 * htm and htu of this request, iat within the window, ath of the presented token, and a jti
 * not seen before.
 *
 * Nonces (§8, §9) are not used: proofs live at most `maxAgeSeconds`, and their jtis are
 * remembered for that long, so a proof cannot be replayed to this process. Imported keys
 * and thumbprints are cached per key, so a busy agent pays only for the signature check.
 */
export class DpopVerifier {
  private readonly clock: Clock;
  private readonly maxAge: number;
  private readonly futureSkew: number;
  private readonly replays: ReplayCache;
  /** Thumbprint input and alg to the imported key and its thumbprint. */
  private readonly keys = new Map<string, { key: KeyObject; jkt: string }>();

  constructor(options: DpopVerifierOptions) {
    this.clock = options.clock;
    this.maxAge = options.maxAgeSeconds ?? 60;
    this.futureSkew = options.futureSkewSeconds ?? 5;
    this.replays = new ReplayCache(options.replayCacheSize ?? 200_000);
  }

  /** Verify the DPoP header of a request; throws CustosError invalid_dpop_proof. */
  async verify(proof: string | undefined, request: DpopRequest): Promise<VerifiedProof> {
    if (proof === undefined || proof === '') throw invalidProof('no DPoP header');
    // Node joins repeated headers with ", "; a JWS never contains a comma (§4.3 item 1).
    if (proof.includes(',')) throw invalidProof('more than one DPoP header');
    if (proof.length > maxProofLength) throw invalidProof('DPoP proof too long');
    const parts = proof.split('.');
    if (parts.length !== 3) throw invalidProof('malformed DPoP proof');
    const [encodedHeader, encodedPayload, encodedSignature] = parts as [string, string, string];
    let header: Record<string, unknown>;
    let payload: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(encodedHeader, 'base64url').toString('utf8')) as Record<
        string,
        unknown
      >;
      payload = JSON.parse(Buffer.from(encodedPayload, 'base64url').toString('utf8')) as Record<
        string,
        unknown
      >;
    } catch (error) {
      throw invalidProof('malformed DPoP proof', error);
    }
    if (header === null || typeof header !== 'object' || payload === null || typeof payload !== 'object')
      throw invalidProof('malformed DPoP proof');
    if (header.crit !== undefined) throw invalidProof('crit is not supported');
    if (header.typ !== proofType) throw invalidProof(`typ must be ${proofType}`);
    const alg = header.alg;
    if (typeof alg !== 'string' || !dpopAlgorithms.includes(alg))
      throw invalidProof(`alg ${String(alg)} is not accepted`);
    const jwk = header.jwk;
    if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) throw invalidProof('no jwk header');
    if (privateMembers.some((m) => m in jwk)) throw invalidProof('jwk holds private key material');
    const { key, jkt } = await this.importKey(jwk as Record<string, unknown>, alg);

    // RFC 7515 §5.2: the signature covers the encoded header and payload as sent.
    const signed = Buffer.from(`${encodedHeader}.${encodedPayload}`, 'ascii');
    let valid = false;
    try {
      valid = verify(digestOf(alg), signed, verifyKey(alg, key), Buffer.from(encodedSignature, 'base64url'));
    } catch (error) {
      throw invalidProof('signature does not verify with the jwk', error);
    }
    if (!valid) throw invalidProof('signature does not verify with the jwk');
    const now = this.clock.now();
    const { jti, htm, htu, iat, ath, exp } = payload;
    if (typeof exp === 'number' && exp * 1000 <= now) throw invalidProof('proof expired (exp)');
    if (typeof jti !== 'string' || jti === '' || jti.length > 256) throw invalidProof('bad jti');
    if (htm !== request.method.toUpperCase()) throw invalidProof(`htm must be ${request.method}`);
    if (typeof htu !== 'string' || targetUri(htu) !== targetUri(request.url)) {
      throw invalidProof(`htu must be ${request.url}`);
    }
    if (typeof iat !== 'number') throw invalidProof('bad iat');
    const iatMs = iat * 1000;
    if (iatMs > now + this.futureSkew * 1000) throw invalidProof('iat is in the future');
    if (iatMs < now - this.maxAge * 1000) throw invalidProof(`proof older than ${this.maxAge}s`);
    if (request.accessToken !== undefined && ath !== accessTokenHash(request.accessToken)) {
      throw invalidProof('ath does not match the access token');
    }
    // Last, so only proofs that verified can fill the cache (§4.3 item 9; §11.1).
    const verdict = this.replays.remember(`${jkt} ${jti}`, iatMs + this.maxAge * 1000, now);
    if (verdict === 'replayed') throw invalidProof('DPoP proof replayed');
    if (verdict === 'too_old') throw invalidProof('DPoP proof too old for the replay cache');
    return { jkt };
  }

  private async importKey(
    jwk: Record<string, unknown>,
    alg: string,
  ): Promise<{ key: KeyObject; jkt: string }> {
    const { input, algorithms } = thumbprintInput(jwk);
    if (!algorithms.includes(alg)) throw invalidProof(`alg ${alg} does not fit the jwk's key type`);
    const cached = this.keys.get(input);
    if (cached !== undefined) return cached;
    let key: KeyObject;
    try {
      key = createPublicKey({ key: JSON.parse(input) as import('node:crypto').JsonWebKey, format: 'jwk' });
    } catch (error) {
      throw invalidProof('jwk is not a valid public key', error);
    }
    if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
      throw invalidProof('RSA keys must have at least 2048 bits');
    }
    const entry = { key, jkt: createHash('sha256').update(input).digest('base64url') };
    if (this.keys.size >= 10_000) this.keys.clear();
    this.keys.set(input, entry);
    return entry;
  }
}
