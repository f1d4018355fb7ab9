export {
  type BindInput,
  type Binding,
  BindingService,
  type BindingTargetKind,
  configBindings,
  deleteAgentBindings,
  fillTemplate,
  parseHeaderTemplate,
  type ResolvedCredential,
} from './bindings.js';
export {
  type BrokerSecrets,
  bearerChallenge,
  type ConnectStart,
  classifyRefusal,
  OAuthBroker,
  type OAuthCredentialStatus,
  tokenSecretNames,
  type UpstreamRefusal,
} from './broker/index.js';
export {
  generateMasterKey,
  loadMasterKeyring,
  type MasterKeyring,
  masterKeyEnv,
  masterKeyPath,
  parseMasterKey,
} from './master-key.js';
export {
  maxSecretBytes,
  type SecretMetadata,
  type SetSecretOptions,
  Vault,
  validateSecretName,
} from './secrets.js';
