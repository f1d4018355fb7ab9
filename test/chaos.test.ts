import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ChaosRig,
  killSwitch,
  type RunawayResult,
  runaway,
  runCli,
  startChaosRig,
} from '../bench/chaos-scenario.js';
import { startCustos } from '../src/app.js';
import { countEvents, listEvents } from '../src/audit/index.js';
import { buildConfig } from '../src/core/config.js';
import { reportHtml, reportMarkdown } from '../src/detect/index.js';
import { bin, ensureBuilt } from './support/cli.js';

/** A Slack-style incoming webhook on loopback that keeps what it receives. */
async function startReceiver(): Promise<{
  url: string;
  messages: Array<Record<string, unknown>>;
  server: Server;
}> {
  const messages: Array<Record<string, unknown>> = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      messages.push({ ...JSON.parse(body), _contentType: req.headers['content-type'] });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/T000/B000/secret`,
    messages,
    server,
  };
}

const playbook = `
name: contain-runaway
description: what the on-call wants done when an agent runs away
trigger:
  detectors: [anomaly, ceiling, loop, denials, bytes]
steps:
  - quarantine
  - revoke_bindings
  - notify: { text: "runaway agent contained" }
  - open_approval: { approvers: 2 }
  - snapshot
`;

function report(label: string, r: RunawayResult): void {
  console.log(
    `[chaos] ${label}: asked ${r.rate.toFixed(1)}/s, achieved ${r.achievedRate.toFixed(1)}/s; detected by ${r.detector} after ${r.detectionMs?.toFixed(0)} ms; ` +
      `${r.upstreamAfterOnset} calls reached the upstream after onset, ${r.upstreamAfterDetection} after the detection decision; agent saw ${JSON.stringify(r.outcomes)}; ${r.refusedTokens} refused at authentication`,
  );
}

describe('chaos: a real SDK agent runs away through Custos to a counting upstream', {
  timeout: 120_000,
}, () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  beforeAll(async () => {
    ensureBuilt();
    receiver = await startReceiver();
  });
  afterAll(async () => {
    await new Promise((r) => receiver.server.close(r));
  });

  describe('4,000 actions per minute, default detectors', () => {
    let rig: ChaosRig;
    let result: RunawayResult;
    beforeAll(async () => {
      rig = await startChaosRig({
        startCustos,
        buildConfig,
        detect: { notify: { webhook: receiver.url } },
        playbooks: { 'contain-runaway.yaml': playbook },
        upstreamProcess: true,
      });
      result = await runaway(rig, { rate: 4000 / 60, ownProcess: true });
      report('4,000 actions/min', result);
    }, 180_000);
    afterAll(async () => {
      await rig.close();
    });

    it('detects the runaway within 2 s of onset (counted in calls) and lets at most 10 calls reach the upstream after the decision', () => {
      expect(result.detected).toBe(true);
      expect(result.detector).toBe('anomaly');
      // Calls are the clock here: 2 s at 4,000/min is 133 calls, sent at the achieved rate.
      expect(result.upstreamAfterOnset).toBeLessThanOrEqual(Math.ceil(2 * result.achievedRate));
      expect(result.upstreamAfterDetection).toBeLessThanOrEqual(10);
      // The agent's calls after containment were refused: by the contain stage (recorded) or, with
      // the token the quarantine ended, at authentication (counted on the incident).
      expect(result.outcomes.refused + result.outcomes.error).toBeGreaterThan(0);
      expect(result.refusedTokens).toBeGreaterThan(0);
      expect(result.refusedTokens).toBeLessThanOrEqual(result.outcomes.error);
    });

    it('rebuilds a timeline and report that match the audit log and the upstream exactly', async () => {
      const id = result.incidentId as string;
      const summary = await rig.custos.detect.summary(id);
      const agentId = summary.incident.agentId as string;
      const { from, to } = summary.window;
      const audit = await listEvents(rig.custos.store, {
        agentId,
        since: from,
        until: to,
        limit: 100_000,
        from: 'oldest',
      });
      const calls = audit.filter((e) => e.method === 'tools/call');
      expect(summary.truncated).toBe(false);
      expect(summary.timeline.map((e) => e.id)).toEqual(calls.map((e) => e.id));
      // Every executed call reached the upstream; beyond those, only calls cancelled in flight by
      // the containment may have (recorded as failed with code "contained"), and no blocked one did.
      const executed = summary.timeline.filter((e) => e.outcome === 'executed').length;
      const failed = summary.timeline.filter((e) => e.outcome === 'failed');
      expect(failed.every((e) => e.errorCode === 'contained')).toBe(true);
      expect(rig.arrivals.length).toBeGreaterThanOrEqual(executed);
      expect(rig.arrivals.length).toBeLessThanOrEqual(executed + failed.length);
      // Only the governed calls count: not the listings, nor the incident's own admin events.
      const counts = await countEvents(rig.custos.store, {
        agentId,
        since: summary.incident.onsetAt,
        until: to,
        methods: [
          'tools/call',
          'resources/read',
          'prompts/get',
          'completion/complete',
          'resources/subscribe',
        ],
      });
      expect(summary.counts).toEqual({
        executed: counts.executed,
        blocked: counts.denied,
        failed: counts.failed,
      });
      expect(summary.counts.blocked).toBe(
        summary.timeline.filter((e) => e.phase !== 'before' && e.outcome === 'denied').length,
      );
      expect(summary.timeToDetect.actions).toBe(
        summary.timeline.filter((e) => e.phase === 'onset' && e.outcome === 'executed').length,
      );
      expect(summary.timeToContain.actions).toBe(0);
      // What the agent saw adds up: every error was a refusal at authentication or a call cancelled in flight.
      expect(result.outcomes.error).toBe((result.refusedTokens ?? 0) + summary.counts.failed);
      expect(result.outcomes.refused).toBe(summary.counts.blocked);
      // ...and every call the agent saw succeed (normal work and runaway) is an executed call in the timeline.
      expect(executed).toBe(result.normalCalls + result.outcomes.ok);
      const md = reportMarkdown(summary);
      for (const e of summary.timeline) expect(md).toContain(`| ${e.seq} |`);
      expect(md).toContain(`${summary.counts.executed} executed, ${summary.counts.blocked} blocked`);
      const html = reportHtml(summary);
      expect(html.match(/<tr class="[^"]*"><td>/g)?.length).toBe(summary.timeline.length);
      // The admin API serves the same report.
      const res = await fetch(`${rig.custos.url}/api/v1/incidents/${id}/report?format=md`, {
        headers: {
          authorization: `Bearer ${(await import('../src/core/runtime-file.js')).adminToken(rig.dataDir, {})}`,
        },
      });
      expect(await res.text()).toContain(`# Incident ${id}`);
    });

    it('records every playbook step, and says plainly which step does nothing by decision', async () => {
      const actions = await rig.custos.detect.actions(result.incidentId as string);
      const steps = actions
        .filter((a) => a.playbook === 'contain-runaway')
        .map((a) => `${a.kind}:${a.status}`);
      expect(steps).toEqual([
        'quarantine:noop',
        'revoke_bindings:done',
        'notify:done',
        'open_approval:noop',
        'snapshot:done',
      ]);
      expect(actions.map((a) => a.kind)).toEqual(expect.arrayContaining(['contain', 'revoke_tokens']));
      // The vault revoked the agent's own upstream bindings: it has none in this rig.
      const revoke = actions.find((a) => a.kind === 'revoke_bindings');
      expect(revoke?.detail).toMatchObject({ revoked: 0 });
      const snapshot = actions.find((a) => a.kind === 'snapshot');
      expect(snapshot?.detail.containments).toHaveLength(1);
    });

    it('notifies the webhook when the incident opens and closes (Slack-compatible JSON)', async () => {
      const id = result.incidentId as string;
      const opened = receiver.messages.find((m) => String(m.text).includes(`${id} opened`));
      expect(opened?._contentType).toBe('application/json');
      expect(opened?.blocks).toEqual([
        { type: 'section', text: { type: 'mrkdwn', text: expect.stringContaining('anomaly') } },
      ]);
      const closed = await runCli(bin, [
        '--data',
        rig.dataDir,
        'incident',
        'close',
        id,
        '--note',
        'runaway loop in the ticket agent; fixed the retry logic',
        '--by',
        'alice@example.com',
        '--json',
      ]);
      expect(closed.code).toBe(0);
      expect(
        receiver.messages.some((m) => String(m.text).includes(`${id} closed by alice@example.com`)),
      ).toBe(true);
      const shown = await runCli(bin, ['--data', rig.dataDir, 'incident', 'show', id, '--json']);
      const summary = JSON.parse(shown.stdout).summary;
      expect(summary.incident.status).toBe('closed');
      expect(summary.incident.notes[0].text).toContain('retry logic');
    });

    it('lists the detector findings: first use of the tool, then the quarantine', async () => {
      const listed = await runCli(bin, [
        '--data',
        rig.dataDir,
        'detection',
        'list',
        '--agent',
        'runaway',
        '--json',
      ]);
      const found = JSON.parse(listed.stdout).detections.map(
        (d: { detector: string; action: string }) => `${d.detector}:${d.action}`,
      );
      expect(found).toEqual(['anomaly:quarantine', 'first_use:alert']);
    });

    it('keeps the agent contained until a human resumes it', async () => {
      const refused = await runCli(bin, ['--data', rig.dataDir, 'containment', 'list', '--json']);
      expect(JSON.parse(refused.stdout).containments).toHaveLength(1);
      const resumed = await runCli(bin, [
        '--data',
        rig.dataDir,
        'resume',
        '--agent',
        'runaway',
        '--by',
        'bob@example.com',
        '--json',
      ]);
      expect(JSON.parse(resumed.stdout)).toMatchObject({ lifted: true });
      expect(rig.custos.detect.containments()).toEqual([]);
    });
  });

  describe('a burst of 1,000 calls per second, default detectors', () => {
    let rig: ChaosRig;
    let result: RunawayResult;
    beforeAll(async () => {
      rig = await startChaosRig({ startCustos, buildConfig, upstreamProcess: true });
      result = await runaway(rig, { rate: 1000, ownProcess: true });
      report('1,000 calls/s', result);
    }, 180_000);
    afterAll(async () => {
      await rig.close();
    });

    it('detects the burst within 2 s of onset (counted in calls) and lets at most 10 calls reach the upstream after the decision', () => {
      expect(result.detected).toBe(true);
      expect(result.upstreamAfterOnset).toBeLessThanOrEqual(Math.ceil(2 * result.achievedRate));
      expect(result.upstreamAfterDetection).toBeLessThanOrEqual(10);
    });
  });

  describe('custos kill', () => {
    let rig: ChaosRig;
    beforeAll(async () => {
      // Detectors that would not stop this agent: only the kill does.
      rig = await startChaosRig({
        startCustos,
        buildConfig,
        detect: {
          anomaly: { action: 'off' },
          ceiling: { action: 'off' },
          loop: { action: 'off' },
          firstUse: { action: 'off' },
        },
        upstreamProcess: true,
      });
    }, 180_000);
    afterAll(async () => {
      await rig.close();
    });

    it('lets zero calls reach the upstream after `custos kill --agent` returns', async () => {
      const result = await killSwitch(rig, { bin, rate: 200 });
      console.log(
        `[chaos] kill: ${result.upstreamBeforeKillReturned} calls reached the upstream before custos kill returned, ${result.upstreamAfterKillReturned} after`,
      );
      expect(result.cli.code).toBe(0);
      expect(JSON.parse(result.cli.stdout).containment.scope).toBe('agent');
      expect(result.upstreamBeforeKillReturned).toBeGreaterThan(0);
      expect(result.upstreamAfterKillReturned).toBe(0);
      const [incident] = await rig.custos.detect.listIncidents();
      expect(incident?.detector).toBe('manual');
    });

    it('the global kill switch stops every agent, and resuming it needs two humans when configured so', async () => {
      const kill = await runCli(bin, ['--data', rig.dataDir, 'kill', '--all', '--reason', 'drill']);
      expect(kill.code).toBe(0);
      const noScope = await runCli(bin, ['--data', rig.dataDir, 'kill']);
      expect(noScope.code).toBe(2);
      const resumed = await runCli(bin, [
        '--data',
        rig.dataDir,
        'resume',
        '--all',
        '--by',
        'bob@example.com',
        '--json',
      ]);
      expect(JSON.parse(resumed.stdout)).toMatchObject({ lifted: true, needed: 1 });
    });
  });
});
