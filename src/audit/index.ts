export type { AuditEvent, AuditEventInput, AuditOutcome } from './events.js';
export { type EventFilter, getEvent, listEvents } from './query.js';
export { AuditRecorder } from './recorder.js';
