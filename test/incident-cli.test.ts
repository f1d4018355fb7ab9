import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { type CliRun, ensureBuilt, runCli } from './support/cli.js';

function custos(args: string[], cwd: string): Promise<CliRun> {
  return runCli(args, { cwd, env: { CUSTOS_USER: 'dana@example.com' } });
}

describe('custos kill, resume, incident and playbook without a running server', { timeout: 240_000 }, () => {
  let home: string;
  const run = (...args: string[]) => custos(['--config', join(home, 'custos.yaml'), ...args], home);

  beforeAll(async () => {
    ensureBuilt();
    home = mkdtempSync(join(tmpdir(), 'custos-incident-cli-'));
    mkdirSync(join(home, 'policies'));
    mkdirSync(join(home, 'playbooks'));
    writeFileSync(join(home, 'policies', 'none.cedar'), '');
    writeFileSync(
      join(home, 'playbooks', 'triage.yaml'),
      'name: triage\ntrigger: { detectors: [manual] }\nsteps: [quarantine, revoke_bindings, snapshot]\n',
    );
    writeFileSync(
      join(home, 'custos.yaml'),
      stringify({
        storage: { url: `sqlite:${join(home, 'data', 'custos.db')}` },
        policies: './policies',
        servers: {},
        detect: { resume: { approvers: 2 }, playbooks: './playbooks' },
      }),
    );
    expect((await run('agent', 'add', 'etl-bot', '--owner', 'o@example.com', '--purpose', 'etl')).code).toBe(
      0,
    );
  }, 60_000);
  afterAll(() => {
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it('kills an agent in the store, opens an incident, reports it, and needs two people to resume', async () => {
    const killed = await run('kill', '--agent', 'etl-bot', '--reason', 'exfiltration suspected', '--json');
    expect(killed.code).toBe(0);
    const { containment } = JSON.parse(killed.stdout);
    expect(containment).toMatchObject({
      scope: 'agent',
      actor: 'dana@example.com',
      reason: 'exfiltration suspected',
    });
    const shown = JSON.parse((await run('agent', 'show', 'etl-bot', '--json')).stdout);
    expect(shown.agent.epoch).toBe(1);

    const list = JSON.parse((await run('incident', 'list', '--json')).stdout);
    expect(list.incidents.map((i: { id: string }) => i.id)).toEqual([containment.incidentId]);
    const text = await run('incident', 'show', containment.incidentId);
    expect(text.stdout).toContain('time to detect');
    // The "manual" playbook ran on the kill: its steps are on the incident.
    expect(text.stdout).toMatch(/quarantine\s+noop/);
    expect(text.stdout).toMatch(/revoke_bindings\s+noop/);
    expect(text.stdout).toMatch(/snapshot\s+done/);

    const out = join(home, 'report.html');
    expect(
      (await run('incident', 'report', containment.incidentId, '--format', 'html', '--out', out)).code,
    ).toBe(0);
    expect(readFileSync(out, 'utf8')).toContain(`<h1>Incident ${containment.incidentId}</h1>`);
    const md = await run('incident', 'report', containment.incidentId);
    expect(md.stdout).toContain('exfiltration suspected');
    expect((await run('incident', 'report', containment.incidentId, '--format', 'pdf')).code).toBe(2);

    const first = JSON.parse((await run('resume', '--agent', 'etl-bot', '--json')).stdout);
    expect(first).toMatchObject({ lifted: false, votes: 1, needed: 2 });
    const second = await run('resume', '--agent', 'etl-bot', '--by', 'erin@example.com');
    expect(second.stdout).toContain('resumed (2 of 2 approvals)');
    expect(JSON.parse((await run('containment', 'list', '--json')).stdout).containments).toEqual([]);
    // Every step done with the offline CLI is in the audit log, with who did it.
    expect((await run('incident', 'note', containment.incidentId, 'called the owner')).code).toBe(0);
    expect((await run('incident', 'close', containment.incidentId, '--note', 'false alarm')).code).toBe(0);
    const { events } = JSON.parse(
      (await run('audit', 'tail', '--agent', 'etl-bot', '--json', '--limit', '50')).stdout,
    );
    const trail = (events as Array<{ method: string; reasons: string[] }>).map(
      (e) => `${e.method} ${e.reasons.find((r) => r.startsWith('by ') || r.includes(' by ')) ?? ''}`,
    );
    expect(trail).toEqual([
      'agents/onboard onboard by admin token',
      'detect/kill by dana@example.com',
      'incident/open ',
      'detect/resume resume asked by dana@example.com',
      'detect/resume resume asked by erin@example.com',
      'incident/note note by dana@example.com',
      'incident/close closed by dana@example.com',
    ]);
    // A manual kill is not a detector finding.
    expect(
      JSON.parse((await run('detection', 'list', '--agent', 'etl-bot', '--json')).stdout).detections,
    ).toEqual([]);
  });

  it('shows what a playbook would do with --dry-run and records it', async () => {
    const listed = await run('playbook', 'list');
    expect(listed.stdout).toContain('quarantine > revoke_bindings > snapshot');
    const dry = JSON.parse(
      (await run('playbook', 'run', 'triage', '--agent', 'etl-bot', '--dry-run', '--json')).stdout,
    );
    expect(dry.actions.map((a: { kind: string; status: string }) => `${a.kind}:${a.status}`)).toEqual([
      'quarantine:dry-run',
      'revoke_bindings:noop',
      'snapshot:dry-run',
    ]);
    expect(JSON.parse((await run('containment', 'list', '--json')).stdout).containments).toEqual([]);
  });

  it('answers bad usage with exit code 2 and unknown things with 1', async () => {
    expect((await run('kill', '--agent', 'a', '--all')).code).toBe(2);
    expect((await run('resume')).code).toBe(2);
    expect((await run('incident', 'list', '--status', 'maybe')).code).toBe(2);
    const missing = await run('incident', 'show', 'inc_nope');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no incident inc_nope');
    expect((await run('kill', '--agent', 'ghost')).code).toBe(1);
  });
});
