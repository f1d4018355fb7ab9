import type { Kysely, Migration, MigrationProvider } from 'kysely';

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
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
