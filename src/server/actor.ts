import type { FastifyRequest } from 'fastify';
import { CustosError } from '../core/errors.js';

/** What a person (or automation) may do through the admin API and the console. */
export type Role = 'admin' | 'approver' | 'auditor';

/** Who is making an admin API request: the installation's admin token, or a human user. */
export interface Actor {
  /** A user id, or "admin-token" for the installation's admin token. */
  readonly id: string;
  readonly kind: 'admin-token' | 'user';
  /** A user's email address (the admin token's is "admin token"), for audit records and the console. */
  readonly name: string;
  readonly roles: ReadonlySet<Role>;
  /** Groups the user belongs to (approval tiers may name groups). */
  readonly groups: ReadonlySet<string>;
}

export const adminTokenActor: Actor = Object.freeze({
  id: 'admin-token',
  kind: 'admin-token',
  name: 'admin token',
  roles: new Set<Role>(['admin', 'approver', 'auditor']),
  groups: new Set<string>(),
});

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the admin API's authentication hook; undefined outside /api/v1. */
    actor?: Actor;
  }
}

/** The authenticated actor of an admin API request. */
export function actorOf(request: FastifyRequest): Actor {
  if (request.actor === undefined) throw new CustosError('invalid_token', 'authentication is required');
  return request.actor;
}

/** The actor, if it holds one of the roles; otherwise a `forbidden` error. */
export function requireRole(request: FastifyRequest, ...roles: Role[]): Actor {
  const actor = actorOf(request);
  if (!roles.some((role) => actor.roles.has(role))) {
    throw new CustosError('forbidden', `this needs the ${roles.join(' or ')} role`);
  }
  return actor;
}
