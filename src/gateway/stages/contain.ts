import type { CallContext, CallOutcome, Verdict } from '../context.js';

/**
 * Containment and inline detection as the gateway uses them (the detect capability
 * implements this). Every method is synchronous and O(1) per call.
 */
export interface ContainPort {
  /** The contain stage: kill switch, quarantined agent or task, disabled server or tool. */
  contain(ctx: CallContext): Verdict;
  /** The detectors of the meter stage; a finding may throttle or quarantine (and stop this call). */
  detect(ctx: CallContext): Verdict;
  /** The last check before forwarding: a containment made while the call waited stops it. */
  admit(ctx: CallContext): Verdict;
  /** Told how every call that reached the contain stage ended. */
  finish(ctx: CallContext, outcome: CallOutcome): void;
}
