import type { CallContext } from '../context.js';

/** Send the call to its upstream; the result passes through as the upstream wrote it. */
export async function forward(ctx: CallContext): Promise<Record<string, unknown>> {
  const upstream = ctx.upstream;
  if (upstream === undefined) throw new Error('call reached forward unresolved');
  return upstream.request(ctx.method, ctx.params, {
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    ...(ctx.credentials ? { headers: ctx.credentials } : {}),
    ...(ctx.onProgress ? { onProgress: ctx.onProgress } : {}),
    ...(ctx.onNotification ? { onNotification: ctx.onNotification } : {}),
  });
}
