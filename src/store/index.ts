export type * from './schema.js';
export {
  openStore,
  parseStorageUrl,
  redact,
  type Store,
  type StoreCapabilities,
  type StoreLocation,
} from './store.js';
