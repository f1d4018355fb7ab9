import { expect, it } from 'vitest';
import { describeEachStore } from '../../test/support/stores.js';
import { latestRuns, recordRun } from './runs.js';
import { vetSnapshot } from './service.js';

const snapshot = (name: string) => ({
  name,
  serverInfo: { name, version: '1' },
  tools: [{ name: 't', description: 'Time.', inputSchema: { type: 'object' } }],
  prompts: [],
  resources: [],
  resourceTemplates: [],
});

await describeEachStore('vet_runs', (current) => {
  it('keeps the latest vetting of each server', async () => {
    const { store } = current();
    const a = await vetSnapshot(snapshot('alpha'), 'test', []);
    await recordRun(store, a, 1000);
    await recordRun(store, { ...a, verdict: 'warn' }, 2000);
    await recordRun(store, await vetSnapshot(snapshot('beta'), 'test', []), 1500);
    const latest = await latestRuns(store);
    expect(latest.get('alpha')?.vettedAt).toBe(2000);
    expect(latest.get('alpha')?.verdict).toBe('warn');
    expect(latest.get('beta')?.tier).toBe('medium');
  });
});
