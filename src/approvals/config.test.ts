import { describe, expect, it } from 'vitest';
import { buildConfig } from '../core/config.js';

const build = (approvals: unknown) => buildConfig({ approvals }, '/tmp', { env: {} });

describe('the approvals section of custos.yaml', () => {
  it('has defaults: hold 50 s; a tier approves with quorum 1 in 5 minutes, owner excluded', () => {
    const config = build({ tiers: { payments: {} } });
    expect(config.approvals.holdSeconds).toBe(50);
    expect(config.approvals.tiers.payments).toMatchObject({
      quorum: 1,
      ttlSeconds: 300,
      ownerMayApprove: false,
      channels: ['console', 'cli'],
    });
    expect(buildConfig({}, '/tmp', { env: {} }).approvals).toEqual({ holdSeconds: 50, tiers: {} });
  });

  it('rejects a quorum larger than the approvers listed', () => {
    expect(() =>
      build({ tiers: { p: { approvers: ['a@example.com', 'A@example.com'], quorum: 2 } } }),
    ).toThrow(/approvals\.tiers\.p\.quorum: quorum 2 is more than/);
    expect(() =>
      build({ tiers: { p: { approvers: ['a@example.com', 'group:finance'], quorum: 3 } } }),
    ).not.toThrow();
  });

  it('rejects approvers that are neither emails nor groups, and unknown keys', () => {
    expect(() => build({ tiers: { p: { approvers: ['alice'] } } })).toThrow(
      /approvals\.tiers\.p\.approvers\.0/,
    );
    expect(() => build({ tiers: { p: { quorom: 2 } } })).toThrow(/approvals\.tiers\.p\.quorom: unknown key/);
  });

  it('rejects the webhook channel without a webhook URL', () => {
    expect(() => build({ tiers: { p: { channels: ['webhook'] } } })).toThrow(/approvals\.webhook is not set/);
    expect(() =>
      build({ webhook: { url: 'http://127.0.0.1:9/hook' }, tiers: { p: { channels: ['webhook'] } } }),
    ).not.toThrow();
  });
});
