import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { buildConfig, type DetectConfig } from '../core/config.js';
import { IdGenerator } from '../core/ids.js';
import type { CallContext } from '../gateway/index.js';
import { openStore, type Store } from '../store/index.js';
import { DetectService } from './service.js';
import { callContext, executed, policyDenied, principal } from './test-support.js';

function detectConfig(detect: Record<string, unknown> = {}): DetectConfig {
  return buildConfig({ detect }, '/tmp').detect;
}

/** Deterministic pseudo-random numbers (mulberry32), so the replay is the same every run. */
function random(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

describe('inline detectors and containment', () => {
  let dir: string;
  let store: Store;
  let clock: ManualClock;
  const epochs = new Map<string, number>();
  const agents = {
    get: async (ref: string) => ({ id: ref, name: ref, status: 'active', epoch: epochs.get(ref) ?? 0 }),
    revokeTokens: async (ref: string) => {
      epochs.set(ref, (epochs.get(ref) ?? 0) + 1);
      return { epoch: epochs.get(ref) ?? 0 };
    },
  };

  async function service(detect: Record<string, unknown> = {}) {
    return DetectService.open({
      store,
      clock,
      ids: new IdGenerator(clock),
      config: detectConfig(detect),
      agents,
    });
  }

  /** One call through contain and detect as the pipeline runs them; the verdict's code or "ok". */
  function run(detect: DetectService, ctx: CallContext, outcome = executed): string {
    const contained = detect.contain(ctx);
    if (contained.stop) return contained.code;
    const verdict = detect.detect(ctx);
    if (verdict.stop) {
      detect.finish(ctx, { kind: 'denied', stop: verdict, policyIds: [] });
      return verdict.code;
    }
    detect.finish(ctx, outcome);
    return 'ok';
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'custos-detect-'));
    store = await openStore(`sqlite:${join(dir, 'custos.db')}`);
    clock = new ManualClock(Date.parse('2026-03-02T10:00:00Z'));
    epochs.clear();
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lets ten minutes of replayed normal traffic at varying rates through without a quarantine or throttle', async () => {
    const detect = await service();
    const rand = random(42);
    const bot = principal('agt_normal', 'normal-bot');
    const tools = ['search', 'read', 'write', 'list', 'summarize', 'status'];
    const end = clock.now() + 10 * 60_000;
    let calls = 0;
    const refused: string[] = [];
    while (clock.now() < end) {
      const minute = Math.floor((end - clock.now()) / 60_000);
      // Phases: quiet (0.2/s), steady (2/s), busy (8/s), polling status every 1.5 s.
      const phase = minute % 4;
      if (phase === 3) {
        clock.advance(1500);
        const verdict = run(detect, callContext(bot, clock.now(), 'ops', 'status', 'same'));
        if (verdict !== 'ok') refused.push(verdict);
        calls += 1;
        continue;
      }
      const rate = phase === 0 ? 0.2 : phase === 1 ? 2 : 8;
      clock.advance(Math.max(1, Math.round((-Math.log(1 - rand()) / rate) * 1000)));
      // Now and then a fan-out: 15 calls at once.
      const fanOut = rand() < 0.01 ? 15 : 1;
      for (let i = 0; i < fanOut; i++) {
        const tool = tools[Math.floor(rand() * tools.length)] as string;
        const big = rand() < 0.02 ? 200_000 : 200;
        const denied = rand() < 0.03;
        const verdict = run(
          detect,
          callContext(bot, clock.now(), 'work', tool, `arg-${Math.floor(rand() * 1e6)}`, big),
          denied ? policyDenied : executed,
        );
        if (verdict !== 'ok') refused.push(verdict);
        calls += 1;
      }
    }
    await detect.settle();
    expect(calls).toBeGreaterThan(1000);
    expect(refused).toEqual([]);
    expect(detect.containments()).toEqual([]);
    expect(await detect.listIncidents()).toEqual([]);
    // First use of each tool is worth an alert, nothing more.
    const detections = await detect.detections();
    expect(new Set(detections.map((d) => d.action))).toEqual(new Set(['alert']));
  });

  for (const [label, perSecond] of [
    ['4,000 actions per minute', 4000 / 60],
    ['a burst of 1,000 calls per second', 1000],
  ] as const) {
    it(`quarantines a runaway at ${label} within 2 s of onset and refuses its very next call`, async () => {
      const detect = await service();
      const bot = principal('agt_runaway', 'runaway-bot');
      // A minute of normal work first, to give the agent a baseline.
      for (let i = 0; i < 60; i++) {
        clock.advance(1000);
        expect(run(detect, callContext(bot, clock.now(), 'work', 'read', `doc-${i}`))).toBe('ok');
      }
      const onset = clock.now();
      let sent = 0;
      let verdict = 'ok';
      let tick = 0;
      while (verdict === 'ok' && clock.now() - onset < 10_000) {
        tick += 1;
        clock.set(onset + Math.round((tick * 1000) / perSecond));
        verdict = run(detect, callContext(bot, clock.now(), 'work', 'write', `row-${tick}`));
        sent += 1;
      }
      const detectedAfter = clock.now() - onset;
      expect(verdict).toBe('contained');
      expect(detectedAfter).toBeLessThanOrEqual(2000);
      expect(run(detect, callContext(bot, clock.now() + 1, 'work', 'read', 'next'))).toBe('contained');
      await detect.settle();
      const [incident] = await detect.listIncidents();
      expect(incident?.detector).toBe('anomaly');
      expect(incident?.agentId).toBe('agt_runaway');
      expect(epochs.get('agt_runaway')).toBe(1);
      expect(sent).toBeGreaterThan(1);
    });
  }

  it('quarantines a loop: the same call repeated 50 times in a row', async () => {
    const detect = await service({ anomaly: { action: 'off' } });
    const bot = principal('agt_loop', 'loop-bot');
    const verdicts: string[] = [];
    for (let i = 0; i < 60; i++) {
      clock.advance(200);
      verdicts.push(run(detect, callContext(bot, clock.now(), 'work', 'retry', 'same-args')));
    }
    expect(verdicts.indexOf('contained')).toBe(49);
    await detect.settle();
    expect((await detect.listIncidents())[0]?.detector).toBe('loop');
    // Resumed by a human, it starts from fresh readings: the same call once more is fine.
    await detect.resume({ scope: 'agent', target: 'agt_loop', by: 'alice@example.com' });
    expect(run(detect, callContext(bot, clock.now() + 1, 'work', 'retry', 'same-args'))).toBe('ok');
    await detect.settle();
    expect(
      (await detect.detections({ agentId: 'agt_loop' })).filter((d) => d.detector === 'first_use'),
    ).toHaveLength(1);
  });

  it('quarantines a spike in bytes sent out against the agent’s baseline', async () => {
    const detect = await service();
    const bot = principal('agt_exfil', 'exfil-bot');
    // A baseline of small calls, one a second for five minutes.
    for (let i = 0; i < 300; i++) {
      clock.advance(1000);
      expect(run(detect, callContext(bot, clock.now(), 'web', 'post', `small-${i}`, 300))).toBe('ok');
    }
    // Then 500 kB uploads, five a second (2.5 MB/s): the 10 s average passes 1 MB/s after about 6 s.
    const verdicts: string[] = [];
    for (let i = 0; i < 60; i++) {
      clock.advance(200);
      verdicts.push(run(detect, callContext(bot, clock.now(), 'web', 'post', `dump-${i}`, 500_000)));
    }
    const first = verdicts.indexOf('contained');
    expect(first).toBeGreaterThan(20);
    expect(first).toBeLessThan(40);
    await detect.settle();
    expect((await detect.listIncidents())[0]?.detector).toBe('bytes');
  });

  it('quarantines a burst of denials; its own throttling does not count', async () => {
    const detect = await service({ anomaly: { action: 'off' } });
    const bot = principal('agt_probe', 'probe-bot');
    const verdicts: string[] = [];
    for (let i = 0; i < 25; i++) {
      clock.advance(500);
      verdicts.push(run(detect, callContext(bot, clock.now(), 'work', 'secret', `try-${i}`), policyDenied));
    }
    // The 20th denial contains what comes next.
    expect(verdicts.slice(0, 20).every((v) => v === 'ok')).toBe(true);
    expect(verdicts.slice(20).every((v) => v === 'contained')).toBe(true);
  });

  it('throttles above the hard ceiling without quarantining', async () => {
    const detect = await service({ ceiling: { rate: 5, burst: 10 }, anomaly: { action: 'off' } });
    const bot = principal('agt_fast', 'fast-bot');
    const verdicts: string[] = [];
    for (let i = 0; i < 20; i++) verdicts.push(run(detect, callContext(bot, clock.now(), 'w', 't', `a${i}`)));
    expect(verdicts.filter((v) => v === 'ok')).toHaveLength(10);
    expect(verdicts.slice(10).every((v) => v === 'rate_limited')).toBe(true);
    clock.advance(1000);
    expect(run(detect, callContext(bot, clock.now(), 'w', 't', 'later'))).toBe('ok');
    expect(detect.containments()).toEqual([]);
  });

  it('applies per-agent overrides and per-tool ceilings', async () => {
    const detect = await service({
      agents: { strict: { loop: { count: 3 } } },
      tools: { 'bank.transfer': { ceiling: { rate: 1, burst: 2, action: 'throttle' } } },
    });
    const strict = principal('agt_strict', 'strict');
    const other = principal('agt_other', 'other');
    expect(run(detect, callContext(other, clock.now(), 'w', 't', 'x'))).toBe('ok');
    expect(run(detect, callContext(other, clock.now(), 'w', 't', 'x'))).toBe('ok');
    expect(run(detect, callContext(other, clock.now(), 'w', 't', 'x'))).toBe('ok');
    expect(run(detect, callContext(strict, clock.now(), 'w', 't', 'x'))).toBe('ok');
    expect(run(detect, callContext(strict, clock.now(), 'w', 't', 'x'))).toBe('ok');
    expect(run(detect, callContext(strict, clock.now(), 'w', 't', 'x'))).toBe('contained');
    const codes = [1, 2, 3].map((i) =>
      run(detect, callContext(other, clock.now(), 'bank', 'transfer', `p${i}`)),
    );
    expect(codes).toEqual(['ok', 'ok', 'rate_limited']);
  });

  it('runs stricter detectors for one tool, only those its entry names', async () => {
    const detect = await service({
      tools: { 'bank.transfer': { loop: { count: 3 }, denials: { count: 2 } } },
    });
    const bot = principal('agt_bank', 'bank-bot');
    // Identical reads are fine (the agent's loop limit is 50)...
    for (let i = 0; i < 10; i++)
      expect(run(detect, callContext(bot, clock.now() + i, 'bank', 'balance', 'same'))).toBe('ok');
    // ...identical transfers are not.
    const transfers = [0, 1, 2].map((i) =>
      run(detect, callContext(bot, clock.now() + 20 + i, 'bank', 'transfer', 'same')),
    );
    expect(transfers).toEqual(['ok', 'ok', 'contained']);
    await detect.settle();
    expect((await detect.listIncidents())[0]?.trigger.scope).toBe('tool');
    // Two denied transfers by another agent contain it too.
    const other = principal('agt_bank2', 'bank-bot-2');
    run(detect, callContext(other, clock.now() + 100, 'bank', 'transfer', 'a'), policyDenied);
    run(detect, callContext(other, clock.now() + 101, 'bank', 'transfer', 'b'), policyDenied);
    expect(run(detect, callContext(other, clock.now() + 102, 'bank', 'balance', 'c'))).toBe('contained');
  });

  it('quarantines a task rather than its agent when the task runs away', async () => {
    const detect = await service();
    const onTask = principal('agt_t', 'tasked', 'task_1');
    let verdict = 'ok';
    for (let i = 0; verdict === 'ok' && i < 5000; i++) {
      clock.advance(2);
      verdict = run(detect, callContext(onTask, clock.now(), 'w', 't', `a${i}`));
    }
    expect(verdict).toBe('contained');
    expect(detect.containments().map((c) => `${c.scope} ${c.target}`)).toEqual(['task task_1']);
    // The agent's other work goes on.
    expect(
      run(detect, callContext(principal('agt_t', 'tasked'), clock.now() + 5000, 'w', 't', 'other')),
    ).toBe('ok');
    await detect.settle();
    expect(epochs.get('agt_t')).toBeUndefined();
  });

  it('alerts outside working hours', async () => {
    const detect = await service({
      hours: { days: [1, 2, 3, 4, 5], start: '08:00', end: '18:00', timezone: 'Europe/Paris' },
    });
    const bot = principal('agt_h', 'hours-bot');
    clock.set(Date.parse('2026-03-02T10:00:00Z')); // Monday 11:00 in Paris
    run(detect, callContext(bot, clock.now(), 'w', 't', 'a'));
    clock.set(Date.parse('2026-03-07T10:00:00Z')); // Saturday
    expect(run(detect, callContext(bot, clock.now(), 'w', 't', 'b'))).toBe('ok');
    await detect.settle();
    const found = (await detect.detections()).filter((d) => d.detector === 'hours');
    expect(found).toHaveLength(1);
    expect(found[0]?.time).toBe(Date.parse('2026-03-07T10:00:00Z'));
  });

  it('cancels the contained agent’s calls in flight and tells the containment listeners', async () => {
    const detect = await service();
    const heard: string[] = [];
    detect.onContain((e) => {
      heard.push(`${e.containment.scope} ${e.containment.target}`);
    });
    const bot = principal('agt_f', 'flight-bot');
    const other = principal('agt_g', 'other-bot');
    const aborted: string[] = [];
    const inFlight = (p: typeof bot, label: string) => ({
      ...callContext(p, clock.now(), 'w', 't', label),
      abort: (reason: unknown) => aborted.push(`${label}: ${(reason as Error).message}`),
    });
    const mine = inFlight(bot, 'mine');
    const theirs = inFlight(other, 'theirs');
    const done = inFlight(bot, 'done');
    expect(detect.contain(mine).stop).toBe(false);
    expect(detect.contain(theirs).stop).toBe(false);
    expect(detect.contain(done).stop).toBe(false);
    detect.finish(done, executed);
    await detect.kill({ scope: 'agent', target: 'agt_f', actor: 'alice@example.com' });
    expect(aborted).toEqual([
      'mine: this agent is quarantined (killed by alice@example.com); a human must resume it',
    ]);
    expect(heard).toEqual(['agent agt_f']);
    // A call that passed contain before the kill is stopped by the last check before forward.
    expect(detect.admit(mine).stop).toBe(true);
    expect(detect.admit(theirs).stop).toBe(false);
  });

  it('resumes only when the configured number of different humans ask', async () => {
    const detect = await service({ resume: { approvers: 2 } });
    await detect.kill({ scope: 'server', target: 'bank', actor: 'alice@example.com' });
    const call = () => run(detect, callContext(principal('agt_x', 'x'), clock.now(), 'bank', 'pay', 'p'));
    expect(call()).toBe('contained');
    await expect(detect.resume({ scope: 'server', target: 'bank', by: 'admin token' })).rejects.toThrow(
      /named human/,
    );
    const first = await detect.resume({ scope: 'server', target: 'bank', by: 'bob@example.com' });
    expect(first).toMatchObject({ lifted: false, votes: 1, needed: 2 });
    const again = await detect.resume({ scope: 'server', target: 'bank', by: 'bob@example.com' });
    expect(again).toMatchObject({ lifted: false, votes: 1 });
    expect(call()).toBe('contained');
    const second = await detect.resume({ scope: 'server', target: 'bank', by: 'carol@example.com' });
    expect(second).toMatchObject({ lifted: true, votes: 2 });
    expect(call()).toBe('ok');
  });

  it('sees kills made by another process after a refresh, and the global switch stops everyone', async () => {
    const gateway = await service();
    const cli = await service();
    await cli.kill({ scope: 'all', actor: 'alice@example.com' });
    const call = () =>
      run(gateway, callContext(principal('agt_y', 'y'), clock.now(), 'w', 't', `a${Math.random()}`));
    expect(call()).toBe('ok');
    await gateway.refresh();
    expect(call()).toBe('contained');
    await cli.resume({ scope: 'all', by: 'bob@example.com' });
    await gateway.refresh();
    expect(call()).toBe('ok');
  });
});

describe('detect configuration', () => {
  it('has defaults for every key and rejects bad values with the key path', () => {
    const d = buildConfig({}, '/tmp').detect;
    expect(d.anomaly).toMatchObject({ minRate: 30, action: 'quarantine' });
    expect(d.hours).toBeNull();
    expect(() => buildConfig({ detect: { loop: { action: 'explode' } } }, '/tmp')).toThrow(
      /detect\.loop\.action/,
    );
    expect(() => buildConfig({ detect: { tools: { echo: { ceiling: {} } } } }, '/tmp')).toThrow(
      /server\.tool/,
    );
    expect(() => buildConfig({ detect: { hours: { start: '8am' } } }, '/tmp')).toThrow(
      /detect\.hours\.start/,
    );
    expect(() => buildConfig({ detect: { resume: { approvers: 9 } } }, '/tmp')).toThrow(
      /detect\.resume\.approvers/,
    );
    expect(() => buildConfig({ detect: { agents: { a: { loop: { cont: 3 } } } } }, '/tmp')).toThrow(
      /detect\.agents\.a\.loop\.cont/,
    );
  });

  it('applies an agent override only to the keys it names', async () => {
    const config = buildConfig(
      { detect: { loop: { windowSeconds: 120 }, agents: { a: { loop: { count: 3 } } } } },
      '/tmp',
    );
    expect(config.detect.agents.a).toEqual({ loop: { count: 3 } });
  });
});
