export { type BackoffPolicy, defaultBackoff } from './backoff.js';
export { HttpUpstream, type HttpUpstreamOptions } from './http.js';
export { createUpstream, UpstreamRegistry, type UpstreamRegistryOptions } from './registry.js';
export { StdioUpstream, type StdioUpstreamOptions } from './stdio.js';
export type { SupervisorOptions } from './supervised-upstream.js';
export * from './types.js';
