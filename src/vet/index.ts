export {
  type Capability,
  classifyTool,
  type ToolCapabilities,
  type ToxicFlow,
  toxicFlows,
} from './capabilities.js';
export {
  type Collected,
  collect,
  compareListings,
  probeClients,
  readStatic,
  type Source,
} from './collect.js';
export { type CorpusResult, corpusMarkdown, evaluateCorpus, loadCorpus } from './corpus.js';
export { detect, sortFindings, worstSeverity } from './detect.js';
export { PinGate, type PinGateOptions } from './gate.js';
export { type Judge, loadJudge, runJudge } from './judge.js';
export { emptyLockfile, lockfilePath, readLockfile, writeLockfile } from './lockfile.js';
export * from './pins.js';
export {
  type Answers,
  assessRisk,
  loadQuestionnaire,
  parseAnswers,
  type Question,
  type RiskResult,
  type RiskTier,
  readAnswers,
} from './questionnaire.js';
export {
  buildReport,
  escapeHtml,
  renderHtml,
  renderSarif,
  renderTerminal,
  type VetReport,
  vetReportSchema,
  visible,
} from './report.js';
export { type OwaspId, owaspMcpTop10, type Rule, ruleById, rules } from './rules.js';
export { latestRuns, recordRun, type VetRun } from './runs.js';
export { type VetOptions, vetServer, vetSnapshot } from './service.js';
export {
  applySuppressions,
  parseSuppressions,
  readSuppressions,
  type Suppression,
} from './suppressions.js';
export type * from './types.js';
