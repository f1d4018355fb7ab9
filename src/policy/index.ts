/**
 * Policy: Cedar schema, policy sets loaded from a directory, and the decision engine.
 * docs/policies.md describes the schema and how to write policies.
 */
export {
  type ArchivedPolicySet,
  archivedPolicySetHashes,
  archivedPolicySetOf,
  archivePolicySet,
  POLICY_SET_HASH_ALGORITHM,
  policySetArchiveDir,
  readArchivedPolicySet,
} from './archive.js';
export { type EngineLimits, PolicyEngine } from './engine.js';
export {
  compilePolicySet,
  PolicyLoadError,
  type PolicySource,
  type PolicySources,
  readPolicyDirectory,
  schemaFileName,
} from './load.js';
export { builtInSchema } from './schema.js';
export {
  type PolicySnapshot,
  PolicyStore,
  type PolicyStoreOptions,
  policySetHash,
  type ReloadResult,
  type WatchListener,
} from './store.js';
export {
  type Decision,
  type DecisionInput,
  type LoadedPolicy,
  type PolicyAction,
  type PolicyExplanation,
  type PolicyPrincipal,
  type PolicyProblem,
  type PolicyResource,
  type PolicyTask,
  policyActions,
  principalOfAgent,
  type ResourceKind,
  type ToolAnnotations,
} from './types.js';
