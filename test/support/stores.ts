import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';

/** The PostgreSQL server store tests use on this project's machines. */
export const postgresUrl = process.env.CUSTOS_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export type StoreKind = 'sqlite' | 'postgres';

/** One backend under test: its URL (to open a second handle) and the store opened for the suite. */
export interface TestStore {
  readonly kind: StoreKind;
  readonly url: string;
  readonly store: Store;
}

async function probePostgres(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: postgresUrl, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('select 1');
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await client.end().catch(() => {});
  }
}

let postgresProblem: Promise<string | undefined> | undefined;

/** Why PostgreSQL tests cannot run here, or undefined when they can. Probed once per test file. */
export function postgresUnavailable(): Promise<string | undefined> {
  postgresProblem ??= probePostgres();
  return postgresProblem;
}

async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: postgresUrl });
  try {
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Run the same suite against every store: SQLite in a temporary file and PostgreSQL in a
 * schema of its own (unique per call, dropped afterwards). When PostgreSQL is not
 * reachable its suite is skipped and the reason printed, never silently.
 *
 * `label` names the schema (lower-case letters, digits and "_").
 */
export async function describeEachStore(
  label: string,
  suite: (current: () => TestStore) => void,
): Promise<void> {
  const problem = await postgresUnavailable();
  if (problem !== undefined) {
    console.warn(
      `[${label}] skipping the PostgreSQL store tests: ${postgresUrl} is unreachable (${problem})`,
    );
  }
  for (const kind of ['sqlite', 'postgres'] as const) {
    const skip = kind === 'postgres' && problem !== undefined;
    describe.skipIf(skip)(`${label} [${kind}]`, () => {
      let current: TestStore | undefined;
      let cleanup: () => Promise<void> = async () => {};
      beforeAll(async () => {
        let url: string;
        if (kind === 'sqlite') {
          const dir = mkdtempSync(join(tmpdir(), `custos-${label}-`));
          url = `sqlite:${join(dir, 'custos.db')}`;
          cleanup = async () => rmSync(dir, { recursive: true, force: true });
        } else {
          const schema = `t_${label}_${randomBytes(4).toString('hex')}`;
          url = `${postgresUrl}?schema=${schema}`;
          cleanup = () => dropSchema(schema);
        }
        current = { kind, url, store: await openStore(url) };
      });
      afterAll(async () => {
        await current?.store.close();
        await cleanup();
      });
      suite(() => {
        if (current === undefined) throw new Error('the store is not open yet');
        return current;
      });
    });
  }
}
