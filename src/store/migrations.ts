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
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
