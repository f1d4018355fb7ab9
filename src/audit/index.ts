export { type ExportOptions, type ExportSummary, exportBundle } from './bundle.js';
export { type ErasureSelector, eraseContent } from './erasure.js';
export type { AuditEvent, AuditEventInput, AuditOutcome } from './events.js';
export { countEvents, type EventFilter, getEvent, listEvents } from './query.js';
export { AuditRecorder } from './recorder.js';
export { type PendingAppend, type PreparedAppend, type StoredCheckpoint, TransparencyLog } from './tlog.js';
export { type BundleVerification, type LiveVerification, verifyBundle, verifyLive } from './verify-bundle.js';
