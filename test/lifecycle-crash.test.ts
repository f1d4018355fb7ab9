import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ApprovalService } from '../src/approvals/index.js';
import { AuditRecorder, listEvents, TransparencyLog, verifyLive } from '../src/audit/index.js';
import { systemClock } from '../src/core/clock.js';
import { buildConfig } from '../src/core/config.js';
import { IdGenerator } from '../src/core/ids.js';
import { AgentService } from '../src/identity/index.js';
import { openStore } from '../src/store/index.js';
import { BindingService, Vault } from '../src/vault/index.js';
import { bin, ensureBuilt, runCli } from './support/cli.js';
import { postgresUnavailable, postgresUrl } from './support/stores.js';

const children = new Set<ChildProcess>();

/** Run the CLI as users do, in a child process. */
function custos(args: string[], env: Record<string, string> = {}) {
  return runCli(args, { cwd: tmpdir(), env });
}

/**
 * Start `custos agent offboard` with the test pause at `point`, wait until it says it is
 * paused inside the transaction, and kill it with SIGKILL.
 */
function offboardAndKill(args: string[], point: string): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: tmpdir(),
      env: { ...process.env, CUSTOS_LOG_LEVEL: 'warn', CUSTOS_TEST_OFFBOARD_PAUSE: point },
    });
    children.add(child);
    let output = '';
    const timer = setTimeout(() => fail(new Error(`never paused at ${point}:\n${output}`)), 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk;
      if (output.includes(`paused inside the offboarding transaction at ${point}`)) child.kill('SIGKILL');
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      if (signal === 'SIGKILL') done(output);
      else fail(new Error(`exited with ${code} instead of being killed:\n${output}`));
    });
  });
}

afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
});

const pgProblem = await postgresUnavailable();
if (pgProblem !== undefined) {
  console.warn(`[lifecycle-crash] skipping PostgreSQL: ${postgresUrl} is unreachable (${pgProblem})`);
}

for (const kind of ['sqlite', 'postgres'] as const) {
  describe.skipIf(kind === 'postgres' && pgProblem !== undefined)(
    `offboarding killed mid-transaction [${kind}]`,
    () => {
      let dir: string;
      let configFile: string;
      let url: string;
      let schema: string | undefined;
      let agentId: string;
      let approvalId: string;
      const cli = (...args: string[]) => ['--config', configFile, '--data', join(dir, 'data'), ...args];

      beforeAll(async () => {
        ensureBuilt();
        dir = mkdtempSync(join(tmpdir(), 'custos-lifecycle-crash-'));
        mkdirSync(join(dir, 'policies'));
        if (kind === 'sqlite') url = `sqlite:${join(dir, 'data', 'custos.db')}`;
        else {
          schema = `t_lcrash_${randomBytes(4).toString('hex')}`;
          url = `${postgresUrl}?schema=${schema}`;
        }
        configFile = join(dir, 'custos.yaml');
        writeFileSync(
          configFile,
          stringify({
            storage: { url },
            policies: './policies',
            approvals: {
              holdSeconds: 0,
              tiers: { money: { approvers: ['alice@example.com'], ttlSeconds: 3600 } },
            },
          }),
        );
        const added = await custos(
          cli('agent', 'add', 'crashy', '--owner', 'bob@example.com', '--purpose', 'crash tests', '--json'),
        );
        expect(added.code, added.stderr).toBe(0);
        agentId = (JSON.parse(added.stdout) as { clientId: string }).clientId;

        // A second credential and a pending approval, made the ordinary way.
        const store = await openStore(url);
        try {
          const ids = new IdGenerator(systemClock);
          await new AgentService({ store, clock: systemClock, ids }).addCredential(agentId, {
            kind: 'client_secret',
          });
          const log = await TransparencyLog.open(store, { clock: systemClock });
          const recorder = new AuditRecorder(store, log, ids, { commitDelayMs: 0 });
          const approvals = new ApprovalService({
            store,
            clock: systemClock,
            ids,
            config: buildConfig(
              { approvals: { tiers: { money: { approvers: ['alice@example.com'] } } } },
              dir,
              {
                env: {},
              },
            ).approvals,
            audit: recorder,
            annotationsOf: () => ({ approval: 'money' }),
          });
          const gate = await approvals.gate(
            {
              agent: { id: agentId, name: 'crashy', owner: 'bob@example.com' },
              task: null,
              server: 'bank',
              tool: 'transfer',
              arguments: { amount: 1 },
              reasoning: null,
              policyIds: ['p'],
            },
            ['money'],
          );
          if (gate.kind !== 'stop' || gate.code !== 'approval_pending')
            throw new Error('approval not pending');
          approvalId = gate.approval.id as string;
          const vault = await Vault.open({ store, clock: systemClock, dataDir: join(dir, 'data') });
          await vault.set('bank-token', 'crash-test-secret');
          await new BindingService({ store, vault, clock: systemClock, ids }).bind({
            secret: 'bank-token',
            targetKind: 'server',
            target: 'bank',
            agentId,
            inject: 'header',
            field: 'Authorization',
          });
          await recorder.close();
          await log.close();
        } finally {
          await store.close();
        }
      }, 240_000);

      afterAll(async () => {
        rmSync(dir, { recursive: true, force: true });
        if (schema !== undefined) {
          const client = new pg.Client({ connectionString: postgresUrl });
          await client.connect();
          await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
          await client.end();
        }
      });

      /** What offboarding touches, read from the store after a restart. */
      async function state() {
        const store = await openStore(url);
        try {
          const agent = await store.db
            .selectFrom('agents')
            .selectAll()
            .where('id', '=', agentId)
            .executeTakeFirstOrThrow();
          const credentials = await store.db
            .selectFrom('agent_credentials')
            .select(['id', 'secret_hash', 'revoked_at'])
            .where('agent_id', '=', agentId)
            .execute();
          const approval = await store.db
            .selectFrom('approvals')
            .select('status')
            .where('id', '=', approvalId)
            .executeTakeFirstOrThrow();
          const bindings = await store.db
            .selectFrom('vault_bindings')
            .select('id')
            .where('agent_id', '=', agentId)
            .execute();
          const events = (await listEvents(store, { agentId, limit: 1000 })).filter(
            (e) => e.method === 'agents/offboard',
          );
          const log = await TransparencyLog.open(store, { clock: systemClock, readOnly: true });
          const verified = await verifyLive(store, log);
          await log.close();
          return {
            status: agent.status,
            epoch: Number(agent.epoch),
            // Credentials that could still authenticate: secret material present, not revoked.
            credentials: credentials.filter((c) => c.secret_hash !== null && c.revoked_at === null).length,
            erased: credentials.filter((c) => c.secret_hash === null).length,
            approval: approval.status,
            bindings: bindings.length,
            offboardEvents: events.length,
            verified: verified.ok,
          };
        } finally {
          await store.close();
        }
      }

      const none = {
        status: 'active',
        epoch: 0,
        credentials: 2,
        erased: 0,
        approval: 'pending',
        bindings: 1,
        offboardEvents: 0,
        verified: true,
      };

      for (const point of ['epoch', 'credentials', 'approvals', 'vault', 'before-commit']) {
        it(`a SIGKILL at ${point} leaves none of it`, async () => {
          const output = await offboardAndKill(cli('agent', 'offboard', 'crashy'), point);
          expect(output).toContain(`at ${point}`);
          expect(await state()).toEqual(none);
        }, 120_000);
      }

      it('an offboarding that runs to the end leaves all of it, with one event', async () => {
        const result = await custos(cli('agent', 'offboard', 'crashy', '--json'));
        expect(result.code, result.stderr).toBe(0);
        expect(JSON.parse(result.stdout)).toMatchObject({
          changed: true,
          credentialsErased: 2,
          steps: { approvals: { cancelled: [approvalId] }, vault: { bindingsDeleted: 1 } },
        });
        expect(await state()).toEqual({
          status: 'offboarded',
          epoch: 1,
          credentials: 0,
          erased: 2,
          approval: 'cancelled',
          bindings: 0,
          offboardEvents: 1,
          verified: true,
        });
        const verify = await custos(cli('audit', 'verify', '--live', '--json'));
        expect(verify.code, verify.stdout + verify.stderr).toBe(0);
      }, 120_000);
    },
  );
}
