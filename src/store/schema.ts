/** Times are integers: milliseconds since the Unix epoch. JSON columns hold text. */
export interface AgentTable {
  id: string;
  name: string;
  owner: string;
  purpose: string;
  environment: string;
  status: 'active' | 'suspended' | 'offboarded';
  epoch: number;
  created_at: number;
  updated_at: number;
  expires_at: number | null;
}

export interface AgentCredentialTable {
  id: string;
  agent_id: string;
  kind: 'client_secret' | 'public_key';
  /** scrypt hash of a client secret (kind client_secret). */
  secret_hash: string | null;
  /** JSON of a public JWK (kind public_key, RFC 7523). */
  public_jwk: string | null;
  created_at: number;
  revoked_at: number | null;
}

export interface SigningKeyTable {
  kid: string;
  algorithm: string;
  public_jwk: string;
  private_jwk: string;
  created_at: number;
  retired_at: number | null;
}

export interface TaskTable {
  id: string;
  agent_id: string;
  purpose: string;
  /** JSON array of server names the task may reach, or null for the agent's own reach. */
  servers: string | null;
  /** JSON array of tool names ("server.tool" or "tool"), or null. */
  tools: string | null;
  budget: number | null;
  created_at: number;
  expires_at: number;
  /** The task this one was narrowed from (RFC 8693 exchange of a task token), or null. */
  parent_id: string | null;
}

export interface AuditEventTable {
  seq: number;
  id: string;
  time: number;
  agent_id: string | null;
  owner: string | null;
  task_id: string | null;
  /** The MCP method or HTTP operation, e.g. tools/call. */
  method: string;
  server: string | null;
  /** Tool, prompt or resource the call targets. */
  target: string | null;
  args_hash: string | null;
  /** allow | deny */
  effect: string;
  /** JSON array of policy ids that decided. */
  policy_ids: string;
  /** JSON array of human-readable reasons (deny codes, evaluation errors). */
  reasons: string;
  /** executed | denied | failed */
  outcome: string;
  error_code: string | null;
  latency_us: number;
  trace_id: string | null;
}

/** Plaintext behind an event, kept apart so it can be erased without touching the log. */
export interface AuditContentTable {
  event_id: string;
  arguments: string | null;
  reasoning: string | null;
  result: string | null;
  /** Hex of the event's 32-byte commitment salt (0004_tlog); erased with the plaintext. */
  salt?: string | null;
}

/** The transparency log's Ed25519 signing key, created at first start (one row, id 'log'). */
export interface TlogKeyTable {
  id: string;
  /** Checkpoint origin and key name, e.g. custos.local/<log id>. */
  origin: string;
  /** C2SP signer key (PRIVATE+KEY+...). */
  signer_key: string;
  /** C2SP verifier key, published to auditors. */
  verifier_key: string;
  created_at: number;
}

/** One Merkle leaf per audit event; leaf index = seq - 1. */
export interface TlogLeafTable {
  seq: number;
  /** Hex RFC 9162 leaf hash of `leaf`. */
  hash: string;
  /** RFC 8785 canonical JSON of the event's commitment record. */
  leaf: string;
}

/** Signed checkpoints, at most one per tree size, sizes signed in increasing order. */
export interface TlogCheckpointTable {
  size: number;
  /** Hex root hash. */
  root: string;
  /** The signed note (C2SP tlog-checkpoint). */
  note: string;
  /** JSON array of hex frontier nodes at this size, so a restart resumes without reading every leaf. */
  frontier: string;
  time: number;
}

export interface VetRunTable {
  id: string;
  server: string;
  vetted_at: number;
  verdict: string;
  tier: string;
  score: number;
  block_count: number;
  warn_count: number;
  info_count: number;
  source: string;
  /** The JSON report (docs/vet.md, schema version 1). */
  report: string;
}

export interface Database {
  agents: AgentTable;
  agent_credentials: AgentCredentialTable;
  signing_keys: SigningKeyTable;
  tasks: TaskTable;
  audit_events: AuditEventTable;
  audit_content: AuditContentTable;
  tlog_keys: TlogKeyTable;
  tlog_leaves: TlogLeafTable;
  tlog_checkpoints: TlogCheckpointTable;
  vet_runs: VetRunTable;
}
