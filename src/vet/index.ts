export { type CorpusResult, corpusMarkdown, evaluateCorpus, loadCorpus } from './corpus.js';
export { detect, sortFindings, worstSeverity } from './detect.js';
export * from './pins.js';
export { type OwaspId, owaspMcpTop10, type Rule, ruleById, rules } from './rules.js';
export type * from './types.js';
