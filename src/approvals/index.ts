/**
 * Human approval as a security primitive: policy asks for it (`@approval("tier")` on a permit),
 * the approval is bound to the exact call's hash, used at most once, and recorded in the audit log.
 * docs/approvals.md describes it for users.
 */
export { argumentsMatch, compilePattern } from './grants.js';
export { type LinkClaim, LinkSigner, loadLinkKey } from './links.js';
export { approvalsOffboardStep } from './offboard.js';
export { type ApprovalFilter, ApprovalRepository, type ContainedScope } from './repository.js';
export { ApprovalService, type ApprovalServiceDeps, callHashOf, voterOf } from './service.js';
export type {
  Approval,
  ApprovalCall,
  ApprovalGate,
  ApprovalStatus,
  Approver,
  ApproverStats,
  DecideInput,
  Grant,
  GrantRequest,
  HoldChannel,
  Vote,
} from './types.js';
export { linkRecipients, renderJson, slackMessage, WebhookChannel, type WebhookOptions } from './webhook.js';
