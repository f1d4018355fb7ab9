import type { AuditEvent, AuditRecorder } from '../audit/index.js';
import type { Clock } from '../core/clock.js';
import { isCustosError } from '../core/errors.js';
import type { Principal, TokenPresentation } from '../identity/index.js';
import type { CallContext, CallOutcome, Verdict } from './context.js';
import { type ApprovalPort, approve } from './stages/approve.js';
import { authorize, type PolicyPort } from './stages/authorize.js';
import type { ContainPort } from './stages/contain.js';
import { forward } from './stages/forward.js';
import { type CredentialPort, inject } from './stages/inject.js';
import { meter, type TaskBudgets } from './stages/meter.js';
import { record } from './stages/record.js';
import { resolve } from './stages/resolve.js';
import type { CatalogView } from './view.js';

export interface PipelineDeps {
  clock: Clock;
  view: CatalogView;
  policy: PolicyPort;
  budgets: TaskBudgets;
  audit: AuditRecorder;
  /** Human approval for calls a policy allows only with it; absent, no call asks for approval. */
  approvals?: ApprovalPort;
  /** Verifies an access token (and its DPoP proof, if bound) and the agent's revocation epoch. */
  verifyAccessToken(token: string, presentation?: TokenPresentation): Promise<Principal>;
  /** Containment and inline detectors (contain stage, meter detectors, last check before forward). */
  contain?: ContainPort;
  /** Upstream credentials from the vault (inject stage); absent, nothing is attached. */
  credentials?: CredentialPort;
  /** Told about every finished call (metrics). */
  observe?(method: string, outcome: CallOutcome['kind'], seconds: number): void;
}

type Guard = (ctx: CallContext) => Verdict | Promise<Verdict>;

/**
 * The request path of every governed call, top to bottom:
 *
 *   1. authenticate  access token: signature, audience, expiry, agent status and epoch;
 *                    the DPoP proof of a DPoP-bound token (RFC 9449)
 *                    (once per HTTP request, before the MCP message is read: see `authenticate`)
 *   2. resolve       which upstream and which definition the call names
 *   3. contain       kill switch, quarantined agent or task, disabled server or tool
 *   4. meter         inline detectors (may throttle or quarantine), the task token's call budget
 *   5. authorize     the task token's reach, then the Cedar decision
 *   6. approve       for permits that ask for it: consume an approval of exactly this call,
 *                    or hold it for a human decision, or answer "pending"
 *      (contain again: a containment made while the call waited stops it before forward)
 *   7. inject        the upstream credential from the vault (the agent's own binding, else the
 *                    shared one), kept on the context for forward only
 *   8. forward       to the upstream MCP server or HTTP API (/proxy)
 *   9. record        one audit event, durable before the answer leaves
 *
 * /proxy HTTP calls run the same list (method 'http/request', Cedar action http_request).
 * Later capabilities add their stages here: inspect after forward.
 */
export class Pipeline {
  private readonly guards: readonly Guard[];
  private readonly recordStage: (ctx: CallContext, outcome: CallOutcome) => Promise<AuditEvent>;

  constructor(private readonly deps: PipelineDeps) {
    const c = deps.contain;
    this.guards = [
      resolve(deps.view),
      ...(c ? [(ctx: CallContext) => c.contain(ctx), (ctx: CallContext) => c.detect(ctx)] : []),
      meter(deps.budgets),
      authorize(deps.policy, deps.clock),
      ...(deps.approvals ? [approve(deps.approvals)] : []),
      ...(c ? [(ctx: CallContext) => c.admit(ctx)] : []),
      ...(deps.credentials ? [inject(deps.credentials)] : []),
    ];
    this.recordStage = record(deps.audit, deps.policy);
  }

  /**
   * Stage 1: who is calling. Throws CustosError invalid_token, invalid_dpop_proof or
   * agent_inactive. Without `presentation` the token counts as a bearer token, so a
   * DPoP-bound token is refused (fail closed).
   */
  authenticate(token: string, presentation?: TokenPresentation): Promise<Principal> {
    return this.deps.verifyAccessToken(token, presentation);
  }

  /**
   * Run stages 2 to 7 for one call. The outcome is a value: denials are not thrown. If the
   * audit event cannot be written the call fails closed: this rejects and nothing is answered.
   */
  async run(ctx: CallContext): Promise<CallOutcome> {
    let outcome: CallOutcome | undefined;
    for (const guard of this.guards) {
      const returned = guard(ctx);
      // Most guards answer synchronously; awaiting only promises saves a microtask per stage.
      const verdict = returned instanceof Promise ? await returned : returned;
      if (verdict.stop) {
        outcome = { kind: 'denied', stop: verdict, policyIds: ctx.decision?.policyIds ?? [] };
        break;
      }
    }
    if (outcome === undefined) {
      try {
        ctx.result = await forward(ctx);
        outcome = { kind: 'executed', result: ctx.result };
      } catch (error) {
        outcome = { kind: 'failed', error };
        if (
          ctx.credentials !== undefined &&
          isCustosError(error) &&
          error.code === 'upstream_token_rejected'
        ) {
          this.deps.credentials?.rejected?.(ctx.credentials);
        }
      }
    }
    this.deps.contain?.finish(ctx, outcome);
    await this.recordStage(ctx, outcome);
    this.deps.observe?.(ctx.method, outcome.kind, Number(process.hrtime.bigint() - ctx.started) / 1e9);
    return outcome;
  }

  /** Record a listing (tools/list and the like) the agent made. */
  recordListing(
    principal: Principal,
    method: string,
    scope: string | null,
    count: number,
    time: number,
    started: bigint,
  ) {
    return this.deps.audit.record({
      time,
      agentId: principal.agentId,
      owner: principal.owner,
      taskId: principal.task?.id ?? null,
      method,
      server: scope,
      target: null,
      argsHash: null,
      effect: 'allow',
      policyIds: [],
      reasons: [`${count} visible`],
      outcome: 'executed',
      errorCode: null,
      latencyUs: Number(process.hrtime.bigint() - started) / 1000,
      traceId: null,
      // What was visible depends on the policies in force.
      policySetHash: this.deps.policy.policySetHash,
      approvalId: null,
    });
  }
}
