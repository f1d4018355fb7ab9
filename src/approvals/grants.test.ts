import { describe, expect, it } from 'vitest';
import { argumentsMatch, compilePattern } from './grants.js';

const approved = { path: '/srv/reports/q1.csv', mode: 'read', size: 10 };

describe('grant argument patterns', () => {
  it('without a pattern, covers only the identical arguments (key order aside)', () => {
    expect(argumentsMatch(approved, { size: 10, mode: 'read', path: '/srv/reports/q1.csv' }, undefined)).toBe(
      true,
    );
    expect(argumentsMatch(approved, { ...approved, size: 11 }, undefined)).toBe(false);
  });

  it('matches named arguments in full, never a part of the value', () => {
    const pattern = compilePattern({ path: '/srv/reports/[a-z0-9]+\\.csv' });
    expect(argumentsMatch(approved, { ...approved, path: '/srv/reports/q2.csv' }, pattern)).toBe(true);
    expect(argumentsMatch(approved, { ...approved, path: '/srv/reports/q2.csv/../../etc' }, pattern)).toBe(
      false,
    );
    expect(argumentsMatch(approved, { ...approved, path: 'x/srv/reports/q2.csv' }, pattern)).toBe(false);
  });

  it('keeps unnamed arguments equal and the set of names fixed', () => {
    const pattern = compilePattern({ path: '.*' });
    expect(argumentsMatch(approved, { ...approved, mode: 'write' }, pattern)).toBe(false);
    expect(argumentsMatch(approved, { ...approved, extra: 1 }, pattern)).toBe(false);
    const { size: _, ...fewer } = approved;
    expect(argumentsMatch(approved, fewer, pattern)).toBe(false);
    expect(argumentsMatch(approved, ['/srv'], pattern)).toBe(false);
  });

  it('matches non-string values by their canonical JSON', () => {
    const pattern = compilePattern({ size: '[0-9]{1,3}' });
    expect(argumentsMatch(approved, { ...approved, size: 999 }, pattern)).toBe(true);
    expect(argumentsMatch(approved, { ...approved, size: 1000 }, pattern)).toBe(false);
    expect(argumentsMatch(approved, { ...approved, size: '12' }, pattern)).toBe(true);
  });

  it('rejects patterns that are not regular expressions, or too long', () => {
    expect(() => compilePattern({ path: '(' })).toThrow(/not a regular expression/);
    expect(() => compilePattern({ path: 'a'.repeat(501) })).toThrow(/1 to 500/);
    expect(() => compilePattern({ path: '' })).toThrow(/1 to 500/);
  });
});
