import { isCustosError } from '../../core/errors.js';
import type { CallContext, Verdict } from '../context.js';
import { proceed, stop } from '../context.js';

/** The vault as the gateway uses it: credential headers for one upstream and one agent. */
export interface CredentialPort {
  /** Headers to attach, or undefined when the upstream has no binding. Reads the vault on every call. */
  headersFor(
    targetKind: 'server' | 'api',
    target: string,
    agentId: string,
  ): Promise<Record<string, string> | undefined>;
  /** The upstream refused injected credentials as invalid or expired (401): do not use them again. */
  rejected?(headers: Readonly<Record<string, string>>): void;
}

/**
 * The inject stage, the last before forward: look up the upstream's credential for this
 * agent (its own binding, else the shared one) and put it on the context for forward. The
 * agent never sees it; a binding that cannot be filled stops the call rather than sending
 * it without its credential.
 */
export function inject(port: CredentialPort) {
  return async function injectStage(ctx: CallContext): Promise<Verdict> {
    const upstream = ctx.upstream;
    if (upstream === undefined || upstream.transport !== 'http') return proceed;
    const kind = ctx.method === 'http/request' ? 'api' : 'server';
    try {
      const headers = await port.headersFor(kind, upstream.name, ctx.principal.agentId);
      if (headers !== undefined) ctx.credentials = headers;
      return proceed;
    } catch (error) {
      const code = isCustosError(error) ? error.code : 'internal';
      // The broker's own codes tell the agent (and its owner) what to do: reconnect, or retry later.
      if (code === 'oauth_not_connected' || code === 'oauth_refresh_failed') {
        return stop(code, `the OAuth credential for ${upstream.name} is unavailable (${code})`, ['inject']);
      }
      return stop(
        code === 'vault_locked' || code === 'credential_missing' ? code : 'credential_missing',
        `the upstream credential for ${upstream.name} is unavailable`,
        ['inject'],
      );
    }
  };
}
