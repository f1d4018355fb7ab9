import type { FastifyRequest } from 'fastify';
import { dpopAlgorithms, type TokenPresentation } from '../identity/index.js';

/** An agent's access token as presented on a request to a protected resource (/mcp, /proxy). */
export interface PresentedToken {
  readonly token: string;
  readonly presentation: TokenPresentation;
}

const algs = `algs="${dpopAlgorithms.join(' ')}"`;

/**
 * Read `Authorization: Bearer <token>` (RFC 6750 §2.1) or `Authorization: DPoP <token>` with
 * its `DPoP` proof header (RFC 9449 §7.1). `publicBase` is Custos's public URL: the proof's
 * htu must name it plus the request's path. Undefined when no token is presented.
 */
export function readPresentedToken(request: FastifyRequest, publicBase: string): PresentedToken | undefined {
  const authorization = request.headers.authorization;
  if (authorization === undefined) return undefined;
  const space = authorization.indexOf(' ');
  if (space < 0) return undefined;
  const scheme = authorization.slice(0, space).toLowerCase();
  const token = authorization.slice(space + 1).trim();
  if (token === '') return undefined;
  if (scheme === 'bearer') return { token, presentation: { scheme: 'Bearer' } };
  if (scheme !== 'dpop') return undefined;
  const proof = request.headers.dpop;
  const path = request.url.split('?', 1)[0] as string;
  return {
    token,
    presentation: {
      scheme: 'DPoP',
      // Repeated headers arrive joined or as an array; either way more than one is refused.
      proof: Array.isArray(proof) ? proof.join(', ') : proof,
      method: request.method,
      url: `${publicBase.replace(/\/+$/, '')}${path}`,
    },
  };
}

/**
 * WWW-Authenticate challenges for a 401 (RFC 6750 §3, RFC 9449 §7.1): the Bearer challenge
 * with the protected resource metadata, and a DPoP challenge naming the accepted algorithms.
 * The failed scheme's challenge carries the error code.
 */
export function authChallenges(
  resourceMetadataUrl: string,
  failure?: { code: string; scheme: TokenPresentation['scheme'] },
): string[] {
  const bearer = `Bearer resource_metadata="${resourceMetadataUrl}"`;
  const dpop = `DPoP ${algs}`;
  if (failure === undefined) return [bearer, dpop];
  const error = failure.code === 'invalid_dpop_proof' ? 'invalid_dpop_proof' : 'invalid_token';
  if (failure.scheme === 'DPoP' || error === 'invalid_dpop_proof') {
    return [bearer, `DPoP error="${error}", ${algs}`];
  }
  return [`${bearer}, error="${error}"`, dpop];
}
