import { describe, expect, test } from 'vitest';
import { PolicyEngine } from './engine.js';
import { compilePolicySet, type PolicyLoadError } from './load.js';
import { agent, call, monday10, saturday10, sources, tool } from './test-helpers.js';
import type { Decision, DecisionInput, PolicyAction, ResourceKind } from './types.js';

function engineOf(files: Record<string, string>): PolicyEngine {
  return new PolicyEngine(compilePolicySet(sources(files)));
}

const bot = agent('agt_bot');
const readFile = tool('files', 'read_file', { readOnlyHint: true });
const writeFile = tool('files', 'write_file', { readOnlyHint: false, destructiveHint: true });

describe('decisions', () => {
  test('with no policies every request is denied by default', () => {
    const decision = engineOf({}).decide(call(bot, readFile));
    expect(decision).toEqual({
      effect: 'deny',
      policyIds: [],
      errors: [],
      reasons: ['no policy permits call_tool on Tool::"files/read_file" (deny by default)'],
    });
    expect(Object.isFrozen(decision)).toBe(true);
  });

  test('a matching permit allows and is named as the determining policy', () => {
    const engine = engineOf({
      'p.cedar': '@id("files") permit (principal, action, resource in Server::"files");',
    });
    expect(engine.decide(call(bot, readFile))).toMatchObject({
      effect: 'allow',
      policyIds: ['files'],
      errors: [],
    });
    expect(engine.decide(call(bot, tool('other', 'read_file'))).effect).toBe('deny');
  });

  test('forbid beats permit', () => {
    const engine = engineOf({
      'p.cedar': `@id("all") permit (principal, action, resource);
        @id("no-writes") forbid (principal, action, resource) when { context.annotations.destructiveHint };`,
    });
    expect(engine.decide(call(bot, readFile)).effect).toBe('allow');
    expect(engine.decide(call(bot, writeFile))).toMatchObject({
      effect: 'deny',
      policyIds: ['no-writes'],
      reasons: ['forbidden by "no-writes"'],
    });
  });

  test('an evaluation error denies even when a permit is satisfied, and is recorded', () => {
    const engine = engineOf({
      'p.cedar': `@id("all") permit (principal, action, resource);
        @id("overflows") forbid (principal, action, resource)
        when { context.time.epochSeconds * 9223372036854775807 > 0 };`,
    });
    const decision = engine.decide(call(bot, readFile));
    expect(decision.effect).toBe('deny');
    expect(decision.policyIds).toEqual(['overflows']);
    expect(decision.errors[0]).toMatch(/overflows.*overflow/);
    expect(decision.reasons[0]).toMatch(/fail closed/);
    // The unindexed path agrees.
    expect(engine.decideUnindexed(call(bot, readFile))).toEqual(decision);
  });

  test('a mistyped declared argument or non-object arguments deny', () => {
    const engine = engineOf({ 'p.cedar': 'permit (principal, action, resource);' });
    const wrongPath = engine.decide(call(bot, readFile, { path: ['/etc/passwd'] }));
    expect(wrongPath.effect).toBe('deny');
    expect(wrongPath.errors).toEqual(['argument path: expected String, got array']);
    expect(engine.decide(call(bot, readFile, 'rm -rf /')).effect).toBe('deny');
    // Undeclared arguments and JSON null are fine.
    expect(engine.decide(call(bot, readFile, { path: null, encoding: { deep: [1] } })).effect).toBe('allow');
  });

  test('an action applied to the wrong kind of resource is denied', () => {
    const engine = engineOf({ 'p.cedar': 'permit (principal, action, resource);' });
    const input: DecisionInput = { ...call(bot, readFile), action: 'read_resource' };
    expect(engine.decide(input)).toMatchObject({
      effect: 'deny',
      errors: ['action read_resource applies to a resource, not a tool'],
    });
  });

  test('policies can test owner, task, time and argument names', () => {
    const engine = engineOf({
      'p.cedar': `@id("alice-triage") permit (principal in Owner::"alice@example.com", action, resource)
        when { context has task && context.task.purpose == "triage" && context.time.weekday == 1
               && !context.argumentNames.contains("force") };`,
    });
    const withTask = (input: DecisionInput, purpose: string): DecisionInput => ({
      ...input,
      task: { id: 'task_1', purpose },
    });
    expect(engine.decide(withTask(call(bot, readFile), 'triage')).effect).toBe('allow');
    expect(engine.decide(withTask(call(bot, readFile), 'other')).effect).toBe('deny');
    expect(engine.decide(call(bot, readFile)).effect).toBe('deny');
    expect(engine.decide(withTask(call(bot, readFile, {}, saturday10), 'triage')).effect).toBe('deny');
    expect(engine.decide(withTask(call(bot, readFile, { force: true }), 'triage')).effect).toBe('deny');
    expect(
      engine.decide(withTask(call(agent('agt_x', { owner: 'bob@example.com' }), readFile), 'triage')).effect,
    ).toBe('deny');
  });

  test('explain returns the decision with the determining policies and their text', () => {
    const engine = engineOf({
      'a.cedar':
        '// header\n@id("reads")\npermit (principal, action, resource)\nwhen { context.annotations.readOnlyHint };',
      'b.cedar': 'permit (principal == Agent::"agt_other", action, resource);',
    });
    const explanation = engine.explain(call(bot, readFile));
    expect(explanation.decision.effect).toBe('allow');
    expect(explanation.applicable).toEqual(['reads']);
    expect(explanation.policies).toEqual([
      {
        id: 'reads',
        file: 'a.cedar',
        index: 0,
        line: 2,
        effect: 'permit',
        text: '@id("reads")\npermit (principal, action, resource)\nwhen { context.annotations.readOnlyHint };',
      },
    ]);
  });
});

describe('visibility', () => {
  const engine = engineOf({
    'p.cedar': `
      @id("list") permit (principal, action == Action::"list_tools", resource == Server::"files");
      @id("read") permit (principal, action == Action::"call_tool", resource in Server::"files")
        when { context.annotations.readOnlyHint };
      @id("sandboxed-writes") permit (principal == Agent::"agt_writer", action == Action::"call_tool", resource == Tool::"files/write_file")
        when { context.arguments has path && context.arguments.path like "/sandbox/*" };
      @id("office-hours") forbid (principal, action, resource == Tool::"files/write_file")
        unless { context.time.hour >= 8 && context.time.hour < 18 };
      @id("never-move") forbid (principal, action, resource == Tool::"files/move_file");
      @id("other-server") permit (principal, action == Action::"call_tool", resource in Server::"other");
    `,
  });
  const writer = agent('agt_writer');

  test('a tool is visible when some call of it could be allowed', () => {
    expect(engine.canSee(bot, undefined, readFile)).toBe(true);
    // Depends on arguments and time, both unknown when listing: visible.
    expect(engine.canSee(writer, undefined, writeFile)).toBe(true);
  });

  test('a tool no call could use is hidden', () => {
    expect(engine.canSee(bot, undefined, writeFile)).toBe(false);
    expect(engine.canSee(writer, undefined, tool('files', 'move_file', { readOnlyHint: true }))).toBe(false);
  });

  test('tools of a server the agent may not list are hidden', () => {
    expect(engine.canSee(bot, undefined, tool('other', 'anything', { readOnlyHint: true }))).toBe(false);
  });

  test('visibility never hides a tool some call could use (randomized check)', () => {
    const paths = ['/sandbox/a', '/etc/passwd', undefined];
    for (const who of [bot, writer]) {
      for (const target of [readFile, writeFile, tool('files', 'move_file')]) {
        const visible = engine.canSee(who, undefined, target);
        const anyAllowed = paths.some((path) =>
          [monday10, monday10 + 12 * 3600_000].some(
            (time) =>
              engine.decide(call(who, target, path === undefined ? {} : { path }, time)).effect === 'allow',
          ),
        );
        if (anyAllowed) expect(visible).toBe(true);
      }
    }
  });
});

// ---- indexing equivalence ----

function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normalized(decision: Decision) {
  return { ...decision, policyIds: [...decision.policyIds].sort(), errors: [...decision.errors].sort() };
}

test('the indexed, projected evaluation equals full evaluation on randomized requests', () => {
  const next = random(1234);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)] as T;
  const agents = ['agt_0', 'agt_1', 'agt_2', 'agt_3'];
  const owners = ['alice@example.com', 'bob@example.com'];
  const servers = ['files', 'web'];
  const names = ['read', 'write', 'fetch'];
  const principalScopes = [
    'principal',
    ...agents.map((a) => `principal == Agent::"${a}"`),
    ...owners.map((o) => `principal in Owner::"${o}"`),
    'principal is Agent',
  ];
  const actionScopes = [
    'action',
    'action == Action::"call_tool"',
    'action == Action::"list_tools"',
    'action in [Action::"call_tool", Action::"read_resource"]',
  ];
  const resourceScopes = [
    'resource',
    ...servers.map((s) => `resource in Server::"${s}"`),
    ...servers.flatMap((s) => names.map((n) => `resource == Tool::"${s}/${n}"`)),
    'resource is Tool',
    'resource is Server',
    'resource is Tool in Server::"files"',
  ];
  const conditions = [
    '',
    'when { context.annotations.readOnlyHint }',
    'unless { context.annotations.destructiveHint }',
    'when { context.time.hour < 12 }',
    'when { context.arguments has path && context.arguments.path like "/sandbox/*" }',
    'unless { context.arguments has url && context.arguments.url like "https://*" }',
    'when { principal.environment == "production" }',
    'when { principal.name like "agt_1*" || context.argumentNames.contains("force") }',
    'when { resource is Tool && resource.name == "read" }',
    'when { context has task && context.task.purpose == "triage" }',
    'when { context.time.epochSeconds * 4611686018427387904 > 0 }',
    'when { principal in Owner::"bob@example.com" }',
    'when { action == Action::"call_tool" && context.time.weekday != 0 }',
    'when { context == context }',
  ];
  const actions: { action: PolicyAction; kind: ResourceKind }[] = [
    { action: 'call_tool', kind: 'tool' },
    { action: 'list_tools', kind: 'tool' },
  ];

  const seen = { allow: 0, forbid: 0, error: 0, default: 0 };
  for (let round = 0; round < 4; round++) {
    let policies: string[] = [];
    for (let i = 0; i < 90; i++) {
      const effect = next() < 0.7 ? 'permit' : 'forbid';
      policies.push(
        `${effect} (${pick(principalScopes)}, ${pick(actionScopes)}, ${pick(resourceScopes)}) ${pick(conditions)};`,
      );
    }
    // Keep only combinations the schema accepts (for example not list_tools on a Tool).
    try {
      compilePolicySet(sources({ 'random.cedar': policies.join('\n') }));
    } catch (error) {
      const rejected = new Set((error as PolicyLoadError).problems.map((problem) => problem.policyId));
      policies = policies.filter((_, i) => !rejected.has(`random.cedar:${i}`));
    }
    expect(policies.length).toBeGreaterThan(40);
    const engine = engineOf({ 'random.cedar': policies.join('\n') });
    for (let i = 0; i < 250; i++) {
      const { action, kind } = pick(actions);
      const input: DecisionInput = {
        principal: agent(pick(agents), {
          owner: pick(owners),
          environment: pick(['production', 'staging']),
        }),
        task: next() < 0.5 ? { id: `task_${i}`, purpose: pick(['triage', 'report']) } : undefined,
        action,
        resource: {
          server: pick(servers),
          kind,
          name: pick(names),
          ...(next() < 0.8
            ? { annotations: { readOnlyHint: next() < 0.5, destructiveHint: next() < 0.5 } }
            : {}),
        },
        arguments: {
          ...(next() < 0.6 ? { path: pick(['/sandbox/x', '/etc/passwd']) } : {}),
          ...(next() < 0.3 ? { url: pick(['https://a', 'http://b']) } : {}),
          ...(next() < 0.2 ? { force: true } : {}),
        },
        time: monday10 + Math.floor(next() * 7 * 24) * 3600_000,
      };
      const indexed = engine.decide(input);
      const full = engine.decideUnindexed(input);
      expect(normalized(indexed), JSON.stringify(input)).toEqual(normalized(full));
      if (indexed.effect === 'allow') seen.allow++;
      else if (indexed.errors.length > 0) seen.error++;
      else if (indexed.policyIds.length > 0) seen.forbid++;
      else seen.default++;
    }
    engine.dispose();
  }
  // The comparison covered every kind of outcome.
  for (const count of Object.values(seen)) expect(count).toBeGreaterThan(20);
});
