import { type Kysely, type Migration, type MigrationProvider, sql } from 'kysely';

/**
 * One list of migrations for SQLite and PostgreSQL. Only portable column types are used
 * (text, integer, bigint); times are bigint milliseconds.
 */
const migrations: Record<string, Migration> = {
  '0001_identity': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('agents')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('purpose', 'text', (c) => c.notNull())
        .addColumn('environment', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('epoch', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .execute();
      await db.schema
        .createTable('agent_credentials')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('agent_id', 'text', (c) => c.notNull().references('agents.id'))
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('secret_hash', 'text')
        .addColumn('public_jwk', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('agent_credentials_agent')
        .on('agent_credentials')
        .column('agent_id')
        .execute();
      await db.schema
        .createTable('signing_keys')
        .addColumn('kid', 'text', (c) => c.primaryKey())
        .addColumn('algorithm', 'text', (c) => c.notNull())
        .addColumn('public_jwk', 'text', (c) => c.notNull())
        .addColumn('private_jwk', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('retired_at', 'bigint')
        .execute();
      await db.schema
        .createTable('tasks')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('agent_id', 'text', (c) => c.notNull().references('agents.id'))
        .addColumn('purpose', 'text', (c) => c.notNull())
        .addColumn('servers', 'text')
        .addColumn('tools', 'text')
        .addColumn('budget', 'integer')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  '0002_audit': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('audit_events')
        .addColumn('seq', 'bigint', (c) => c.primaryKey())
        .addColumn('id', 'text', (c) => c.notNull().unique())
        .addColumn('time', 'bigint', (c) => c.notNull())
        .addColumn('agent_id', 'text')
        .addColumn('owner', 'text')
        .addColumn('task_id', 'text')
        .addColumn('method', 'text', (c) => c.notNull())
        .addColumn('server', 'text')
        .addColumn('target', 'text')
        .addColumn('args_hash', 'text')
        .addColumn('effect', 'text', (c) => c.notNull())
        .addColumn('policy_ids', 'text', (c) => c.notNull())
        .addColumn('reasons', 'text', (c) => c.notNull())
        .addColumn('outcome', 'text', (c) => c.notNull())
        .addColumn('error_code', 'text')
        .addColumn('latency_us', 'integer', (c) => c.notNull())
        .addColumn('trace_id', 'text')
        .execute();
      await db.schema
        .createIndex('audit_events_agent')
        .on('audit_events')
        .columns(['agent_id', 'seq'])
        .execute();
      await db.schema
        .createIndex('audit_events_task')
        .on('audit_events')
        .columns(['task_id', 'seq'])
        .execute();
      await db.schema
        .createTable('audit_content')
        .addColumn('event_id', 'text', (c) => c.primaryKey())
        .addColumn('arguments', 'text')
        .addColumn('reasoning', 'text')
        .addColumn('result', 'text')
        .execute();
    },
  },
  '0003_identity_task_lineage': {
    async up(db: Kysely<unknown>) {
      // A task narrowed from another task records its parent, so a call budget can be
      // charged up the chain and a child never spends more than its ancestors allow.
      await db.schema.alterTable('tasks').addColumn('parent_id', 'text').execute();
      await db.schema.createIndex('tasks_agent').on('tasks').columns(['agent_id', 'created_at']).execute();
    },
  },
  '0004_tlog': {
    async up(db: Kysely<unknown>) {
      // The per-event salt of the content commitments lives beside the plaintext, so
      // erasing the row leaves the leaf's hashes unlinkable (crypto-shredding).
      await db.schema.alterTable('audit_content').addColumn('salt', 'text').execute();
      await db.schema
        .createTable('tlog_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('origin', 'text', (c) => c.notNull())
        .addColumn('signer_key', 'text', (c) => c.notNull())
        .addColumn('verifier_key', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('tlog_leaves')
        .addColumn('seq', 'bigint', (c) => c.primaryKey())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('leaf', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('tlog_checkpoints')
        .addColumn('size', 'bigint', (c) => c.primaryKey())
        .addColumn('root', 'text', (c) => c.notNull())
        .addColumn('note', 'text', (c) => c.notNull())
        .addColumn('frontier', 'text', (c) => c.notNull())
        .addColumn('time', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  '0005_audit_commitments': {
    async up(db: Kysely<unknown>) {
      // The commitment moves into the event row: the policy set hash and approval id the
      // leaf commits to, the salted content hashes and the leaf hash. The leaf text is
      // rebuilt from the row when needed, so tlog_leaves (a second copy of every event)
      // goes; its hashes are carried over. Existing leaves committed both new fields as null.
      for (const column of [
        'policy_set_hash',
        'approval_id',
        'arguments_hash',
        'reasoning_hash',
        'result_hash',
        'leaf_hash',
      ]) {
        await db.schema.alterTable('audit_events').addColumn(column, 'text').execute();
      }
      const copy = async (trx: Kysely<unknown>) => {
        for (let after = 0; ; ) {
          const { rows } = await sql<{ seq: number | string; hash: string; leaf: string }>`
            select seq, hash, leaf from tlog_leaves where seq > ${after} order by seq limit 5000`.execute(
            trx,
          );
          for (const row of rows) {
            const leaf = JSON.parse(row.leaf) as Record<string, string | null>;
            await sql`update audit_events set policy_set_hash = ${leaf.policySetHash ?? null},
              approval_id = ${leaf.approvalId ?? null}, arguments_hash = ${leaf.argumentsHash ?? null},
              reasoning_hash = ${leaf.reasoningHash ?? null}, result_hash = ${leaf.resultHash ?? null},
              leaf_hash = ${row.hash} where seq = ${Number(row.seq)}`.execute(trx);
          }
          if (rows.length < 5000) return;
          after = Number(rows[rows.length - 1]!.seq);
        }
      };
      // PostgreSQL runs migrations in a transaction already; SQLite gets one here (one commit, not one per row).
      if (db.isTransaction) await copy(db);
      else await db.transaction().execute(copy);
      await db.schema.dropTable('tlog_leaves').execute();
    },
  },
  '0007_detect': {
    async up(db: Kysely<unknown>) {
      // Containment: the kill switch and every scoped kill or quarantine, lifted by humans.
      await db.schema
        .createTable('containments')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('scope', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('incident_id', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('resume_votes', 'text', (c) => c.notNull())
        .addColumn('lifted_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('containments_open')
        .on('containments')
        .columns(['lifted_at', 'scope', 'target'])
        .execute();
      await db.schema
        .createTable('incidents')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('scope', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('agent_id', 'text')
        .addColumn('task_id', 'text')
        .addColumn('detector', 'text', (c) => c.notNull())
        .addColumn('trigger', 'text', (c) => c.notNull())
        .addColumn('onset_at', 'bigint', (c) => c.notNull())
        .addColumn('detected_at', 'bigint', (c) => c.notNull())
        .addColumn('contained_at', 'bigint')
        .addColumn('closed_at', 'bigint')
        .addColumn('closed_by', 'text')
        .addColumn('notes', 'text', (c) => c.notNull())
        // Calls refused at authentication because the quarantine ended the agent's tokens (not audited).
        .addColumn('refused_tokens', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .createIndex('incidents_status')
        .on('incidents')
        .columns(['status', 'detected_at'])
        .execute();
      // Every detector finding (alert, throttle, quarantine) and every action taken, in order.
      await db.schema
        .createTable('detections')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('time', 'bigint', (c) => c.notNull())
        .addColumn('agent_id', 'text')
        .addColumn('task_id', 'text')
        .addColumn('server', 'text')
        .addColumn('target', 'text')
        .addColumn('detector', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('detail', 'text', (c) => c.notNull())
        .addColumn('incident_id', 'text')
        .execute();
      await db.schema.createIndex('detections_time').on('detections').column('time').execute();
      await db.schema
        .createTable('incident_actions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('incident_id', 'text')
        .addColumn('time', 'bigint', (c) => c.notNull())
        // Orders the actions one process records within the same millisecond.
        .addColumn('ordinal', 'integer', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('playbook', 'text')
        .addColumn('detail', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('incident_actions_incident')
        .on('incident_actions')
        .columns(['incident_id', 'time'])
        .execute();
      // Servers and tools each agent has used, for the first-use detector.
      await db.schema
        .createTable('detect_seen')
        .addColumn('agent_id', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('first_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('detect_seen_pk', ['agent_id', 'key'])
        .execute();
    },
  },
  '0009_approvals': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('approvals')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('tier', 'text', (c) => c.notNull())
        .addColumn('call_hash', 'text', (c) => c.notNull())
        .addColumn('agent_id', 'text', (c) => c.notNull())
        .addColumn('agent_name', 'text', (c) => c.notNull())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('task_id', 'text')
        .addColumn('task_purpose', 'text')
        .addColumn('server', 'text', (c) => c.notNull())
        .addColumn('tool', 'text', (c) => c.notNull())
        .addColumn('arguments', 'text', (c) => c.notNull())
        .addColumn('reasoning', 'text')
        .addColumn('policy_ids', 'text', (c) => c.notNull())
        .addColumn('quorum', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('decided_at', 'bigint')
        .addColumn('reason', 'text')
        .addColumn('consumed_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('approvals_call')
        .on('approvals')
        .columns(['call_hash', 'status'])
        .execute();
      await db.schema
        .createIndex('approvals_status')
        .on('approvals')
        .columns(['status', 'created_at'])
        .execute();
      await db.schema
        .createIndex('approvals_agent')
        .on('approvals')
        .columns(['agent_id', 'created_at'])
        .execute();
      // One row per person and approval: the primary key is what stops one person counting twice.
      await db.schema
        .createTable('approval_votes')
        .addColumn('approval_id', 'text', (c) => c.notNull())
        .addColumn('voter', 'text', (c) => c.notNull())
        .addColumn('actor_id', 'text', (c) => c.notNull())
        .addColumn('decision', 'text', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('channel', 'text', (c) => c.notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('approval_votes_pk', ['approval_id', 'voter'])
        .execute();
      await db.schema.createIndex('approval_votes_at').on('approval_votes').columns(['at']).execute();
      await db.schema
        .createTable('approval_grants')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('approval_id', 'text', (c) => c.notNull())
        .addColumn('agent_id', 'text', (c) => c.notNull())
        .addColumn('task_id', 'text')
        .addColumn('server', 'text', (c) => c.notNull())
        .addColumn('tool', 'text', (c) => c.notNull())
        .addColumn('arguments', 'text', (c) => c.notNull())
        .addColumn('arguments_pattern', 'text')
        .addColumn('granted_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('approval_grants_call')
        .on('approval_grants')
        .columns(['agent_id', 'server', 'tool', 'expires_at'])
        .execute();
      await db.schema
        .createTable('approval_links')
        .addColumn('nonce', 'text', (c) => c.primaryKey())
        .addColumn('approval_id', 'text', (c) => c.notNull())
        .addColumn('approver', 'text', (c) => c.notNull())
        .addColumn('decision', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('used_at', 'bigint')
        .execute();
    },
  },
  '0010_humans': {
    async up(db: Kysely<unknown>) {
      // People who use the console and the admin API (not agents): roles and groups are JSON arrays.
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('email', 'text', (c) => c.notNull().unique())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('roles', 'text', (c) => c.notNull())
        .addColumn('groups', 'text', (c) => c.notNull())
        .addColumn('password_hash', 'text')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      // Sessions and API tokens are stored as SHA-256 of 256-bit random secrets, never the secret.
      await db.schema
        .createTable('user_sessions')
        .addColumn('id_hash', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('user_sessions_user').on('user_sessions').column('user_id').execute();
      await db.schema
        .createTable('user_tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint')
        .addColumn('revoked_at', 'bigint')
        .execute();
    },
  },
  '0011_vet': {
    async up(db: Kysely<unknown>) {
      // One row per vetting of an MCP server (custos vet): the inventory's risk tier and last vetting.
      await db.schema
        .createTable('vet_runs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('server', 'text', (c) => c.notNull())
        .addColumn('vetted_at', 'bigint', (c) => c.notNull())
        .addColumn('verdict', 'text', (c) => c.notNull())
        .addColumn('tier', 'text', (c) => c.notNull())
        .addColumn('score', 'integer', (c) => c.notNull())
        .addColumn('block_count', 'integer', (c) => c.notNull())
        .addColumn('warn_count', 'integer', (c) => c.notNull())
        .addColumn('info_count', 'integer', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('report', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('vet_runs_server')
        .on('vet_runs')
        .columns(['server', 'vetted_at'])
        .execute();
    },
  },
  '0012_vault': {
    async up(db: Kysely<unknown>) {
      // Envelope-encrypted secrets (docs/vault.md): no column ever holds a value in plaintext.
      await db.schema
        .createTable('vault_secrets')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('metadata', 'text', (c) => c.notNull())
        .addColumn('wrapped_key', 'text', (c) => c.notNull())
        .addColumn('master_key_id', 'text', (c) => c.notNull())
        .addColumn('ciphertext', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('vault_bindings')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('secret', 'text', (c) => c.notNull())
        .addColumn('target_kind', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('agent_id', 'text')
        .addColumn('inject', 'text', (c) => c.notNull())
        .addColumn('field', 'text', (c) => c.notNull())
        .addColumn('template', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('vault_bindings_target')
        .on('vault_bindings')
        .columns(['target_kind', 'target', 'agent_id'])
        .execute();
      await db.schema.createIndex('vault_bindings_agent').on('vault_bindings').column('agent_id').execute();
    },
  },
  '0013_lifecycle': {
    async up(db: Kysely<unknown>) {
      // Why an agent is suspended: 'expired' (the lifecycle sweep; renewing lifts it) or 'manual'.
      await db.schema.alterTable('agents').addColumn('status_reason', 'text').execute();
      // Every agent now has an expiry. Agents created before get the default 90 days from the
      // upgrade, so they keep working and show up for renewal instead of stopping at once.
      const defaultExpiry = Date.now() + 90 * 86_400_000;
      await sql`update agents set expires_at = ${defaultExpiry} where expires_at is null and status <> 'offboarded'`.execute(
        db,
      );
      // A reviewer's attestation that an agent's reach (servers, tools, bindings) was reviewed.
      await db.schema
        .createTable('access_reviews')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('agent_id', 'text', (c) => c.notNull().references('agents.id'))
        .addColumn('reviewer', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('note', 'text')
        .addColumn('reach_digest', 'text', (c) => c.notNull())
        .addColumn('reach', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('access_reviews_agent')
        .on('access_reviews')
        .columns(['agent_id', 'created_at'])
        .execute();
    },
  },
  '0014_oauth_broker': {
    async up(db: Kysely<unknown>) {
      // One row per OAuth credential the broker holds (custos.yaml oauth.credentials). The tokens
      // themselves are a vault secret (encrypted); this row carries what may be read in clear: the
      // generation of the token set, its expiry, and the refresh lease shared by every process.
      await db.schema
        .createTable('oauth_credentials')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('grant_type', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('generation', 'integer', (c) => c.notNull())
        .addColumn('scope', 'text')
        .addColumn('access_expires_at', 'bigint')
        .addColumn('has_refresh_token', 'integer', (c) => c.notNull())
        .addColumn('lease_holder', 'text')
        .addColumn('lease_until', 'bigint')
        .addColumn('connected_at', 'bigint')
        .addColumn('connected_by', 'text')
        .addColumn('refreshed_at', 'bigint')
        .addColumn('refresh_count', 'integer', (c) => c.notNull())
        .addColumn('last_error', 'text')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      // Open authorization-code connections (PKCE). The state is stored only as its SHA-256; the
      // code verifier is sealed with a key derived from the state, which only the redirect carries.
      await db.schema
        .createTable('oauth_connects')
        .addColumn('state_hash', 'text', (c) => c.primaryKey())
        .addColumn('credential', 'text', (c) => c.notNull())
        .addColumn('sealed_verifier', 'text', (c) => c.notNull())
        .addColumn('redirect_uri', 'text', (c) => c.notNull())
        .addColumn('requested_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  '0015_dpop': {
    async up(db: Kysely<unknown>) {
      // 1: the agent's access tokens must be DPoP-bound (RFC 9449); unbound ones are refused.
      await db.schema
        .alterTable('agents')
        .addColumn('require_dpop', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
    },
  },
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
