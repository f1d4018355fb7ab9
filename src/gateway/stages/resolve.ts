import type { CallContext, Verdict } from '../context.js';
import { proceed, stop } from '../context.js';
import type { CatalogView } from '../view.js';

/** Find the upstream and the definition the call names; an unknown target stops here. */
export function resolve(view: CatalogView) {
  return function resolveStage(ctx: CallContext): Verdict {
    // /proxy calls name their HTTP API in the path; the route resolved it already.
    if (ctx.method === 'http/request')
      return ctx.upstream === undefined ? stop('unknown_server', 'no such API') : proceed;
    const { kind, name } = ctx.target;
    if (kind === 'tool') {
      const found = view.resolveTool(ctx.scope, name);
      if (found === undefined) {
        if (view.withheld(ctx.scope, name, 'tool')) return drift('tool', name);
        return stop('unknown_tool', `no tool named "${name}" is available here`);
      }
      ctx.upstream = found.upstream;
      ctx.upstreamName = found.definition.name;
      ctx.tool = found.definition;
      ctx.params = { ...ctx.params, name: found.definition.name };
      return proceed;
    }
    if (kind === 'prompt') {
      const found = view.resolvePrompt(ctx.scope, name);
      if (found === undefined) {
        if (view.withheld(ctx.scope, name, 'prompt')) return drift('prompt', name);
        return stop('unknown_prompt', `no prompt named "${name}" is available here`);
      }
      ctx.upstream = found.upstream;
      ctx.upstreamName = found.definition.name;
      if (ctx.method === 'prompts/get') ctx.params = { ...ctx.params, name: found.definition.name };
      else
        ctx.params = { ...ctx.params, ref: { ...(ctx.params.ref as object), name: found.definition.name } };
      return proceed;
    }
    if (view.withheldResource(ctx.scope, name)) return drift('resource', name);
    const upstream = view.resolveResource(ctx.scope, name);
    if (upstream === undefined)
      return stop('unknown_resource', `no server here serves the resource "${name}"`);
    ctx.upstream = upstream;
    ctx.upstreamName = name;
    return proceed;
  };
}

/** A definition that changed since it was approved is withheld until a human approves the change. */
function drift(kind: string, name: string): Verdict {
  return stop(
    'definition_drift',
    `the ${kind} "${name}" changed since it was approved and is withheld until an administrator approves the change (custos vet diff)`,
    ['definition_drift'],
  );
}
