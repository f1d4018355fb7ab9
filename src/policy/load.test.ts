import { readFile } from 'node:fs/promises';
import { describe, expect, test } from 'vitest';
import { compilePolicySet, PolicyLoadError } from './load.js';
import { builtInSchema } from './schema.js';
import { PolicyStore } from './store.js';
import { agent, call, sources, tool } from './test-helpers.js';

function problemsOf(files: Record<string, string>, schema?: string) {
  try {
    compilePolicySet(sources(files, schema));
  } catch (error) {
    expect(error).toBeInstanceOf(PolicyLoadError);
    expect((error as PolicyLoadError).code).toBe('policy_invalid');
    return (error as PolicyLoadError).problems;
  }
  throw new Error('expected the policy set to be rejected');
}

describe('loading policies', () => {
  test('the built-in schema text equals schema.cedarschema', async () => {
    const file = await readFile(new URL('./schema.cedarschema', import.meta.url), 'utf8');
    expect(builtInSchema).toBe(file);
  });

  test('ids come from @id, else <file>:<index> in file order', () => {
    const many = Array.from(
      { length: 12 },
      (_, i) => `permit (principal == Agent::"a${i}", action, resource);`,
    );
    const set = compilePolicySet(
      sources({
        'b.cedar': many.join('\n'),
        'a.cedar': '@id("named")\npermit (principal, action, resource);',
      }),
    );
    expect(set.policies.map((p) => p.id)).toEqual(['named', ...many.map((_, i) => `b.cedar:${i}`)]);
    const eleventh = set.byId.get('b.cedar:11');
    expect(eleventh?.text).toContain('Agent::"a11"');
    expect(eleventh?.line).toBe(12);
  });

  test('a schema violation reports file, policy id, line and message', () => {
    const problems = problemsOf({
      'ok.cedar': 'permit (principal, action, resource);',
      'bad.cedar':
        '\n\n@id("typo")\npermit (principal, action == Action::"call_tool", resource)\nwhen { context.annotations.readOnly };',
    });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: 'bad.cedar', policyId: 'typo', line: 5 });
    expect(problems[0]?.message).toMatch(/readOnly/);
  });

  test('reading an optional argument without `has` is a validation error', () => {
    const problems = problemsOf({
      'args.cedar': 'permit (principal, action, resource) when { context.arguments.path like "/tmp/*" };',
    });
    expect(problems[0]).toMatchObject({ file: 'args.cedar', policyId: 'args.cedar:0' });
    expect(problems[0]?.message).toMatch(/has path/);
  });

  test('unknown entity types and actions are rejected', () => {
    expect(problemsOf({ 'x.cedar': 'permit (principal == User::"bob", action, resource);' })[0]?.file).toBe(
      'x.cedar',
    );
    expect(
      problemsOf({ 'x.cedar': 'permit (principal, action == Action::"delete_all", resource);' })[0]?.file,
    ).toBe('x.cedar');
  });

  test('a syntax error reports the file and line', () => {
    const problems = problemsOf({
      'syntax.cedar': 'permit (principal, action, resource);\n\npermit (principal, action',
    });
    expect(problems[0]).toMatchObject({ file: 'syntax.cedar', line: 3 });
  });

  test('duplicate ids and templates are rejected', () => {
    const duplicate = problemsOf({
      'a.cedar': '@id("same") permit (principal, action, resource);',
      'b.cedar': '@id("same") forbid (principal, action, resource);',
    });
    expect(duplicate[0]).toMatchObject({ file: 'b.cedar', policyId: 'same' });
    expect(duplicate[0]?.message).toMatch(/duplicate/);
    const template = problemsOf({ 't.cedar': 'permit (principal == ?principal, action, resource);' });
    expect(template[0]?.message).toMatch(/templates/);
  });

  test('a schema.cedarschema in the directory replaces the built-in schema', () => {
    const extended = builtInSchema.replace('  pattern?: String,', '  pattern?: String,\n  ticket?: Long,');
    const policy =
      'permit (principal, action, resource) when { context.arguments has ticket && context.arguments.ticket < 100 };';
    // Against the built-in schema the test can never be true: rejected rather than silently inert.
    expect(problemsOf({ 'p.cedar': policy })[0]?.message).toMatch(/impossible.*does not declare/);
    const store = PolicyStore.fromSources(sources({ 'p.cedar': policy }, extended));
    expect(store.snapshot.schema).toBe('schema.cedarschema');
    const bot = agent('agt_1');
    expect(store.decide(call(bot, tool('t', 'x'), { ticket: 7 })).effect).toBe('allow');
    expect(store.decide(call(bot, tool('t', 'x'), { ticket: 700 })).effect).toBe('deny');
    // A declared argument with the wrong JSON type cannot be encoded: deny, with the reason.
    const mistyped = store.decide(call(bot, tool('t', 'x'), { ticket: 'seven' }));
    expect(mistyped.effect).toBe('deny');
    expect(mistyped.errors[0]).toMatch(/ticket: expected Long, got string/);
  });

  test('a schema that does not describe Custos requests is rejected', () => {
    const problems = problemsOf(
      {},
      'entity Agent;\naction call_tool appliesTo { principal: [Agent], resource: [Agent] };',
    );
    expect(problems[0]?.file).toBe('schema.cedarschema');
    expect(problems[0]?.message).toMatch(/does not describe/);
  });

  test('a syntax error in the schema is reported against the schema file', () => {
    expect(problemsOf({}, 'entity Agent {')[0]?.file).toBe('schema.cedarschema');
  });
});
