import { describe, expect, it } from 'vitest';
import type { AuditEvent } from './events.js';
import { startExporters } from './exporters.js';

const event: AuditEvent = {
  id: 'evt_1',
  seq: 1,
  time: Date.UTC(2026, 10, 28, 9),
  agentId: 'agt_1',
  owner: 'dana@example.com',
  taskId: 'tsk_1',
  method: 'tools/call',
  server: 'files',
  target: 'read_file',
  argsHash: null,
  effect: 'allow',
  policyIds: ['files:read'],
  reasons: [],
  outcome: 'executed',
  errorCode: null,
  latencyUs: 1500,
  traceId: null,
  policySetHash: null,
  approvalId: null,
};

describe('startExporters', () => {
  it('stops waiting for a dead collector at close and counts what it could not deliver', async () => {
    const drops: Array<[string, number, string]> = [];
    const exporters = startExporters(
      {
        otlp: {
          endpoint: 'http://127.0.0.1:9/v1/traces',
          headers: {},
          includeContent: false,
          serviceName: 'custos',
        },
      },
      {
        baseDir: '.',
        product: { name: 'custos', version: 'test' },
        onDrop: (exporter, n, why) => drops.push([exporter, n, why]),
        closeTimeoutMs: 50,
      },
    );
    exporters.write([event]);
    await exporters.close();
    expect(drops).toContainEqual(['otlp', 2, 'not delivered before shutdown']);
  });
});

describe('startExporters configuration', () => {
  it('refuses an OCSF file it cannot append to, naming the key', async () => {
    expect(() =>
      startExporters(
        { ocsf: { file: '/nonexistent-dir/ocsf.jsonl', includeContent: false } },
        { baseDir: '.', product: { name: 'custos', version: 'test' }, onDrop: () => {} },
      ),
    ).toThrow(/exports\.ocsf\.file: cannot append to \/nonexistent-dir\/ocsf\.jsonl/);
  });
});
