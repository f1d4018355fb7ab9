import type { Kysely } from 'kysely';
import type { Clock } from '../core/clock.js';
import { type Config, type CredentialConfig, isStdioServer } from '../core/config.js';
import { CustosError } from '../core/errors.js';
import type { IdGenerator } from '../core/ids.js';
import type { Database, Store, VaultBindingTable } from '../store/index.js';
import type { Vault } from './secrets.js';

/** What a binding attaches its secret to: an MCP server or an HTTP API (/proxy/<api>/...). */
export type BindingTargetKind = 'server' | 'api';

export interface Binding {
  readonly id: string;
  readonly secret: string;
  readonly targetKind: BindingTargetKind;
  readonly target: string;
  /** The agent this binding belongs to, or null when every agent shares it. */
  readonly agentId: string | null;
  readonly inject: 'header' | 'env';
  /** Header or environment variable name. */
  readonly field: string;
  /** The value, with {{secret}} where the secret goes. */
  readonly template: string;
  /** 'store' (CLI, admin API) or 'config' (custos.yaml, read-only at runtime). */
  readonly source: 'store' | 'config';
  readonly createdAt: number;
}

export interface BindInput {
  secret: string;
  targetKind: BindingTargetKind;
  target: string;
  agentId?: string | null;
  inject: 'header' | 'env';
  field: string;
  template?: string;
}

/** A credential ready to attach: the filled-in value is secret and must not be logged. */
export interface ResolvedCredential {
  readonly inject: 'header' | 'env';
  readonly field: string;
  readonly value: string;
  readonly bindingId: string;
  readonly secret: string;
}

const placeholder = '{{secret}}';

/** What bindings need of the OAuth broker. */
export interface BrokeredTokens {
  names(): string[];
  accessToken(credential: string): Promise<string>;
}

/** A binding's secret `oauth:<credential>` names an OAuth broker credential instead of a vault secret. */
export function oauthCredentialOf(secret: string): string | undefined {
  return secret.startsWith('oauth:') ? secret.slice('oauth:'.length) : undefined;
}
const headerName = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Hop-by-hop and framing headers a binding may not set. */
const reservedHeaders = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'mcp-session-id',
  'mcp-protocol-version',
]);

/** Parse "Authorization: Bearer {{secret}}" into a header name and value template. */
export function parseHeaderTemplate(text: string): { field: string; template: string } {
  const colon = text.indexOf(':');
  if (colon <= 0) {
    throw new CustosError(
      'bad_request',
      `header template "${text}" must look like "Name: value with {{secret}}"`,
    );
  }
  const field = text.slice(0, colon).trim();
  const template = text.slice(colon + 1).trim();
  validateInjection('header', field, template);
  return { field, template };
}

export function validateInjection(inject: 'header' | 'env', field: string, template: string): void {
  if (inject === 'header' && (!headerName.test(field) || reservedHeaders.has(field.toLowerCase()))) {
    throw new CustosError('bad_request', `"${field}" is not a header a credential may set`);
  }
  if (inject === 'env' && !envName.test(field)) {
    throw new CustosError('bad_request', `"${field}" is not an environment variable name`);
  }
  if (template.split(placeholder).length !== 2) {
    throw new CustosError('bad_request', `the template must contain ${placeholder} exactly once`);
  }
  if (/[\r\n\0]/.test(template)) throw new CustosError('bad_request', 'the template contains a line break');
}

/** Fill a template; a value that would split a header (CR, LF, NUL) is refused, fail closed. */
export function fillTemplate(template: string, value: string, inject: 'header' | 'env'): string {
  if (inject === 'header' && /[\r\n\0]/.test(value)) {
    throw new CustosError(
      'credential_missing',
      'the bound secret cannot go into a header (it contains a line break)',
    );
  }
  return template.replace(placeholder, () => value);
}

/**
 * Which secret goes where. Per-agent bindings win over shared ones for the same target and
 * field; bindings from custos.yaml are shared and come after those made with the CLI or API.
 */
export class BindingService {
  private readonly fromConfig: readonly Binding[];

  constructor(
    private readonly deps: {
      store: Store;
      vault: Vault;
      clock: Clock;
      ids: IdGenerator;
      /** The OAuth broker, for bindings whose secret is `oauth:<credential>`. */
      oauth?: BrokeredTokens;
    },
    configBindings: ReadonlyArray<Omit<BindInput, 'agentId'>> = [],
  ) {
    this.fromConfig = configBindings.map((b, i) => {
      const template = b.template ?? defaultTemplate(b.inject);
      validateInjection(b.inject, b.field, template);
      return {
        id: `config:${b.targetKind}:${b.target}:${i}`,
        secret: b.secret,
        targetKind: b.targetKind,
        target: b.target,
        agentId: null,
        inject: b.inject,
        field: b.field,
        template,
        source: 'config',
        createdAt: 0,
      };
    });
  }

  async bind(input: BindInput): Promise<Binding> {
    const template = input.template ?? defaultTemplate(input.inject);
    validateInjection(input.inject, input.field, template);
    if (input.inject === 'env' && input.agentId) {
      throw new CustosError(
        'bad_request',
        'a stdio server is one process shared by every agent, so its environment cannot differ per agent; bind the secret shared, or serve the upstream over HTTP',
      );
    }
    const brokered = oauthCredentialOf(input.secret);
    if (brokered !== undefined) {
      if (!this.deps.oauth?.names().includes(brokered)) {
        throw new CustosError('not_found', `no OAuth credential named "${brokered}" in custos.yaml`, {
          detail: { fix: `add oauth.credentials.${brokered} to custos.yaml` },
        });
      }
    } else if ((await this.deps.vault.get(input.secret)) === undefined) {
      throw new CustosError('not_found', `no secret named "${input.secret}"`, {
        detail: { fix: `custos secret set ${input.secret} < FILE` },
      });
    }
    const row: VaultBindingTable = {
      id: this.deps.ids.next('bnd'),
      secret: input.secret,
      target_kind: input.targetKind,
      target: input.target,
      agent_id: input.agentId ?? null,
      inject: input.inject,
      field: input.field,
      template,
      created_at: this.deps.clock.now(),
    };
    await this.deps.store.db.transaction().execute(async (trx) => {
      // One binding per target, agent and field: binding again replaces it.
      let existing = trx
        .deleteFrom('vault_bindings')
        .where('target_kind', '=', row.target_kind)
        .where('target', '=', row.target)
        .where('field', '=', row.field);
      existing =
        row.agent_id === null
          ? existing.where('agent_id', 'is', null)
          : existing.where('agent_id', '=', row.agent_id);
      await existing.execute();
      await trx.insertInto('vault_bindings').values(row).execute();
    });
    return toBinding(row);
  }

  async unbind(id: string): Promise<boolean> {
    const result = await this.deps.store.db
      .deleteFrom('vault_bindings')
      .where('id', '=', id)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  /** Every binding (store and configuration), metadata only. */
  async list(
    filter: { targetKind?: BindingTargetKind; target?: string; agentId?: string } = {},
  ): Promise<Binding[]> {
    let query = this.deps.store.db
      .selectFrom('vault_bindings')
      .selectAll()
      .orderBy('target')
      .orderBy('created_at');
    if (filter.targetKind) query = query.where('target_kind', '=', filter.targetKind);
    if (filter.target) query = query.where('target', '=', filter.target);
    if (filter.agentId) query = query.where('agent_id', '=', filter.agentId);
    const stored = (await query.execute()).map(toBinding);
    const configured = this.fromConfig.filter(
      (b) =>
        (!filter.targetKind || b.targetKind === filter.targetKind) &&
        (!filter.target || b.target === filter.target) &&
        !filter.agentId,
    );
    return [...stored, ...configured];
  }

  /**
   * The credentials to attach for one call: the agent's own bindings, else shared ones, per
   * field. Reads the vault on every call, so a rotation takes effect on the next call.
   * A binding whose secret is gone fails the call (credential_missing), never sends it bare.
   */
  async resolve(
    targetKind: BindingTargetKind,
    target: string,
    agentId: string | null,
  ): Promise<ResolvedCredential[]> {
    const rows = await this.deps.store.db
      .selectFrom('vault_bindings')
      .selectAll()
      .where('target_kind', '=', targetKind)
      .where('target', '=', target)
      .execute();
    const chosen = new Map<string, Binding>();
    const key = (b: Binding) => `${b.inject}:${b.field.toLowerCase()}`;
    for (const b of this.fromConfig)
      if (b.targetKind === targetKind && b.target === target) chosen.set(key(b), b);
    for (const row of rows) if (row.agent_id === null) chosen.set(key(toBinding(row)), toBinding(row));
    if (agentId !== null)
      for (const row of rows) if (row.agent_id === agentId) chosen.set(key(toBinding(row)), toBinding(row));
    const resolved: ResolvedCredential[] = [];
    for (const b of chosen.values()) {
      const brokered = oauthCredentialOf(b.secret);
      // A brokered credential is a fresh access token (refreshed ahead of expiry), not a stored value.
      const value =
        brokered === undefined
          ? await this.deps.vault.reveal(b.secret)
          : this.deps.oauth === undefined
            ? undefined
            : await this.deps.oauth.accessToken(brokered);
      if (value === undefined) {
        throw new CustosError('credential_missing', `the credential for ${target} is not in the vault`, {
          detail: { secret: b.secret, fix: `custos secret set ${b.secret} < FILE` },
        });
      }
      resolved.push({
        inject: b.inject,
        field: b.field,
        value: fillTemplate(b.template, value, b.inject),
        bindingId: b.id,
        secret: b.secret,
      });
    }
    return resolved;
  }

  /** Whether the target has any binding at all (so a missing agent binding can be told apart). */
  hasConfigBinding(targetKind: BindingTargetKind, target: string): boolean {
    return this.fromConfig.some((b) => b.targetKind === targetKind && b.target === target);
  }
}

/**
 * Offboarding step: delete an agent's own bindings inside the caller's transaction (shared
 * bindings stay). Returns how many were deleted.
 */
export async function deleteAgentBindings(trx: Kysely<Database>, agentId: string): Promise<number> {
  const result = await trx.deleteFrom('vault_bindings').where('agent_id', '=', agentId).executeTakeFirst();
  return Number(result.numDeletedRows);
}

function defaultTemplate(inject: 'header' | 'env'): string {
  return inject === 'header' ? 'Bearer {{secret}}' : placeholder;
}

function toBinding(row: VaultBindingTable): Binding {
  return {
    id: row.id,
    secret: row.secret,
    targetKind: row.target_kind as BindingTargetKind,
    target: row.target,
    agentId: row.agent_id,
    inject: row.inject as 'header' | 'env',
    field: row.field,
    template: row.template,
    source: 'store',
    createdAt: Number(row.created_at),
  };
}

/** The vault bindings custos.yaml declares (servers.*.credential, apis.*.credential), shared by every agent. */
export function configBindings(config: Config): BindInput[] {
  const out: BindInput[] = [];
  const add = (targetKind: 'server' | 'api', target: string, stdio: boolean, c: CredentialConfig) => {
    const secret = typeof c === 'string' ? c : c.secret;
    if (typeof c !== 'string' && c.env !== undefined) {
      out.push({ secret, targetKind, target, inject: 'env', field: c.env });
      return;
    }
    if (stdio) {
      throw new CustosError(
        'config_invalid',
        `configuration is invalid:\n  servers.${target}.credential: a stdio server takes its credential in an environment variable (fix: { secret: ${secret}, env: VAR })`,
      );
    }
    const header = parseHeaderTemplate(
      typeof c === 'string' || c.header === undefined ? 'Authorization: Bearer {{secret}}' : c.header,
    );
    out.push({
      secret,
      targetKind,
      target,
      inject: 'header',
      field: header.field,
      template: header.template,
    });
  };
  for (const [name, server] of Object.entries(config.servers)) {
    if (server.credential !== undefined) add('server', name, isStdioServer(server), server.credential);
  }
  for (const [name, api] of Object.entries(config.apis)) {
    if (api.credential !== undefined) add('api', name, false, api.credential);
  }
  return out;
}
