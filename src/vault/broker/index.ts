export { bearerChallenge, classifyRefusal, type UpstreamRefusal } from '../../core/bearer-challenge.js';
export {
  type BrokerDeps,
  type BrokerSecrets,
  type ConnectStart,
  OAuthBroker,
  type OAuthCredentialStatus,
  tokenSecretNames,
} from './broker.js';
export type { ProviderClient, TokenGrant } from './provider.js';
