export {
  type Containment,
  ContainmentIndex,
  type ContainScope,
  containedMessage,
  containScopes,
  parseTarget,
  type ResumeVote,
} from './containment.js';
export {
  type DetectorName,
  type DetectorSettings,
  detectorNames,
  type Finding,
  MeterState,
  type Observation,
  WorkingHours,
} from './detectors.js';
export {
  type Incident,
  type IncidentAction,
  type IncidentNote,
  type IncidentSummary,
  reportHtml,
  reportMarkdown,
  type TimelineEntry,
} from './incidents.js';
export { incidentMessage, postWebhook, type WebhookMessage } from './notify.js';
export {
  loadPlaybooks,
  type Playbook,
  type PlaybookStep,
  parsePlaybook,
  playbookMatches,
} from './playbooks.js';
export {
  type AgentsPort,
  type ContainEvent,
  type ContainListener,
  type ContainOutcome,
  type DetectDeps,
  type DetectHooks,
  type DetectLogger,
  DetectService,
  type KillRequest,
  type ResumeResult,
} from './service.js';
