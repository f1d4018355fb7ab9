export { type ExportOptions, type ExportSummary, exportBundle } from './bundle.js';
export { type DecisionChain, type LoadChainOptions, loadDecisionChain } from './chain.js';
export { type ErasureSelector, eraseContent } from './erasure.js';
export type { AuditEvent, AuditEventInput, AuditOutcome } from './events.js';
export {
  type EvidenceSummary,
  type EvidenceVerification,
  FRAMEWORKS,
  type Framework,
  frameworkControls,
  type InventoryAgent,
  verifyEvidencePack,
  writeEvidencePack,
} from './evidence.js';
export { type AuditExporters, type ExportsConfig, startExporters } from './exporters.js';
export { ExportStore, type StoredExport } from './exports-store.js';
export type { OcsfSinkStats } from './ocsf.js';
export { countEvents, type EventFilter, getEvent, listEvents } from './query.js';
export { AuditRecorder, type AuditTransaction } from './recorder.js';
export { type PendingAppend, type PreparedAppend, type StoredCheckpoint, TransparencyLog } from './tlog.js';
export { type ChainStep, renderChain } from './trace.js';
export { type BundleVerification, type LiveVerification, verifyBundle, verifyLive } from './verify-bundle.js';
