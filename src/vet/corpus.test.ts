import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { corpusDir, corpusMarkdown, evaluateCorpus } from './corpus.js';

describe('the labelled corpus', () => {
  const result = evaluateCorpus();

  it('prints per-rule precision and recall', () => {
    console.log(corpusMarkdown(result));
    console.log('misses:', result.misses.join(' '));
    console.log('false positives:', JSON.stringify(result.falsePositives));
    expect(
      result.counts.benign + result.counts.explicit + result.counts.implicit + result.counts.shadowing,
    ).toBeGreaterThan(250);
  });

  it('flags every explicit poisoning at block', () => {
    expect(result.misses.filter((id) => id.startsWith('explicit'))).toEqual([]);
  });

  it('flags at least 60% of implicit poisoning', () => {
    expect(result.implicitFlagged / result.counts.implicit).toBeGreaterThanOrEqual(0.6);
  });

  it('flags at most 2% of benign descriptions at warn and none at block', () => {
    expect(result.benignAtWarn / result.counts.benign).toBeLessThanOrEqual(0.02);
    expect(result.benignAtBlock).toBe(0);
  });
});

describe('the held-out corpus (written after the rules, never used to change them)', () => {
  it('prints its figures; the targets are reported, not asserted, so the set stays held out', () => {
    const held = evaluateCorpus(join(corpusDir, 'holdout'));
    console.log(corpusMarkdown(held));
    console.log('misses:', held.misses.join(' '));
    console.log('false positives:', JSON.stringify(held.falsePositives));
    expect(held.counts.benign).toBe(30);
  });
});
