/** The admin API as the console uses it: same origin, session cookie, CSRF header on changes. */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const method = init.method ?? 'GET';
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET') headers['x-custos-csrf'] = '1';
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: 'same-origin',
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? {} : JSON.parse(text);
  } catch {
    throw new ApiError(res.status, 'bad_response', `unexpected answer (HTTP ${res.status})`);
  }
  if (!res.ok) {
    const error = (json as { error?: { code?: string; message?: string } }).error;
    throw new ApiError(res.status, error?.code ?? 'error', error?.message ?? `HTTP ${res.status}`);
  }
  return json as T;
}

export interface SessionUser {
  id: string;
  email: string;
  name: string;
  roles: string[];
  groups: string[];
}

export interface Agent {
  id: string;
  name: string;
  owner: string;
  purpose: string;
  environment: string;
  status: 'active' | 'suspended' | 'offboarded';
  active: boolean;
  createdAt: number;
  expiresAt: number | null;
}

export interface AuditEvent {
  seq: number;
  id: string;
  time: number;
  agentId: string | null;
  owner: string | null;
  taskId: string | null;
  method: string;
  server: string | null;
  target: string | null;
  argsHash: string | null;
  effect: 'allow' | 'deny';
  policyIds: string[];
  reasons: string[];
  outcome: string;
  errorCode: string | null;
  latencyUs: number;
  traceId: string | null;
  policySetHash?: string | null;
  approvalId?: string | null;
  /** True when the content was erased (custos audit erase-content). */
  erased?: boolean;
  arguments?: unknown;
  reasoning?: unknown;
  result?: unknown;
}

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled' | 'consumed';

export interface Approval {
  id: string;
  status: ApprovalStatus;
  tier: string;
  callHash: string;
  agent: { id: string; name: string; owner: string };
  task: { id: string; purpose: string } | null;
  server: string;
  tool: string;
  arguments: unknown;
  reasoning: unknown;
  policyIds: string[];
  createdAt: number;
  expiresAt: number;
  quorum: {
    required: number;
    votes: Array<{ by: string; at: number; decision: string; reason?: string | null }>;
  };
  decidedAt: number | null;
  reason: string | null;
  /** Filled when one approval is fetched (GET /approvals/:id), not in lists. */
  recentActivity?: AuditEvent[];
}

export interface ApproverStats {
  approver: string;
  perHour: Array<{ hour: string | number; count: number }>;
  medianSeconds: number | null;
}

export interface Overview {
  agents: { total: number; active: number; suspended: number; offboarded: number };
  perMinute: Array<{ minute: number; calls: number; denied: number }>;
  lastHour: { calls: number; denied: number };
}

export interface ServerInfo {
  name: string;
  transport: string;
  status: string;
  tools: number;
  prompts: number;
  resources: number;
}

export interface Tool {
  name: string;
  description: string | null;
  annotations: Record<string, unknown>;
}

export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  return new Date(ms).toLocaleString();
}

/** A value shown to a person as text: strings as they are, anything else as indented JSON. */
export function asText(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  return JSON.stringify(value, null, 2);
}
