import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { buildConfig } from '../core/config.js';
import { IdGenerator } from '../core/ids.js';
import { openStore, type Store } from '../store/index.js';
import { loadPlaybooks, parsePlaybook } from './playbooks.js';
import { DetectService } from './service.js';

describe('playbooks', () => {
  it('parses steps written as names or as one-key objects, with a trigger', () => {
    const p = parsePlaybook(
      `
name: contain-loop
trigger: { detectors: [loop], actions: [quarantine, alert] }
steps:
  - snapshot
  - notify: { text: "loop!" }
  - open_approval: { approvers: 2 }
`,
      'x.yaml',
    );
    expect(p.steps).toEqual([
      { kind: 'snapshot', options: {} },
      { kind: 'notify', options: { text: 'loop!' } },
      { kind: 'open_approval', options: { approvers: 2 } },
    ]);
    expect(p.detectors).toEqual(['loop']);
    expect(p.dryRun).toBe(false);
  });

  it.each([
    ['name: x\nsteps: [explode]\n', /steps\.0/],
    ['name: x\nsteps: []\n', /steps/],
    ['name: x\nsteps: [{ notify: { webhook: "ftp://x" } }]\n', /steps\.0\.notify/],
    ['name: x\ntrigger: { detectors: [telepathy] }\nsteps: [snapshot]\n', /trigger\.detectors/],
    ['name: X Y\nsteps: [snapshot]\n', /name/],
    ['name: x\nsteps: [snapshot]\nextra: 1\n', /extra|Unrecognized/i],
    ['name: [', /not valid YAML/],
  ])('rejects a bad playbook with the key path: %s', (text, problem) => {
    expect(() => parsePlaybook(text, 'bad.yaml')).toThrow(problem);
  });

  it('refuses two playbooks with one name in a directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'custos-playbooks-'));
    try {
      writeFileSync(join(dir, 'a.yaml'), 'name: same\nsteps: [snapshot]\n');
      writeFileSync(join(dir, 'b.yml'), 'name: same\nsteps: [snapshot]\n');
      writeFileSync(join(dir, 'notes.txt'), 'not a playbook');
      expect(() => loadPlaybooks(dir)).toThrow(/two playbooks are named "same"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('running', () => {
    let dir: string;
    let store: Store;
    let received: string[];
    let hook: ReturnType<typeof createServer>;
    let hookUrl: string;
    beforeEach(async () => {
      dir = mkdtempSync(join(tmpdir(), 'custos-playbook-run-'));
      mkdirSync(join(dir, 'data'));
      store = await openStore(`sqlite:${join(dir, 'data', 'custos.db')}`);
      received = [];
      hook = createServer((req, res) => {
        let body = '';
        req.on('data', (d) => {
          body += d;
        });
        req.on('end', () => {
          received.push(body);
          res.writeHead(req.url === '/fail' ? 500 : 200).end();
        });
      });
      await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
      hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}`;
    });
    afterEach(async () => {
      await new Promise((r) => hook.close(r));
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });

    async function service(playbookText: string, detect: Record<string, unknown> = {}) {
      const clock = new ManualClock();
      const agents = {
        get: async (ref: string) => ({ id: ref, name: ref, status: 'active', epoch: 0 }),
        revokeTokens: async () => ({ epoch: 1 }),
      };
      return DetectService.open({
        store,
        clock,
        ids: new IdGenerator(clock),
        config: buildConfig({ detect }, dir).detect,
        agents,
        playbooks: [parsePlaybook(playbookText, 'p.yaml')],
      });
    }

    it('in dry-run mode records what each step would do and does none of it', async () => {
      const detect = await service(
        `name: full\nsteps:\n  - quarantine\n  - revoke_bindings\n  - notify: { webhook: "${hookUrl}/ok" }\n  - open_approval\n  - snapshot\n`,
      );
      const actions = await detect.runPlaybookByName('full', {
        agent: 'agt_a',
        dryRun: true,
        actor: 'alice',
      });
      expect(actions.map((a) => `${a.kind}:${a.status}`)).toEqual([
        'quarantine:dry-run',
        'revoke_bindings:noop',
        'notify:dry-run',
        'open_approval:noop',
        'snapshot:dry-run',
      ]);
      expect(detect.containments()).toEqual([]);
      expect(received).toEqual([]);
    });

    it('runs for real: quarantines (opening an incident), notifies, uses the hooks once registered, records a failed webhook', async () => {
      const detect = await service(
        `name: full\nsteps:\n  - quarantine\n  - revoke_bindings\n  - notify: { webhook: "${hookUrl}/fail" }\n  - open_approval: { approvers: 2 }\n  - snapshot\n`,
      );
      const revoked: string[] = [];
      detect.useHooks({
        revokeBindings: async (agentId) => {
          revoked.push(agentId);
          return { revoked: 3 };
        },
        openResumeApproval: async (c, approvers) => ({ id: `apr_${c.target}_${approvers}` }),
      });
      const actions = await detect.runPlaybookByName('full', {
        agent: 'agt_b',
        dryRun: false,
        actor: 'alice',
      });
      expect(actions.map((a) => `${a.kind}:${a.status}`)).toEqual([
        'quarantine:done',
        'revoke_bindings:done',
        'notify:failed',
        'open_approval:done',
        'snapshot:done',
      ]);
      expect(actions[2]?.detail.error).toContain('HTTP 500');
      expect(actions[3]?.detail).toEqual({ id: 'apr_agt_b_2' });
      expect(revoked).toEqual(['agt_b']);
      // Every step is recorded on the incident the quarantine opened.
      const incidentId = actions[0]?.detail.incident as string;
      const recorded = await detect.actions(incidentId);
      expect(recorded.filter((a) => a.playbook === 'full').map((a) => a.kind)).toEqual([
        'revoke_bindings',
        'notify',
        'open_approval',
        'snapshot',
      ]);
    });
  });
});
