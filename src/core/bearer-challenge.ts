/**
 * What an upstream's refusal of a broker token means, read from its status and its
 * `WWW-Authenticate` challenge (RFC 6750 section 3): missing scope is a different problem
 * (a human must grant more) from an expired or revoked token (Custos refreshes or reconnects).
 */
export type UpstreamRefusal =
  | { kind: 'insufficient_scope'; scope: string | null }
  | { kind: 'invalid_token' }
  | { kind: 'other' };

/** Parse the auth-params of the first Bearer challenge (quoted strings or tokens). */
export function bearerChallenge(header: string | null | undefined): Record<string, string> | undefined {
  if (header === null || header === undefined) return undefined;
  const match = /(?:^|,)\s*Bearer(?:\s+(.*))?$/i.exec(header);
  if (match === null) return undefined;
  const params: Record<string, string> = {};
  const pattern = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  for (const m of (match[1] ?? '').matchAll(pattern)) {
    const key = (m[1] ?? '').toLowerCase();
    if (key in params) continue;
    params[key] = m[2] === undefined ? (m[3] ?? '') : m[2].replace(/\\(.)/g, '$1');
  }
  return params;
}

export function classifyRefusal(status: number, wwwAuthenticate: string | null | undefined): UpstreamRefusal {
  if (status !== 401 && status !== 403) return { kind: 'other' };
  const challenge = bearerChallenge(wwwAuthenticate);
  if (challenge?.error === 'insufficient_scope')
    return { kind: 'insufficient_scope', scope: challenge.scope ?? null };
  // Only an explicit RFC 6750 error: a bare 401 (an API key refused, say) passes through unchanged.
  if (status === 401 && challenge?.error === 'invalid_token') return { kind: 'invalid_token' };
  return { kind: 'other' };
}
