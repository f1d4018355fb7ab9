import { describe, expect, it } from 'vitest';
import { corpusMarkdown, evaluateCorpus } from './corpus.js';

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
