import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { CustosError } from '../core/errors.js';
import { migrationProvider } from './migrations.js';
import type { Database } from './schema.js';
import { startCheckpointer } from './sqlite-checkpointer.js';

/** What differs between backends, as flags callers may read; never branch on a name. */
export interface StoreCapabilities {
  /** Writes from several processes are safe and ordered by the database (PostgreSQL). */
  readonly concurrentWriters: boolean;
}

/** Rows to append, by table, written together in one transaction. */
export type RowBatch = { [T in keyof Database]?: ReadonlyArray<Database[T]> };

export interface Store {
  readonly db: Kysely<Database>;
  readonly url: string;
  readonly capabilities: StoreCapabilities;
  /**
   * Append rows to several tables atomically: all of them or none. This is the audit hot
   * path; SQLite runs it as cached prepared statements, PostgreSQL as multi-row inserts.
   */
  insertMany(batch: RowBatch): Promise<void>;
  close(): Promise<void>;
}

export type StoreLocation =
  | { kind: 'sqlite'; file: string }
  | { kind: 'postgres'; url: string; schema?: string };

/**
 * Parse a storage URL: `sqlite:PATH` (relative to baseDir), `sqlite::memory:`, or
 * `postgres://...` with an optional `?schema=NAME` (the search_path, created if absent).
 */
export function parseStorageUrl(url: string, baseDir = process.cwd()): StoreLocation {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\//, '');
    if (path === '') throw new CustosError('config_invalid', 'storage.url: sqlite URL has no file path');
    return { kind: 'sqlite', file: path === ':memory:' ? path : resolve(baseDir, path) };
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const parsed = new URL(url);
    const schema = parsed.searchParams.get('schema') ?? undefined;
    parsed.searchParams.delete('schema');
    if (schema !== undefined && !/^[a-z_][a-z0-9_]*$/.test(schema)) {
      throw new CustosError('config_invalid', `storage.url: schema "${schema}" must match [a-z_][a-z0-9_]*`);
    }
    return { kind: 'postgres', url: parsed.toString(), ...(schema === undefined ? {} : { schema }) };
  }
  throw new CustosError('config_invalid', `storage.url: "${url}" is neither sqlite:PATH nor postgres://...`, {
    detail: { fix: 'use sqlite:./.custos/custos.db or postgres://user@host:5432/db' },
  });
}

// bigint columns hold millisecond times and sequence numbers, well inside 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

/** Open the store the URL names and bring its schema up to date. */
export async function openStore(url: string, baseDir?: string): Promise<Store> {
  const location = parseStorageUrl(url, baseDir);
  let db: Kysely<Database>;
  let capabilities: StoreCapabilities;
  let insertMany: Store['insertMany'];
  let stopCheckpointer = async () => {};
  if (location.kind === 'sqlite') {
    if (location.file !== ':memory:') mkdirSync(dirname(location.file), { recursive: true });
    const sqlite = new SqliteDatabase(location.file);
    // WAL with synchronous=NORMAL: a committed transaction survives a crash of this process.
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('busy_timeout = 5000');
    // 64 MiB of page cache (default 2 MiB): appends touch a page per task and agent in the indexes.
    sqlite.pragma('cache_size = -65536');
    sqlite.pragma('foreign_keys = ON');
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    capabilities = { concurrentWriters: false };
    const append = sqliteInsertMany(sqlite, db);
    insertMany = append;
    if (location.file !== ':memory:') {
      const file = location.file;
      // Only a process that appends needs the WAL copied out of its way; readers (the CLI) never start one.
      insertMany = (batch) => {
        const checkpointer = startCheckpointer(file);
        // The writer's own checkpoint becomes a backstop for a checkpointer that falls behind
        // (40 MB of WAL instead of 4 MB), so it no longer runs after nearly every batch.
        sqlite.pragma('wal_autocheckpoint = 10000');
        stopCheckpointer = () => checkpointer.stop();
        insertMany = append;
        return append(batch);
      };
    }
  } else {
    if (location.schema !== undefined) {
      const admin = new pg.Client({ connectionString: location.url });
      try {
        await admin.connect();
        await admin.query(`CREATE SCHEMA IF NOT EXISTS ${location.schema}`);
      } catch (error) {
        throw new CustosError('store_unavailable', `PostgreSQL at ${redact(location.url)} did not answer`, {
          cause: error,
        });
      } finally {
        await admin.end().catch(() => {});
      }
    }
    const pool = new pg.Pool({
      connectionString: location.url,
      max: 10,
      ...(location.schema === undefined ? {} : { options: `-c search_path=${location.schema}` }),
    });
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    capabilities = { concurrentWriters: true };
    const kysely = db;
    insertMany = (batch) => kyselyInsertMany(kysely, batch);
  }
  try {
    // Kysely finds its migration tables in any schema unless told which: name ours, or a schema
    // created beside another one would skip creating them and fail.
    const { error } = await new Migrator({
      db,
      provider: migrationProvider,
      ...(location.kind === 'postgres' && location.schema !== undefined
        ? { migrationTableSchema: location.schema }
        : {}),
    }).migrateToLatest();
    if (error) throw error;
  } catch (error) {
    await db.destroy();
    throw new CustosError('store_unavailable', `could not prepare the store at ${redact(url)}`, {
      cause: error,
    });
  }
  return {
    db,
    url,
    capabilities,
    insertMany: (batch) => insertMany(batch),
    close: async () => {
      await stopCheckpointer();
      await db.destroy();
    },
  };
}

// SQLite allows 32,766 bound values per statement; stay well below it.
const maxValuesPerStatement = 10_000;

function entriesOf(batch: RowBatch): Array<[string, ReadonlyArray<Record<string, unknown>>]> {
  return Object.entries(batch) as unknown as Array<[string, ReadonlyArray<Record<string, unknown>>]>;
}

async function kyselyInsertMany(db: Kysely<Database>, batch: RowBatch): Promise<void> {
  await db.transaction().execute(async (trx) => {
    for (const [table, rows] of entriesOf(batch) as Array<
      [keyof Database, ReadonlyArray<Record<string, unknown>>]
    >) {
      if (rows.length === 0) continue;
      const perStatement = Math.max(1, Math.floor(maxValuesPerStatement / Object.keys(rows[0] ?? {}).length));
      for (let i = 0; i < rows.length; i += perStatement) {
        // Rows are typed by RowBatch; Kysely cannot follow the table through a variable.
        await trx
          .insertInto(table)
          .values(rows.slice(i, i + perStatement) as never)
          .execute();
      }
    }
  });
}

/**
 * One prepared single-row INSERT per table and column set, reused; the batch runs in one
 * transaction. It holds Kysely's connection while it runs: SQLite has one connection, and
 * a batch run while a Kysely transaction is open between two of its awaits would become a
 * savepoint inside it, committed (and durable) only when that other transaction commits.
 */
function sqliteInsertMany(sqlite: SqliteDatabase.Database, db: Kysely<Database>): Store['insertMany'] {
  const statements = new Map<string, SqliteDatabase.Statement>();
  const statementFor = (table: string, columns: string[]) => {
    const key = `${table}(${columns.join(',')})`;
    let statement = statements.get(key);
    if (statement === undefined) {
      const names = columns.map((c) => `"${c}"`).join(', ');
      // Positional parameters: binding an array is cheaper than looking up named ones.
      const params = columns.map(() => '?').join(', ');
      statement = sqlite.prepare(`INSERT INTO "${table}" (${names}) VALUES (${params})`);
      statements.set(key, statement);
    }
    return statement;
  };
  const run = sqlite.transaction((batch: RowBatch) => {
    for (const [table, rows] of entriesOf(batch)) {
      let columns: string[] = [];
      let statement: SqliteDatabase.Statement | undefined;
      for (const row of rows) {
        const keys = Object.keys(row);
        // Rows of one table nearly always share a shape: look the statement up only when it changes.
        if (statement === undefined || !sameColumns(keys, columns)) {
          columns = keys;
          statement = statementFor(table, keys);
        }
        // Object.values follows Object.keys, which chose the statement.
        statement.run(Object.values(row));
      }
    }
  });
  return (batch) =>
    db.connection().execute(async () => {
      run(batch);
    });
}

function sameColumns(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A storage URL without its password, for messages. */
export function redact(url: string): string {
  return url.replace(/(\/\/[^:/@]+):[^@]*@/, '$1:***@');
}
