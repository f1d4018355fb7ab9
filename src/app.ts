import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve as resolvePath } from 'node:path';
import pino, { type Logger } from 'pino';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { ApprovalService, LinkSigner, loadLinkKey, WebhookChannel } from './approvals/index.js';
import {
  type AuditExporters,
  AuditRecorder,
  ExportStore,
  startExporters,
  TransparencyLog,
} from './audit/index.js';
import { type Clock, systemClock } from './core/clock.js';
import { type Config, isStdioServer, type ServerConfig } from './core/config.js';
import { CustosError } from './core/errors.js';
import { IdGenerator } from './core/ids.js';
import { adminToken, type RuntimeFile, runtimeFilePath } from './core/runtime-file.js';
import { DetectService, loadPlaybooks } from './detect/index.js';
import { ApiUpstream, CatalogView, Downstream, Pipeline, serverInfo, TaskBudgets } from './gateway/index.js';
import { UpstreamRegistry } from './gateway/upstream/index.js';
import { AccessReview, createIdentityService, type IdentityService, UserService } from './identity/index.js';
import { offboardSteps } from './offboard-steps.js';
import { archivedPolicySetOf, archivePolicySet, PolicyStore, policySetArchiveDir } from './policy/index.js';
import { registerAdmin } from './server/admin.js';
import { agentAuthRoutes } from './server/admin-agent-auth.js';
import { approvalLinkRoutes, approvalRoutes } from './server/admin-approvals.js';
import { auditRoutes } from './server/admin-audit.js';
import { consoleDataRoutes } from './server/admin-console.js';
import { detectRoutes } from './server/admin-detect.js';
import { bindingsReach, lifecycleRoutes, reachSources } from './server/admin-lifecycle.js';
import { oauthCallbackRoutes, oauthRoutes } from './server/admin-oauth.js';
import { userRoutes } from './server/admin-users.js';
import { vaultRoutes } from './server/admin-vault.js';
import { vetRoutes } from './server/admin-vet.js';
import { registerConsoleAssets } from './server/console-assets.js';
import { registerConsoleLogin, userAuthenticator } from './server/console-auth.js';
import { buildHttpServer } from './server/http.js';
import { McpHttp } from './server/mcp-http.js';
import { registerProxy } from './server/proxy.js';
import { openStore, type Store } from './store/index.js';
import { BindingService, configBindings, deleteAgentBindings, OAuthBroker, Vault } from './vault/index.js';
import { type Lockfile, PinGate, serverPinsDigest } from './vet/index.js';

export interface Custos {
  readonly config: Config;
  readonly url: string;
  readonly store: Store;
  readonly identity: IdentityService;
  readonly policy: PolicyStore;
  readonly upstreams: UpstreamRegistry;
  readonly detect: DetectService;
  readonly approvals: ApprovalService;
  readonly vault: Vault;
  /** The OAuth broker: upstream OAuth 2 credentials connected once and kept fresh. */
  readonly oauth: OAuthBroker;
  readonly bindings: BindingService;
  /** Agents from the configuration that were created on this start, with their one-time secrets. */
  readonly createdAgents: ReadonlyArray<{ name: string; clientId: string; clientSecret: string }>;
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  clock?: Clock;
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** The audit exporters of the `exports` section, with their drops and deliveries in /metrics. */
function startAuditExporters(
  config: Config,
  metrics: Registry,
  logger: Logger,
  agentName: (agentId: string) => string | undefined,
): AuditExporters {
  const dropped = new Counter({
    name: 'custos_audit_export_dropped_total',
    help: 'audit records or spans an exporter gave up on (destination down or slow, queue full)',
    labelNames: ['exporter'],
    registers: [metrics],
  });
  let lastWarned = 0;
  const exporters = startExporters(config.exports, {
    baseDir: config.baseDir,
    product: { name: serverInfo.name, version: serverInfo.version },
    agentName,
    onDrop: (exporter, count, reason) => {
      dropped.inc({ exporter }, count);
      // One line a second at most: a dead collector must not flood the log.
      const now = Date.now();
      if (now - lastWarned >= 1000) {
        lastWarned = now;
        logger.warn({ exporter, count, reason }, 'audit export dropped records');
      }
    },
  });
  new Gauge({
    name: 'custos_audit_export_delivered',
    help: 'audit records or spans an exporter has delivered since start',
    labelNames: ['exporter'],
    registers: [metrics],
    collect() {
      for (const [exporter, stats] of Object.entries(exporters.stats()))
        this.set({ exporter }, stats.delivered);
    },
  });
  return exporters;
}

/**
 * The composition root: build the store and services, wire them together, and listen.
 * Nothing else in Custos knows how the pieces fit.
 */
export async function startCustos(config: Config, options: StartOptions = {}): Promise<Custos> {
  const logger = options.logger ?? pino({ level: process.env.CUSTOS_LOG_LEVEL ?? 'info' });
  const clock = options.clock ?? systemClock;
  const ids = new IdGenerator(clock);
  const { host } = config.listen;
  const port = config.listen.port === 0 ? await freePort(host) : config.listen.port;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const url = (config.listen.publicUrl ?? `http://${hostPart}:${port}`).replace(/\/$/, '');

  const closers: Array<() => Promise<void> | void> = [];
  let recorder = (): AuditRecorder => {
    throw new CustosError('store_unavailable', 'the audit log is not open yet');
  };
  const close = async () => {
    for (const c of closers.reverse()) await c();
  };
  try {
    // Policies first: a broken policy set stops the start before anything listens.
    const policy = await PolicyStore.open(config.policies, { now: () => clock.now() });
    closers.push(() => policy.close());
    // Every set enforced is kept by its hash, which audit events commit to (docs/audit.md).
    const policySets = policySetArchiveDir(config.dataDir);
    const archivePolicies = () =>
      archivePolicySet(policySets, archivedPolicySetOf(policy.engine.policySet, clock.now()));
    archivePolicies();

    const store = await openStore(config.storage.url, config.baseDir);
    closers.push(() => store.close());
    // The vault opens before identity: the token signing private key lives in it.
    const vault = await Vault.open({ store, clock, dataDir: config.dataDir });
    const identity = await createIdentityService({
      store,
      clock,
      signingKeySecrets: vault,
      ids,
      issuer: url,
      audience: `${url}/mcp`,
      tokenTtlSeconds: config.tokens.ttlSeconds,
      taskTokenTtlSeconds: config.tokens.taskTtlSeconds,
      // Lifecycle changes commit with their audit event; the recorder exists from below on.
      audit: { transaction: (work) => recorder().transaction(work) },
      expiry: config.lifecycle,
      offboardSteps: offboardSteps(),
    });
    // The broker records connections in the audit log, which opens below; nothing connects before it listens.
    const oauth = new OAuthBroker({
      store,
      clock,
      secrets: vault,
      config: config.oauth,
      baseUrl: url,
      audit: { record: (event) => audit.record(event) },
    });
    const bindings = new BindingService({ store, vault, clock, ids, oauth }, configBindings(config));
    const refresher = setInterval(() => {
      identity.refresh().catch((error) => logger.warn({ err: error }, 'agent refresh failed'));
    }, 2000);
    refresher.unref();
    closers.push(() => clearInterval(refresher));

    const metrics = new Registry();
    collectDefaultMetrics({ register: metrics });
    // The log opens first and closes last: close() signs a final checkpoint over what the recorder flushed.
    const auditLog = await TransparencyLog.open(store, {
      clock,
      checkpointIntervalMs: config.audit.checkpointIntervalMs,
      onError: (error) => logger.error({ err: error }, 'audit checkpoint failed; the next append retries'),
    });
    closers.push(() => auditLog.close());
    // Exporters close after the recorder (closers run in reverse), so its last batch is exported.
    const exporters = startAuditExporters(config, metrics, logger, (id) => identity.directory.get(id)?.name);
    closers.push(() => exporters.close());
    const audit = new AuditRecorder(store, auditLog, ids, {
      commitDelayMs: config.audit.commitDelayMs,
      onListenerError: (error) => logger.error({ err: error }, 'audit export failed'),
    });
    closers.push(() => audit.close());
    audit.onDurable((events) => exporters.write(events));
    recorder = () => audit;

    // Agents named in custos.yaml and missing from the store are onboarded (with the default expiry).
    const createdAgents: Array<{ name: string; clientId: string; clientSecret: string }> = [];
    for (const { expiresDays, requireDpop, ...a } of config.agents) {
      const existing = await identity.agents.get(a.name);
      // The configuration is declarative: a stated requireDpop wins over what the store holds.
      if (requireDpop !== undefined && existing !== undefined && existing.status !== 'offboarded') {
        await identity.agents.setRequireDpop(a.name, requireDpop);
      }
      if (existing !== undefined) continue;
      const added = await identity.agents.add(
        {
          ...a,
          ...(expiresDays === undefined ? {} : { expiresInDays: expiresDays }),
          credential: { kind: 'client_secret' },
        },
        { by: 'custos.yaml' },
      );
      if (requireDpop === true) await identity.agents.setRequireDpop(a.name, true);
      createdAgents.push({ name: a.name, clientId: added.clientId, clientSecret: added.clientSecret ?? '' });
    }
    // Agents past their expiry are suspended at start and then every lifecycle.sweepSeconds.
    const sweep = () =>
      identity.agents.expireDue().then(
        (expired) => {
          for (const a of expired)
            logger.info({ agent: a.name, agentId: a.id }, 'agent expired and suspended');
        },
        (error) => logger.warn({ err: error }, 'expiry sweep failed'),
      );
    await sweep();
    const sweeper = setInterval(sweep, config.lifecycle.sweepSeconds * 1000);
    sweeper.unref();
    closers.push(() => clearInterval(sweeper));

    const headersFor = async (kind: 'server' | 'api', target: string, agentId: string | null) => {
      const found = await bindings.resolve(kind, target, agentId);
      const headers = found.filter((c) => c.inject === 'header');
      return headers.length === 0 ? undefined : Object.fromEntries(headers.map((c) => [c.field, c.value]));
    };
    const upstreams = new UpstreamRegistry(await withStdioCredentials(config.servers, bindings), {
      logger: logger.child({ part: 'upstream' }),
      baseDir: config.baseDir,
      credentialsFor: (server) => () => headersFor('server', server, null),
    });
    closers.push(() => upstreams.close());
    // Pins (custos vet pin): definitions that drifted from the approved lockfile are withheld.
    let onPinsChanged = () => {};
    const pins =
      config.vet.lockfile === undefined
        ? undefined
        : new PinGate(resolvePath(config.baseDir, config.vet.lockfile), {
            onChange: () => onPinsChanged(),
            onError: (error) =>
              logger.error({ err: error }, 'pin lockfile unreadable; every definition is withheld'),
          });
    if (pins) closers.push(() => pins.close());
    const view = new CatalogView(upstreams, pins);
    const calls = new Histogram({
      name: 'custos_call_duration_seconds',
      help: 'governed calls by method and outcome, from arrival to answer',
      labelNames: ['method', 'outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers: [metrics],
    });
    const detect = await DetectService.open({
      store,
      clock,
      ids,
      config: config.detect,
      agents: identity.agents,
      playbooks: config.detect.playbooks
        ? loadPlaybooks(resolvePath(config.baseDir, config.detect.playbooks))
        : [],
      logger: logger.child({ part: 'detect' }),
      audit,
    });
    closers.push(() => detect.close());
    // The revoke_bindings playbook step: an agent's own upstream bindings go; shared ones stay.
    // biome-ignore lint/correctness/useHookAtTopLevel: DetectService.useHooks is not a React hook
    detect.useHooks({
      revokeBindings: async (agentId) => ({
        revoked: await store.db.transaction().execute((trx) => deleteAgentBindings(trx, agentId)),
      }),
    });
    // Kills and resumes made by other processes (the CLI without a server, other replicas).
    const detectRefresher = setInterval(() => {
      detect.refresh().catch((error) => logger.warn({ err: error }, 'containment refresh failed'));
    }, 2000);
    detectRefresher.unref();
    closers.push(() => clearInterval(detectRefresher));
    const budgets = new TaskBudgets(store);
    const webhook = config.approvals.webhook;
    const approvals = new ApprovalService({
      store,
      clock,
      ids,
      config: config.approvals,
      audit,
      annotationsOf: (id) => policy.annotationsOf(id),
      links: new LinkSigner(loadLinkKey(config.dataDir)),
      ...(webhook === undefined
        ? {}
        : {
            webhook: new WebhookChannel({
              url: webhook.url,
              headers: webhook.headers,
              baseUrl: url,
              retry: { attempts: webhook.attempts, backoffMs: webhook.backoffMs, maxDelayMs: 10_000 },
              onError: (error, approvalId) =>
                logger.warn({ err: error, approvalId }, 'approval webhook failed'),
            }),
          }),
    });
    // A kill or quarantine cancels the held approvals of what it contains and revokes its grants.
    detect.onContain(async ({ containment }) => ({
      action: 'cancel_approvals',
      detail: { ...(await approvals.cancelContained(containment)) },
    }));
    const pipeline = new Pipeline({
      clock,
      view,
      policy,
      budgets,
      audit,
      contain: detect,
      approvals,
      verifyAccessToken: (token, presentation) =>
        identity.verifyAccessToken(token, presentation).catch((error: unknown) => {
          // Calls with tokens a quarantine ended are counted on its incident.
          detect.noteRefusedToken(token, error);
          throw error;
        }),
      observe: (method, outcome, seconds) => calls.observe({ method, outcome }, seconds),
      credentials: {
        headersFor,
        rejected: (headers) => {
          for (const value of Object.values(headers)) oauth.invalidateToken(value.replace(/^Bearer\s+/i, ''));
        },
      },
    });
    const apis = new Map(
      Object.entries(config.apis).map(([name, api]) => [name, new ApiUpstream(name, api)]),
    );
    closers.push(async () => {
      for (const api of apis.values()) await api.close();
    });
    const downstream = new Downstream({ clock, view, pipeline, policy });
    const allowedHosts = isLoopback(host)
      ? [
          `127.0.0.1:${port}`,
          `localhost:${port}`,
          `[::1]:${port}`,
          ...(config.listen.publicUrl ? [new URL(url).host] : []),
        ]
      : [];
    const mcp = new McpHttp({
      downstream,
      authenticate: (token, presentation) => pipeline.authenticate(token, presentation),
      publicBase: url,
      hasServer: (name) => upstreams.get(name) !== undefined,
      resourceMetadataUrl: `${url}/.well-known/oauth-protected-resource/mcp`,
      allowedHosts,
    });
    closers.push(() => mcp.close());
    upstreams.onCatalogChanged((change) => {
      view.invalidate();
      for (const part of change.parts) {
        if (part === 'tools' || part === 'prompts') mcp.listChanged(part, change.server);
        else if (part === 'resources' || part === 'resourceTemplates')
          mcp.listChanged('resources', change.server);
      }
    });
    const auditPins = pins && pinAuditor(store, audit, clock, () => pins.lockfile);
    await auditPins?.();
    onPinsChanged = () => {
      auditPins?.().catch((error) => logger.error({ err: error }, 'recording a pin change failed'));
      view.invalidate();
      mcp.listChanged('tools', null);
      mcp.listChanged('prompts', null);
      mcp.listChanged('resources', null);
    };
    upstreams.onNotification((n) => {
      if (n.method === 'notifications/resources/updated') mcp.resourceUpdated(n.server, n.params);
      else if (n.method === 'notifications/message') mcp.logMessage(n.server, n.params);
    });
    // One watcher: PolicyStore.watch replaces any earlier one, so both jobs share it.
    policy.watch({
      onReload: (s) => {
        logger.info({ generation: s.generation, policies: s.policies.length }, 'policies reloaded');
        try {
          archivePolicies();
        } catch (error) {
          logger.error({ err: error, hash: s.hash }, 'could not archive the policy set in force');
        }
        mcp.listChanged('tools', null);
      },
      onError: (problems) =>
        logger.error({ problems }, 'policy change rejected; the previous policies stay in force'),
    });

    const token = adminToken(config.dataDir);
    const users = new UserService({
      store,
      clock,
      ids,
      sessionTtlMs: config.console.sessionHours * 3_600_000,
      sessionIdleMs: config.console.idleMinutes * 60_000,
      audit,
    });
    const app = buildHttpServer({
      logger,
      maxBodyBytes: config.limits.maxBodyBytes,
      identity,
      mcp,
      metrics,
      ready: async () => {
        const statuses = upstreams.statuses();
        return { ready: true, detail: { upstreams: statuses } };
      },
      admin: (server) => {
        registerProxy(server, {
          pipeline,
          apis,
          now: () => clock.now(),
          publicBase: url,
          resourceMetadataUrl: `${url}/.well-known/oauth-protected-resource/mcp`,
        });
        approvalLinkRoutes(approvals)(server);
        oauthCallbackRoutes(oauth, url)(server);
        registerConsoleLogin(server, { users, url, clock, settings: config.console });
        registerConsoleAssets(server);
        registerAdmin(server, {
          adminToken: token,
          authenticateUser: userAuthenticator(users),
          routes: [
            auditRoutes({
              store,
              agentName: (id) => identity.directory.get(id)?.name,
              exporterStats: () => exporters.stats(),
              exports: {
                bundles: new ExportStore(join(config.dataDir, 'exports')),
                log: auditLog,
                newId: () => ids.next('exp'),
                now: () => clock.now(),
              },
            }),
            detectRoutes(detect),
            agentAuthRoutes(identity.agents),
            approvalRoutes({ approvals, agents: identity.agents }),
            userRoutes(users),
            lifecycleRoutes({
              store,
              clock,
              idleDays: config.lifecycle.idleDays,
              review: new AccessReview({
                store,
                clock,
                ids,
                agents: identity.agents,
                audit,
                sources: reachSources({
                  policy,
                  clock,
                  servers: () =>
                    upstreams.list().map((u) => ({ name: u.name, tools: u.catalog()?.tools ?? null })),
                  bindings: bindingsReach((filter) => bindings.list(filter)),
                }),
              }),
            }),
            consoleDataRoutes({
              store,
              agents: identity.agents,
              clock,
              serverTools: (name) => {
                const upstream = upstreams.get(name);
                return upstream === undefined ? undefined : (upstream.catalog()?.tools ?? []);
              },
              // A new request shows in every open console at once, before any audit event names it.
              watch: {
                approvals: async () =>
                  (await approvals.list({ status: 'pending', limit: 500 })).map((a) => a.id),
              },
            }),
            vetRoutes({ config, store, upstreams: () => upstreams.list() }),
            oauthRoutes(oauth),
            vaultRoutes({ vault, bindings, agents: identity.agents }),
          ],
          store,
          agents: identity.agents,
          servers: () =>
            upstreams.list().map((u) => ({
              name: u.name,
              transport: u.transport,
              status: u.status(),
              tools: u.catalog()?.tools.length ?? 0,
              prompts: u.catalog()?.prompts.length ?? 0,
              resources: u.catalog()?.resources.length ?? 0,
            })),
        });
      },
    });
    await upstreams.start();
    await app.listen({ host, port });
    closers.push(() => app.close());

    mkdirSync(config.dataDir, { recursive: true });
    const runtime: RuntimeFile = { url, pid: process.pid };
    writeFileSync(runtimeFilePath(config.dataDir), JSON.stringify(runtime), { mode: 0o600 });
    closers.push(() => rmSync(runtimeFilePath(config.dataDir), { force: true }));

    return {
      config,
      url,
      store,
      identity,
      policy,
      upstreams,
      detect,
      approvals,
      vault,
      oauth,
      bindings,
      createdAgents,
      close,
    };
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
}

/**
 * Stdio servers get their env bindings at spawn (one process serves every agent, so only
 * shared bindings apply). A rotation reaches a stdio server when it is next spawned.
 */
async function withStdioCredentials(
  servers: Readonly<Record<string, ServerConfig>>,
  bindings: BindingService,
): Promise<Record<string, ServerConfig>> {
  const out: Record<string, ServerConfig> = {};
  for (const [name, server] of Object.entries(servers)) {
    if (!isStdioServer(server)) {
      out[name] = server;
      continue;
    }
    // A missing secret leaves the variable unset (the server refuses its callers) rather than stopping Custos.
    const env = (await bindings.resolve('server', name, null).catch(() => [])).filter(
      (c) => c.inject === 'env',
    );
    out[name] =
      env.length === 0
        ? server
        : { ...server, env: { ...server.env, ...Object.fromEntries(env.map((c) => [c.field, c.value])) } };
  }
  return out;
}

/**
 * Records a `vet/pins` audit event for each server whose approved pins (written by
 * `custos vet pin` or `custos vet approve`) differ from the last ones recorded, including
 * changes made while Custos was down. The event's argsHash is the digest of the pin state.
 */
function pinAuditor(store: Store, audit: AuditRecorder, clock: Clock, lockfile: () => Lockfile | undefined) {
  let recorded: Map<string, string> | undefined;
  let queue = Promise.resolve();
  const run = async () => {
    const lock = lockfile();
    if (lock === undefined) return;
    if (recorded === undefined) {
      const rows = await store.db
        .selectFrom('audit_events')
        .select(['server', 'args_hash'])
        .where('agent_id', 'is', null)
        .where('method', '=', 'vet/pins')
        .orderBy('seq')
        .execute();
      recorded = new Map(rows.map((r) => [r.server ?? '', r.args_hash ?? '']));
    }
    for (const [server, pins] of Object.entries(lock.servers)) {
      const digest = serverPinsDigest(pins);
      if (recorded.get(server) === digest) continue;
      const definitions =
        Object.keys(pins.tools).length +
        Object.keys(pins.prompts).length +
        Object.keys(pins.resources).length +
        Object.keys(pins.resourceTemplates).length;
      await audit.record({
        time: clock.now(),
        agentId: null,
        owner: pins.pinnedBy,
        taskId: null,
        method: 'vet/pins',
        server,
        target: null,
        argsHash: digest,
        effect: 'allow',
        policyIds: [],
        reasons: [
          `pins approved by ${pins.pinnedBy} at ${pins.pinnedAt}`,
          `${definitions} definitions pinned`,
        ],
        outcome: 'executed',
        errorCode: null,
        latencyUs: 0,
        traceId: null,
      });
      recorded.set(server, digest);
    }
  };
  // One run at a time: two lockfile changes in quick succession must not record twice.
  return () => {
    queue = queue.then(run, run);
    return queue;
  };
}
