/**
 * What the commands share: the configuration, the running server, the store. Command
 * definitions import this module, so it imports nothing heavy itself: the configuration's
 * parser, the store, the HTTP client and the services load when an action uses them.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { AuditRecorder } from '../audit/index.js';
import { type Clock, systemClock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import { CustosError } from '../core/errors.js';
import { IdGenerator } from '../core/ids.js';
import { adminToken, type RuntimeFile, runtimeFilePath } from '../core/runtime-file.js';
import type { AgentService } from '../identity/index.js';
import type { Store } from '../store/index.js';

export interface GlobalOptions {
  config?: string;
  data?: string;
}

/** Read the configuration the way `custos start` would: --config, else ./custos.yaml if present. */
export async function readConfig(options: GlobalOptions & { port?: number }): Promise<Config> {
  const { loadConfig } = await import('../core/config.js');
  const file = options.config ?? (existsSync('custos.yaml') ? 'custos.yaml' : undefined);
  return loadConfig({
    ...(file ? { file } : {}),
    ...(options.data ? { dataDir: options.data } : {}),
    ...(options.port !== undefined ? { port: options.port } : {}),
  });
}

/** A running server for this data directory, if one answers. */
export async function runningServer(config: Config): Promise<{ url: string; token: string } | undefined> {
  const file = runtimeFilePath(config.dataDir);
  if (!existsSync(file)) return undefined;
  const { request } = await import('undici');
  try {
    const runtime = JSON.parse(readFileSync(file, 'utf8')) as RuntimeFile;
    const res = await request(`${runtime.url}/healthz`, { headersTimeout: 1000, bodyTimeout: 1000 });
    await res.body.dump();
    if (res.statusCode !== 200) return undefined;
    // A person acts as themselves with their API token; otherwise the installation's admin token.
    const userToken = process.env.CUSTOS_USER_TOKEN;
    return { url: runtime.url, token: userToken ? userToken : adminToken(config.dataDir) };
  } catch {
    return undefined;
  }
}

/** Call the running server's admin API; errors come back as CustosErrors with the server's code. */
export async function callAdmin<T>(
  server: { url: string; token: string },
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<T> {
  const { request } = await import('undici');
  const res = await request(`${server.url}/api/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${server.token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await res.body.json()) as T & { error?: { code: string; message: string } };
  if (res.statusCode >= 400) {
    const error = json.error ?? { code: 'internal', message: `HTTP ${res.statusCode}` };
    throw new CustosError(error.code as 'internal', error.message);
  }
  return json;
}

/** Open the store the configuration names, for commands that work without a server. */
export async function withStore<T>(config: Config, work: (store: Store) => Promise<T>): Promise<T> {
  const { openStore } = await import('../store/index.js');
  const store = await openStore(config.storage.url, config.baseDir);
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

/** Open the store with the agents on it (no audit log: for reading, and for changes not audited). */
export async function withAgents<T>(
  config: Config,
  work: (agents: AgentService, store: Store) => Promise<T>,
): Promise<T> {
  const { AgentDirectory, AgentService } = await import('../identity/index.js');
  return withStore(config, (store) => {
    const clock = systemClock;
    const agents = new AgentService({
      store,
      clock,
      ids: new IdGenerator(clock),
      directory: new AgentDirectory(store),
    });
    return work(agents, store);
  });
}

/**
 * The test pause inside the offboarding transaction: with CUSTOS_TEST_OFFBOARD_PAUSE set to a
 * point's name (epoch, credentials, a step's name, before-commit), offboarding stops there,
 * says so on stderr and waits for ever, so a crash test can kill the process mid-transaction.
 */
export function offboardPauseFromEnv(env: NodeJS.ProcessEnv = process.env) {
  const at = env.CUSTOS_TEST_OFFBOARD_PAUSE;
  if (!at) return undefined;
  return async (point: string) => {
    if (point !== at) return;
    process.stderr.write(`custos: paused inside the offboarding transaction at ${point}\n`);
    await new Promise(() => setInterval(() => {}, 60_000));
  };
}

/** A person's API token is checked by the server: without one running, refuse it rather than ignore it. */
export function refuseUserTokenOffline(): void {
  if (process.env.CUSTOS_USER_TOKEN)
    throw new CustosError(
      'usage',
      'CUSTOS_USER_TOKEN needs a running Custos server (start it with custos start)',
    );
}

/** What a change made without a server records with. */
export interface OfflineAudit {
  readonly store: Store;
  readonly audit: AuditRecorder;
  readonly clock: Clock;
  readonly ids: IdGenerator;
}

/** Open the store with its audit log writable (no server running), so the work's changes are recorded. */
export async function withAudit<T>(config: Config, work: (offline: OfflineAudit) => Promise<T>): Promise<T> {
  const { AuditRecorder, TransparencyLog } = await import('../audit/index.js');
  return withStore(config, async (store) => {
    const clock = systemClock;
    const ids = new IdGenerator(clock);
    const log = await TransparencyLog.open(store, { clock });
    const audit = new AuditRecorder(store, log, ids, { commitDelayMs: 0 });
    try {
      return await work({ store, audit, clock, ids });
    } finally {
      await audit.close();
      await log.close();
    }
  });
}

/**
 * Work on the agents with lifecycle changes recorded (no server running): the store, a
 * writable audit log, and the offboarding steps the server registers.
 */
export async function withLifecycle<T>(
  config: Config,
  work: (agents: AgentService, store: Store, audit: AuditRecorder) => Promise<T>,
): Promise<T> {
  refuseUserTokenOffline();
  const { AgentDirectory, AgentService } = await import('../identity/index.js');
  const { offboardSteps } = await import('../offboard-steps.js');
  return withAudit(config, ({ store, audit, clock, ids }) => {
    const pause = offboardPauseFromEnv();
    const agents = new AgentService({
      store,
      clock,
      ids,
      directory: new AgentDirectory(store),
      audit,
      expiry: config.lifecycle,
      offboardSteps: offboardSteps(),
      ...(pause === undefined ? {} : { pause }),
    });
    return work(agents, store, audit);
  });
}

/** Who makes a change from this CLI without a server: the installation's admin token. */
export const offlineActor = 'admin token';
