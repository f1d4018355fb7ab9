import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import { CustosError } from '../src/core/errors.js';
import { IdGenerator } from '../src/core/ids.js';
import { AgentDirectory, AgentService, createIdentityService } from '../src/identity/index.js';
import { openStore, type Store } from '../src/store/index.js';
import { describeEachStore } from './support/stores.js';

/** A store whose every UPDATE of agent_credentials fails, as if the database broke mid-transaction. */
function failingCredentialUpdates(store: Store): Store {
  const db = store.db.withPlugin({
    transformQuery(args) {
      const node = args.node;
      if (node.kind === 'UpdateQueryNode' && JSON.stringify(node.table).includes('"agent_credentials"')) {
        throw new Error('injected failure: agent_credentials update');
      }
      return node;
    },
    async transformResult(args) {
      return args.result;
    },
  });
  return { ...store, db };
}

function services(store: Store, clock = new ManualClock()) {
  const directory = new AgentDirectory(store);
  return {
    clock,
    directory,
    agents: new AgentService({ store, clock, ids: new IdGenerator(clock), directory }),
  };
}

let counter = 0;
function uniqueName(): string {
  counter += 1;
  return `agent-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

await describeEachStore('store_contract', (current) => {
  it('applies migrations idempotently when opened twice', async () => {
    const { url, store } = current();
    const again = await openStore(url);
    try {
      const first = await store.db.introspection.getTables();
      const second = await again.db.introspection.getTables();
      const names = (tables: typeof first) => tables.map((t) => t.name).sort();
      expect(names(second)).toEqual(names(first));
      expect(names(first)).toEqual(
        expect.arrayContaining(['agents', 'agent_credentials', 'signing_keys', 'tasks']),
      );
      const tasks = second.find((t) => t.name === 'tasks');
      expect(tasks?.columns.map((c) => c.name)).toContain('parent_id');
    } finally {
      await again.close();
    }
  });

  it('migrates a store next to another one in the same database (PostgreSQL schemas)', async () => {
    const { kind, url } = current();
    // The suite's schema already has migration tables; a fresh schema beside it must get its own.
    const beside = kind === 'postgres' ? url.replace(/schema=([a-z0-9_]+)/, 'schema=$1_beside') : url;
    const other = await openStore(beside);
    try {
      const tables = (await other.db.introspection.getTables()).map((t) => t.name);
      expect(tables).toContain('audit_events');
    } finally {
      await other.close();
      if (kind === 'postgres') {
        await sql`drop schema if exists ${sql.raw(new URL(beside).searchParams.get('schema')!)} cascade`.execute(
          current().store.db,
        );
      }
    }
  });

  it('appends rows to several tables at once, and none of them when one row fails', async () => {
    const { store } = current();
    const event = (seq: number, id: string) => ({
      seq,
      id,
      time: 1_800_000_000_000 + seq,
      agent_id: 'agt_x',
      owner: 'o@example.com',
      task_id: null,
      method: 'tools/call',
      server: 's',
      target: 't',
      args_hash: 'h',
      effect: 'allow',
      policy_ids: '[]',
      reasons: '[]',
      outcome: 'executed',
      error_code: null,
      latency_us: 5,
      trace_id: null,
    });
    const content = (id: string) => ({ event_id: id, arguments: '{}', reasoning: null, result: null });
    await store.insertMany({
      audit_events: [event(1, 'evt_a'), event(2, 'evt_b')],
      audit_content: [content('evt_a')],
    });
    // evt_a again violates the unique id: the whole batch, content included, must be absent.
    await expect(
      store.insertMany({
        audit_events: [event(3, 'evt_c'), event(4, 'evt_a')],
        audit_content: [content('evt_c')],
      }),
    ).rejects.toThrow();
    const seqs = await store.db.selectFrom('audit_events').select('seq').orderBy('seq').execute();
    expect(seqs.map((r) => Number(r.seq))).toEqual([1, 2]);
    const contents = await store.db.selectFrom('audit_content').select('event_id').execute();
    expect(contents.map((r) => r.event_id)).toEqual(['evt_a']);
    const time = await store.db
      .selectFrom('audit_events')
      .select('time')
      .where('id', '=', 'evt_b')
      .executeTakeFirst();
    expect(time?.time).toBe(1_800_000_000_002);
  });

  it('round-trips an agent through add, get and list with integer times', async () => {
    const { store } = current();
    const { agents, clock } = services(store);
    const name = uniqueName();
    const expiresAt = clock.now() + 86_400_000;
    const { agent } = await agents.add({
      name,
      owner: 'alice@example.com',
      purpose: 'round trip',
      expiresAt,
    });
    const read = await agents.get(name);
    expect(read).toEqual(agent);
    expect(read?.createdAt).toBe(clock.now());
    expect(read?.expiresAt).toBe(expiresAt);
    const row = await store.db
      .selectFrom('agents')
      .selectAll()
      .where('name', '=', name)
      .executeTakeFirstOrThrow();
    for (const value of [row.created_at, row.updated_at, row.expires_at, row.epoch]) {
      expect(Number.isInteger(value)).toBe(true);
    }
    const listed = await agents.list({ owner: 'alice@example.com' });
    expect(listed.find((a) => a.name === name)).toEqual(agent);
  });

  it('rolls the offboard transaction back fully when a step fails', async () => {
    const { store } = current();
    const { agents, directory } = services(store);
    const name = uniqueName();
    const { agent } = await agents.add({ name, owner: 'alice@example.com', purpose: 'rollback' });
    const broken = new AgentService({
      store: failingCredentialUpdates(store),
      clock: new ManualClock(),
      ids: new IdGenerator(new ManualClock()),
      directory,
    });
    await expect(broken.offboard(agent.id)).rejects.toThrow(/injected failure/);
    const after = await agents.get(agent.id);
    expect(after).toMatchObject({ status: 'active', epoch: 0 });
    expect(directory.get(agent.id)).toMatchObject({ status: 'active', epoch: 0 });
    const credentials = await agents.listCredentials(agent.id);
    expect(credentials.map((c) => c.revokedAt)).toEqual([null]);
    // The same offboarding on a healthy store goes through.
    expect(await agents.offboard(agent.id)).toMatchObject({ status: 'offboarded', epoch: 1 });
  });

  it('reports a duplicate agent name with the stable code conflict', async () => {
    const { store } = current();
    const { agents } = services(store);
    const name = uniqueName();
    await agents.add({ name, owner: 'alice@example.com', purpose: 'first' });
    const error = await agents
      .add({ name, owner: 'bob@example.com', purpose: 'second' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CustosError);
    expect((error as CustosError).code).toBe('conflict');
    // The database's own unique index backs the check, whichever writer gets there first.
    const raw = await store.db
      .insertInto('agents')
      .values({
        id: 'agt_duplicate',
        name,
        owner: 'x@example.com',
        purpose: 'raw',
        environment: 'development',
        status: 'active',
        epoch: 0,
        created_at: 1,
        updated_at: 1,
        expires_at: null,
        require_dpop: 0,
      })
      .execute()
      .then(
        () => 'inserted',
        () => 'refused',
      );
    expect(raw).toBe('refused');
  });

  it('gives exactly one of two concurrent adds of a name the conflict code', async () => {
    const { store } = current();
    const first = services(store).agents;
    const second = services(store).agents;
    const name = uniqueName();
    const results = await Promise.allSettled([
      first.add({ name, owner: 'alice@example.com', purpose: 'race' }),
      second.add({ name, owner: 'bob@example.com', purpose: 'race' }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected');
    expect(lost?.reason).toBeInstanceOf(CustosError);
    expect((lost?.reason as CustosError | undefined)?.code).toBe('conflict');
  });

  it('keeps one signing key across starts and persists task rows', async () => {
    const { store } = current();
    const clock = new ManualClock();
    const options = {
      store,
      clock,
      ids: new IdGenerator(clock),
      issuer: 'http://x',
      audience: 'http://x/mcp',
    };
    const first = await createIdentityService(options);
    const second = await createIdentityService(options);
    expect(second.jwks()).toEqual(first.jwks());
    const { clientId, clientSecret } = await first.agents.add({
      name: uniqueName(),
      owner: 'alice@example.com',
      purpose: 'tasks',
    });
    const token = await first.handleTokenRequest({
      grant_type: 'client_credentials',
      client_id: clientId,
      client_secret: clientSecret as string,
    });
    if ('status' in token) throw new Error(JSON.stringify(token.body));
    // Another process (second) verifies a token the first issued for an agent it has not loaded.
    expect((await second.verifyAccessToken(token.access_token)).agentId).toBe(clientId);
    const exchanged = await second.handleTokenRequest({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: token.access_token,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      scope: 'server:files',
      task_purpose: 'contract',
      task_budget: '3',
    });
    if ('status' in exchanged) throw new Error(JSON.stringify(exchanged.body));
    const row = await store.db
      .selectFrom('tasks')
      .selectAll()
      .where('agent_id', '=', clientId)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({ servers: '["files"]', tools: '[]', budget: 3, parent_id: null });
    expect(Number.isInteger(row.expires_at)).toBe(true);
  });
});
