import { describe, expect, it } from 'vitest';
import { type AuditEventInput, AuditRecorder, TransparencyLog } from '../src/audit/index.js';
import { ManualClock } from '../src/core/clock.js';
import { buildConfig } from '../src/core/config.js';
import { IdGenerator } from '../src/core/ids.js';
import { DetectService, reportMarkdown } from '../src/detect/index.js';
import { AgentDirectory, AgentService } from '../src/identity/index.js';
import { describeEachStore } from './support/stores.js';

const onset = Date.parse('2026-05-04T09:00:00Z');

function call(agentId: string, time: number, outcome: 'executed' | 'denied', n: number): AuditEventInput {
  return {
    time,
    agentId,
    owner: 'owner@example.com',
    taskId: null,
    method: 'tools/call',
    server: 'tickets',
    target: 'close_ticket',
    argsHash: `hash-${n}`,
    effect: outcome === 'executed' ? 'allow' : 'deny',
    policyIds: [],
    reasons: outcome === 'denied' ? ['contained'] : [],
    outcome,
    errorCode: outcome === 'denied' ? 'contained' : null,
    latencyUs: 100,
    traceId: null,
  };
}

await describeEachStore('detect', (current) => {
  describe('containments, incidents and their timeline', () => {
    it('stores a kill, rebuilds the incident from the audit log, takes notes, closes, and resumes with two humans', async () => {
      const { store } = current();
      const clock = new ManualClock(onset - 10 * 60_000);
      const ids = new IdGenerator(clock);
      const agents = new AgentService({ store, clock, ids, directory: new AgentDirectory(store) });
      const added = await agents.add({
        name: `ticket-bot-${Date.now()}`,
        owner: 'owner@example.com',
        purpose: 'tickets',
      });
      const other = await agents.add({
        name: `other-bot-${Date.now()}`,
        owner: 'owner@example.com',
        purpose: 'other',
      });
      const id = added.agent.id;
      const log = await TransparencyLog.open(store, { clock });
      const recorder = new AuditRecorder(store, log, ids, { commitDelayMs: 0 });
      // Before onset: 3 calls within the lookback, 1 long before it; another agent meanwhile.
      const inputs = [
        call(id, onset - 30 * 60_000, 'executed', 0),
        call(id, onset - 4 * 60_000, 'executed', 1),
        call(id, onset - 2 * 60_000, 'executed', 2),
        call(id, onset - 60_000, 'executed', 3),
        call(other.agent.id, onset - 1000, 'executed', 99),
        // From onset: 5 calls run before the kill, then 2 blocked.
        ...[0, 1, 2, 3, 4].map((i) => call(id, onset + i * 100, 'executed', 10 + i)),
      ];
      for (const input of inputs) await recorder.record(input);
      const config = buildConfig(
        { detect: { resume: { approvers: 2 }, incidents: { lookbackMinutes: 5 } } },
        '/tmp',
      ).detect;
      const detect = await DetectService.open({ store, clock, ids, config, agents });
      clock.set(onset + 500);
      const containment = await detect.kill({
        scope: 'agent',
        target: added.agent.name,
        actor: 'alice@example.com',
      });
      expect(containment.target).toBe(id);
      expect((await agents.require(id)).epoch).toBe(1);
      for (const i of [0, 1]) await recorder.record(call(id, onset + 600 + i, 'denied', 20 + i));

      // A second process sees it.
      const elsewhere = await DetectService.open({ store, clock, ids, config, agents });
      expect(elsewhere.containments().map((c) => c.id)).toEqual([containment.id]);

      const incidentId = containment.incidentId as string;
      clock.set(onset + 60_000);
      await detect.addNote(incidentId, 'alice@example.com', 'looking at the ticket queue');
      const summary = await detect.summary(incidentId);
      expect(summary.incident.detector).toBe('manual');
      expect(summary.timeline.map((e) => e.argsHash)).toEqual([
        'hash-1',
        'hash-2',
        'hash-3',
        'hash-10',
        'hash-11',
        'hash-12',
        'hash-13',
        'hash-14',
        'hash-20',
        'hash-21',
      ]);
      // The kill's onset is its own time: the 5 calls before it are history, the 2 after it blocked.
      expect(summary.counts).toEqual({ executed: 0, blocked: 2, failed: 0 });
      expect(summary.timeToContain.actions).toBe(0);
      expect(summary.actions.map((a) => a.kind)).toEqual(['contain', 'revoke_tokens']);
      expect(reportMarkdown(summary)).toContain('looking at the ticket queue');

      const closed = await detect.closeIncident(incidentId, 'bob@example.com', 'false alarm drill');
      expect(closed.status).toBe('closed');
      await expect(detect.closeIncident(incidentId, 'bob@example.com', '')).rejects.toThrow(/already closed/);
      expect((await detect.listIncidents({ status: 'closed' })).map((i) => i.id)).toContain(incidentId);

      expect(await detect.resume({ scope: 'agent', target: id, by: 'bob@example.com' })).toMatchObject({
        lifted: false,
      });
      expect(await elsewhere.resume({ scope: 'agent', target: id, by: 'carol@example.com' })).toMatchObject({
        lifted: true,
        votes: 2,
      });
      await detect.refresh();
      expect(detect.containments()).toEqual([]);
      await expect(detect.resume({ scope: 'agent', target: id, by: 'bob@example.com' })).rejects.toThrow(
        /not contained/,
      );
      await recorder.close();
      await log.close();
    });

    it('remembers first use of a tool across restarts', async () => {
      const { store } = current();
      const clock = new ManualClock(onset);
      const ids = new IdGenerator(clock);
      const agents = { get: async () => undefined, revokeTokens: async () => ({ epoch: 0 }) };
      const config = buildConfig({}, '/tmp').detect;
      const { callContext, principal } = await import('../src/detect/test-support.js');
      const first = await DetectService.open({ store, clock, ids, config, agents });
      const p = principal(`agt_seen_${Date.now()}`, 'seen');
      first.detect(callContext(p, clock.now(), 'files', 'read', 'a'));
      first.detect(callContext(p, clock.now(), 'files', 'read', 'b'));
      await first.settle();
      const second = await DetectService.open({ store, clock, ids, config, agents });
      second.detect(callContext(p, clock.now(), 'files', 'read', 'c'));
      second.detect(callContext(p, clock.now(), 'files', 'write', 'd'));
      await second.settle();
      const found = (await second.detections({ agentId: p.agentId })).map((d) => d.detail).sort();
      expect(found).toEqual(['first use of files.read', 'first use of files.write']);
    });
  });
});
