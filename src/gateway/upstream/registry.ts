import type { ServerConfig } from '../../core/config.js';
import { isStdioServer } from '../../core/config.js';
import type { BackoffPolicy } from './backoff.js';
import { HttpUpstream } from './http.js';
import { StdioUpstream } from './stdio.js';
import type { SupervisorOptions } from './supervised-upstream.js';
import type {
  CatalogChange,
  ManagedUpstream,
  StatusChange,
  Unsubscribe,
  UpstreamLogger,
  UpstreamNotification,
  UpstreamStatus,
} from './types.js';

export interface UpstreamRegistryOptions {
  logger: UpstreamLogger;
  /** Directory relative stdio `cwd` values resolve against (the config file's directory). */
  baseDir?: string;
  backoff?: Partial<BackoffPolicy>;
  connectTimeoutMs?: number;
  clock?: SupervisorOptions['clock'];
  /** Shared vault credential headers of an HTTP server, looked up per request (see HttpUpstream). */
  credentialsFor?: (server: string) => (() => Promise<Record<string, string> | undefined>) | undefined;
}

/** Build the upstream for one configured server. */
export function createUpstream(
  name: string,
  config: ServerConfig,
  options: UpstreamRegistryOptions,
): StdioUpstream | HttpUpstream {
  const common = {
    logger: options.logger,
    ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
    ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  };
  if (isStdioServer(config)) {
    return new StdioUpstream(name, config, {
      ...common,
      ...(options.baseDir === undefined ? {} : { baseDir: options.baseDir }),
    });
  }
  const credentials = options.credentialsFor?.(name);
  return new HttpUpstream(name, config, { ...common, ...(credentials ? { credentials } : {}) });
}

/**
 * Every configured upstream, each supervised on its own: one that cannot start never holds
 * up the others. Events from all upstreams are re-emitted here with the server's name.
 */
export class UpstreamRegistry {
  readonly #upstreams = new Map<string, ManagedUpstream>();

  constructor(servers: Readonly<Record<string, ServerConfig>>, options: UpstreamRegistryOptions) {
    for (const [name, config] of Object.entries(servers)) {
      this.#upstreams.set(name, createUpstream(name, config, options));
    }
  }

  /** Start every upstream; resolves once each has finished its first attempt (success or not). */
  async start(): Promise<void> {
    await Promise.all([...this.#upstreams.values()].map((upstream) => upstream.start()));
  }

  get(name: string): ManagedUpstream | undefined {
    return this.#upstreams.get(name);
  }

  list(): ManagedUpstream[] {
    return [...this.#upstreams.values()];
  }

  statuses(): Record<string, UpstreamStatus> {
    return Object.fromEntries([...this.#upstreams].map(([name, upstream]) => [name, upstream.status()]));
  }

  /** Resolves true when every upstream is ready, false if timeoutMs passes first. */
  async waitReady(timeoutMs: number): Promise<boolean> {
    const results = await Promise.all(this.list().map((upstream) => upstream.waitReady(timeoutMs)));
    return results.every(Boolean);
  }

  onNotification(listener: (notification: UpstreamNotification) => void): Unsubscribe {
    return this.#subscribeAll((upstream) => upstream.onNotification(listener));
  }

  onCatalogChanged(listener: (change: CatalogChange) => void): Unsubscribe {
    return this.#subscribeAll((upstream) => upstream.onCatalogChanged(listener));
  }

  onStatusChanged(listener: (change: StatusChange) => void): Unsubscribe {
    return this.#subscribeAll((upstream) => upstream.onStatusChanged(listener));
  }

  /** Close every upstream; stdio children are gone when this resolves. */
  async close(): Promise<void> {
    await Promise.all(this.list().map((upstream) => upstream.close()));
  }

  #subscribeAll(subscribe: (upstream: ManagedUpstream) => Unsubscribe): Unsubscribe {
    const unsubscribes = this.list().map(subscribe);
    return () => {
      for (const unsubscribe of unsubscribes) unsubscribe();
    };
  }
}
