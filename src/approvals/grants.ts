import { canonicalJson } from '../core/canonical.js';
import { CustosError } from '../core/errors.js';

const maxPatternLength = 500;

/** Compile a grant's pattern, rejecting what is not a usable regular expression. */
export function compilePattern(pattern: Readonly<Record<string, string>>): Map<string, RegExp> {
  const compiled = new Map<string, RegExp>();
  for (const [name, source] of Object.entries(pattern)) {
    if (typeof source !== 'string' || source.length === 0 || source.length > maxPatternLength) {
      throw new CustosError(
        'bad_request',
        `grant.argumentsPattern.${name} must be a regular expression of 1 to ${maxPatternLength} characters`,
      );
    }
    try {
      // Anchored: the whole value must match, never a part of it.
      compiled.set(name, new RegExp(`^(?:${source})$`, 'u'));
    } catch (error) {
      throw new CustosError(
        'bad_request',
        `grant.argumentsPattern.${name} is not a regular expression: ${(error as Error).message}`,
      );
    }
  }
  return compiled;
}

/** The text a pattern is matched against: strings as they are, anything else as canonical JSON. */
function textOf(value: unknown): string {
  return typeof value === 'string' ? value : canonicalJson(value);
}

/**
 * Whether a call's arguments fall under a grant: the same argument names as the approved
 * call; each named in the pattern matches its expression in full; every other one equal to
 * the approved value (canonical JSON). No pattern means exactly the approved arguments.
 */
export function argumentsMatch(
  approved: unknown,
  actual: unknown,
  pattern: ReadonlyMap<string, RegExp> | undefined,
): boolean {
  if (pattern === undefined || pattern.size === 0) return sameJson(approved, actual);
  if (!isObject(approved) || !isObject(actual)) return false;
  const keys = Object.keys(approved).sort();
  const actualKeys = Object.keys(actual).sort();
  if (keys.length !== actualKeys.length || keys.some((k, i) => k !== actualKeys[i])) return false;
  for (const key of keys) {
    const expression = pattern.get(key);
    const value = actual[key];
    if (expression === undefined) {
      if (!sameJson(approved[key], value)) return false;
    } else if (!expression.test(textOf(value))) {
      return false;
    }
  }
  return true;
}

function sameJson(a: unknown, b: unknown): boolean {
  return canonicalJson(a ?? null) === canonicalJson(b ?? null);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
