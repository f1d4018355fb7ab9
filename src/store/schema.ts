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
  /** Why the agent is suspended (0013_lifecycle): 'expired' (renewing lifts it), 'manual', or null. */
  status_reason?: string | null;
  /** 1 when the agent's access tokens must be DPoP-bound (migration 0015). */
  require_dpop: number;
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
  /** Hash of the policy set in force (0005). */
  policy_set_hash?: string | null;
  /** The approval the call consumed (0005). */
  approval_id?: string | null;
  /**
   * The event's transparency-log commitment (0005): hex salted SHA-256 of each content
   * field, and the hex RFC 9162 leaf hash of the commitment record rebuilt from this row.
   * Null only for an event appended before its log existed, until the log backfills it.
   */
  arguments_hash?: string | null;
  reasoning_hash?: string | null;
  result_hash?: string | null;
  leaf_hash?: string | null;
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

/** A kill switch, scoped kill or quarantine; active while lifted_at is null. */
export interface ContainmentTable {
  id: string;
  /** all, agent, task, server or tool. */
  scope: string;
  /** Agent id, task id, server name, "server.tool", or "*" for all. */
  target: string;
  reason: string;
  /** Who contained: a person's name, or "detector:<name>". */
  actor: string;
  incident_id: string | null;
  created_at: number;
  /** JSON array of {by, at}: the humans who asked to resume. */
  resume_votes: string;
  lifted_at: number | null;
}

export interface IncidentTable {
  id: string;
  /** open or closed. */
  status: string;
  scope: string;
  target: string;
  agent_id: string | null;
  task_id: string | null;
  /** The detector that fired, or "manual". */
  detector: string;
  /** JSON: what fired and why. */
  trigger: string;
  onset_at: number;
  detected_at: number;
  contained_at: number | null;
  closed_at: number | null;
  closed_by: string | null;
  /** JSON array of {at, by, text}. */
  notes: string;
  /** Calls refused at authentication because the quarantine ended the agent's tokens. */
  refused_tokens: number;
}

export interface DetectionTable {
  id: string;
  time: number;
  agent_id: string | null;
  task_id: string | null;
  server: string | null;
  target: string | null;
  detector: string;
  /** alert, throttle or quarantine. */
  action: string;
  detail: string;
  incident_id: string | null;
}

/** One action taken on an incident (or by a playbook run): containment, notification, step. */
export interface IncidentActionTable {
  id: string;
  incident_id: string | null;
  time: number;
  /** Orders actions recorded within the same millisecond. */
  ordinal: number;
  kind: string;
  /** done, failed, noop or dry-run. */
  status: string;
  actor: string;
  playbook: string | null;
  /** JSON detail. */
  detail: string;
}

export interface DetectSeenTable {
  agent_id: string;
  /** "server" or "server.tool". */
  key: string;
  first_at: number;
}

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled' | 'consumed';

/** A request for human approval of one exact call (0009_approvals). */
export interface ApprovalTable {
  id: string;
  status: ApprovalStatus;
  tier: string;
  /** Hex SHA-256 of the RFC 8785 canonical JSON of {agent, task, server, tool, arguments}. */
  call_hash: string;
  agent_id: string;
  agent_name: string;
  owner: string;
  task_id: string | null;
  task_purpose: string | null;
  server: string;
  tool: string;
  /** JSON of the call's arguments, as Custos received them. */
  arguments: string;
  /** JSON of the agent's stated reasoning, or null. */
  reasoning: string | null;
  /** JSON array of the policy ids that asked for approval. */
  policy_ids: string;
  /** Distinct approvals needed. */
  quorum: number;
  created_at: number;
  expires_at: number;
  decided_at: number | null;
  /** The deciding approver's reason. */
  reason: string | null;
  consumed_at: number | null;
}

/** One person's vote on an approval; (approval_id, voter) is the primary key. */
export interface ApprovalVoteTable {
  approval_id: string;
  /** The person, normalised: a user's lower-cased email, or "admin-token". */
  voter: string;
  actor_id: string;
  decision: 'approve' | 'deny';
  reason: string | null;
  /** console, cli, webhook or api. */
  channel: string;
  at: number;
}

/** A time-boxed grant: this agent, this task, this tool, arguments matching a pattern. */
export interface ApprovalGrantTable {
  id: string;
  approval_id: string;
  agent_id: string;
  task_id: string | null;
  server: string;
  tool: string;
  /** JSON of the approved call's arguments. */
  arguments: string;
  /** JSON object: argument name to a regular expression its value must match in full; null = exact. */
  arguments_pattern: string | null;
  granted_by: string;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
}

/** One-time decision links sent by the webhook channel. */
export interface ApprovalLinkTable {
  nonce: string;
  approval_id: string;
  /** The email the link was minted for. */
  approver: string;
  decision: 'approve' | 'deny';
  expires_at: number;
  used_at: number | null;
}

/** A person who uses the console or the admin API (0010_humans). */
export interface UserTable {
  id: string;
  email: string;
  name: string;
  /** JSON array of roles: admin, approver, auditor. */
  roles: string;
  /** JSON array of group names (approval tiers may name groups). */
  groups: string;
  /** scrypt hash of the password (local accounts); null for single sign-on only. */
  password_hash: string | null;
  status: 'active' | 'disabled';
  created_at: number;
  updated_at: number;
}

/** A console login session; the cookie holds the secret, the row its SHA-256. */
export interface UserSessionTable {
  id_hash: string;
  user_id: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
}

/** A user's admin API token for automation; only its SHA-256 is kept. */
export interface UserTokenTable {
  id: string;
  user_id: string;
  name: string;
  token_hash: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
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

/** One secret: its value encrypted with its own data key, the data key wrapped by the master key. */
export interface VaultSecretTable {
  name: string;
  /** What the secret is (api_key, oauth_refresh_token, signing_key, ...): metadata, never the value. */
  kind: string;
  /** Bumped by every set or rotate; part of both ciphertexts' associated data. */
  version: number;
  /** JSON object of non-secret metadata. */
  metadata: string;
  /** base64 of IV (12) || AES-256-GCM(data key) || tag (16), under the master key. */
  wrapped_key: string;
  /** Which master key wrapped the data key (first 16 hex digits of its SHA-256). */
  master_key_id: string;
  /** base64 of IV (12) || AES-256-GCM(value) || tag (16), under the data key. */
  ciphertext: string;
  created_at: number;
  updated_at: number;
}

/** Where a secret is injected: an upstream (server or HTTP API), shared or for one agent. */
export interface VaultBindingTable {
  id: string;
  secret: string;
  /** 'server' (an MCP server) or 'api' (an HTTP API reached through /proxy). */
  target_kind: string;
  target: string;
  /** The agent this binding belongs to, or null when shared by every agent. */
  agent_id: string | null;
  /** 'header' or 'env'. */
  inject: string;
  /** Header or environment variable name. */
  field: string;
  /** The value with {{secret}} where the secret goes. */
  template: string;
  created_at: number;
}

/** A reviewer's attestation of one agent's reach (0013_lifecycle). */
export interface AccessReviewTable {
  id: string;
  agent_id: string;
  /** Email of the person who attests. */
  reviewer: string;
  /** Who recorded it (a user's email or admin-token). */
  actor: string;
  note: string | null;
  /** Hex SHA-256 of the RFC 8785 JSON of the reach attested. */
  reach_digest: string;
  /** JSON of the reach attested. */
  reach: string;
  created_at: number;
}

/** An OAuth credential of the broker: token generation, expiry and refresh lease (tokens live in the vault). */
export interface OAuthCredentialTable {
  name: string;
  grant_type: 'authorization_code' | 'client_credentials';
  status: 'disconnected' | 'connected' | 'reconnect_required';
  /** Bumped each time a new token set is stored; readers compare it to what they cached. */
  generation: number;
  scope: string | null;
  access_expires_at: number | null;
  /** 1 when the stored token set holds a refresh token. */
  has_refresh_token: number;
  /** The process holding the refresh lease, and until when (ms). */
  lease_holder: string | null;
  lease_until: number | null;
  connected_at: number | null;
  connected_by: string | null;
  refreshed_at: number | null;
  refresh_count: number;
  /** Code of the last refresh failure (no provider text, which could echo a token). */
  last_error: string | null;
  updated_at: number;
}

/** An authorization-code connection in progress (PKCE). */
export interface OAuthConnectTable {
  /** SHA-256 (hex) of the state parameter. */
  state_hash: string;
  credential: string;
  /** The PKCE code verifier, AES-256-GCM sealed under a key derived from the state. */
  sealed_verifier: string;
  redirect_uri: string;
  requested_by: string;
  created_at: number;
  expires_at: number;
}

export interface Database {
  agents: AgentTable;
  agent_credentials: AgentCredentialTable;
  signing_keys: SigningKeyTable;
  tasks: TaskTable;
  audit_events: AuditEventTable;
  audit_content: AuditContentTable;
  tlog_keys: TlogKeyTable;
  tlog_checkpoints: TlogCheckpointTable;
  containments: ContainmentTable;
  incidents: IncidentTable;
  detections: DetectionTable;
  incident_actions: IncidentActionTable;
  detect_seen: DetectSeenTable;
  approvals: ApprovalTable;
  approval_votes: ApprovalVoteTable;
  approval_grants: ApprovalGrantTable;
  approval_links: ApprovalLinkTable;
  users: UserTable;
  user_sessions: UserSessionTable;
  user_tokens: UserTokenTable;
  vet_runs: VetRunTable;
  vault_secrets: VaultSecretTable;
  vault_bindings: VaultBindingTable;
  access_reviews: AccessReviewTable;
  oauth_credentials: OAuthCredentialTable;
  oauth_connects: OAuthConnectTable;
}
