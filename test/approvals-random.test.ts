import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../src/core/canonical.js';
import { type AgentClient, connectAgent, type ToolResult } from './support/agents.js';
import { countedCalls } from './support/counting.js';
import { startTestCustos, type TestCustos } from './support/custos.js';

const countingEntry = resolve('test/support/counting-server.mjs');

const policies = {
  'approvals.cedar': `
permit (principal, action == Action::"list_tools", resource);

@id("fuzz:transfer")
@approval("fuzz")
permit (principal, action == Action::"call_tool", resource);
`,
};

/** A seeded generator, so a failure can be replayed (the seed is printed). */
function random(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Args = Record<string, unknown>;

describe('randomized: no call runs without an approval of exactly its arguments', () => {
  let t: TestCustos;
  let countFile: string;
  let agent: AgentClient;
  let otherAgent: AgentClient;
  let taskAgent: AgentClient;

  beforeAll(async () => {
    countFile = join(tmpdir(), `custos-fuzz-${process.pid}-${Date.now()}.jsonl`);
    t = await startTestCustos({
      servers: { bank: { command: process.execPath, args: [countingEntry], env: { COUNT_FILE: countFile } } },
      policies,
      agents: [{ name: 'fuzz' }, { name: 'fuzz2' }],
      extra: {
        approvals: { holdSeconds: 0, tiers: { fuzz: { ttlSeconds: 600 } } },
        // A thousand pending and denied calls in a second is exactly what the runaway detectors
        // exist to stop; this test is about approval binding, so they are off here.
        detect: {
          ceiling: { action: 'off' },
          anomaly: { action: 'off' },
          denials: { action: 'off' },
          loop: { action: 'off' },
          bytes: { action: 'off' },
        },
      },
    });
    agent = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('fuzz'));
    otherAgent = await connectAgent('sdk2-legacy', `${t.url}/mcp`, await t.token('fuzz2'));
    // The same agent working on a task: its calls are other calls.
    const taskToken = await t.taskToken(await t.token('fuzz'), {
      scope: 'server:bank',
      task_purpose: 'fuzzing',
    });
    taskAgent = await connectAgent('sdk2-legacy', `${t.url}/mcp`, taskToken);
  }, 60_000);

  afterAll(async () => {
    await agent?.close().catch(() => {});
    await otherAgent?.close().catch(() => {});
    await taskAgent?.close().catch(() => {});
    await t?.close();
  });

  it('over 1,000 calls with mutated arguments, executions at the upstream are exactly the approved calls, once each', async () => {
    const seed = Number(process.env.CUSTOS_FUZZ_SEED ?? Date.now() % 1_000_000);
    console.log(`approvals fuzz seed ${seed} (CUSTOS_FUZZ_SEED to replay)`);
    const rand = random(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;
    const word = () => Math.floor(rand() * 36 ** 4).toString(36);

    const base = (i: number): Args => ({
      amount: Math.floor(rand() * 10_000),
      to: `acct-${word()}`,
      memo: { note: `invoice ${i} café`, tags: [word(), word()], urgent: rand() < 0.5 },
      ...(rand() < 0.5 ? { currency: pick(['EUR', 'USD', 'CHF']) } : {}),
    });

    /** Argument changes that make a different call. */
    const mutations: Array<(a: Args) => Args> = [
      (a) => ({ ...a, amount: (a.amount as number) + pick([1, -1, 1000]) }),
      (a) => ({ ...a, amount: String(a.amount) }),
      (a) => ({ ...a, amount: (a.amount as number) + 0.5 }),
      (a) => ({ ...a, to: `${a.to}x` }),
      (a) => ({ ...a, to: (a.to as string).toUpperCase() }),
      (a) => ({ ...a, extra: true }),
      (a) => {
        const { memo: _, ...rest } = a;
        return rest;
      },
      (a) => ({ ...a, memo: { ...(a.memo as Args), urgent: !(a.memo as Args).urgent } }),
      (a) => ({
        ...a,
        memo: { ...(a.memo as Args), tags: [...((a.memo as Args).tags as string[])].reverse() },
      }),
      (a) => ({
        ...a,
        memo: { ...(a.memo as Args), note: ((a.memo as Args).note as string).normalize('NFD') },
      }),
      (a) => ({ ...a, memo: { ...(a.memo as Args), note: `${(a.memo as Args).note} ` } }),
      (a) => ({ ...a, memo: null }),
      (a) => ({ ...a, currency: a.currency === undefined ? 'EUR' : undefined }),
    ];
    /** Rewritings that keep the same call (RFC 8785 makes them one): key order. */
    const sameCall = (a: Args): Args => {
      const memo = a.memo as Args;
      const reordered: Args = {};
      for (const key of Object.keys(a).reverse())
        reordered[key] = key === 'memo' ? { tags: memo.tags, urgent: memo.urgent, note: memo.note } : a[key];
      return reordered;
    };

    const expected: string[] = [];
    let calls = 0;
    const outcomes = { executed: 0, pending: 0 };
    const call = async (client: AgentClient, tool: string, args: Args): Promise<ToolResult> => {
      calls += 1;
      const result = await client.callTool(tool, JSON.parse(JSON.stringify(args)) as Args);
      if (result.isError) outcomes.pending += 1;
      else outcomes.executed += 1;
      return result;
    };
    const pendingId = (result: ToolResult): string => {
      const meta = result._meta?.['io.custos/approval'] as { id?: string; status?: string } | undefined;
      expect(meta?.status).toBe('pending');
      return meta?.id as string;
    };

    for (let i = 0; calls < 1000; i++) {
      const args = base(i);
      const id = pendingId(await call(agent, 'transfer', args));
      await t.admin(`/api/v1/approvals/${id}/approve`, { method: 'POST', body: {} });
      // Mutated calls, another agent, another tool, another task, in random order around the one real retry.
      const attempts: Array<{ client: AgentClient; tool: string; args: Args; runs: boolean }> = [];
      const mutated = 1 + Math.floor(rand() * 3);
      for (let m = 0; m < mutated; m++) {
        const changed = pick(mutations)(args);
        if (canonicalJson(JSON.parse(JSON.stringify(changed))) === canonicalJson(args)) continue;
        attempts.push({ client: agent, tool: 'transfer', args: changed, runs: false });
      }
      if (rand() < 0.3) attempts.push({ client: otherAgent, tool: 'transfer', args, runs: false });
      if (rand() < 0.2) attempts.push({ client: agent, tool: 'note', args, runs: false });
      if (rand() < 0.2) attempts.push({ client: taskAgent, tool: 'transfer', args, runs: false });
      attempts.splice(Math.floor(rand() * (attempts.length + 1)), 0, {
        client: agent,
        tool: 'transfer',
        args: rand() < 0.5 ? sameCall(args) : args,
        runs: true,
      });
      for (const attempt of attempts) {
        const result = await call(attempt.client, attempt.tool, attempt.args);
        expect(!result.isError, `call ${calls}: ${JSON.stringify(attempt.args)}`).toBe(attempt.runs);
        // Held back by the approval stage itself (not by scope or policy): it reached approve and found no match.
        if (!attempt.runs) pendingId(result);
        if (attempt.runs) expected.push(canonicalJson({ tool: 'transfer', arguments: args }));
      }
      // A replay of the approved call after it ran.
      if (rand() < 0.3) {
        const replay = await call(agent, 'transfer', args);
        expect(replay.isError).toBe(true);
      }
    }

    const executed = countedCalls(countFile).map((call) => canonicalJson(call));
    console.log(
      `approvals fuzz: ${calls} calls, ${outcomes.executed} executed, ${outcomes.pending} held back`,
    );
    expect(calls).toBeGreaterThanOrEqual(1000);
    expect(executed.sort()).toEqual(expected.sort());
  }, 600_000);
});
