export type { CallContext, CallOutcome, TargetMethod } from './context.js';
export {
  type ClientState,
  Downstream,
  type Era,
  type Exchange,
  passesLevel,
  serverInfo,
} from './downstream.js';
export { type ApiRequest, type ApiResponse, ApiUpstream, runApiCall } from './http-api.js';
export { Pipeline, type PipelineDeps } from './pipeline.js';
export * from './protocol.js';
export type { ApprovalPort, ApprovalStopCode, ApprovalSubject } from './stages/approve.js';
export type { PolicyPort } from './stages/authorize.js';
export type { CredentialPort } from './stages/inject.js';
export { TaskBudgets } from './stages/meter.js';
export type {
  Progress,
  PromptDefinition,
  ResourceDefinition,
  ResourceTemplateDefinition,
  ToolDefinition,
  Upstream,
  UpstreamCatalog,
  UpstreamNotification,
  UpstreamRequestOptions,
  UpstreamStatus,
} from './upstream/types.js';
export { UpstreamRpcError } from './upstream/types.js';
export { CatalogView, type DefinitionGate, type GatedKind, type UpstreamDirectory } from './view.js';
