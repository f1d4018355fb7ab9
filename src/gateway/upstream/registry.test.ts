import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../core/config.js';
import type { CustosError } from '../../core/errors.js';
import { backoffDelay, defaultBackoff } from './backoff.js';
import { UpstreamRegistry } from './registry.js';
import type { StdioUpstream } from './stdio.js';
import { eventually, everythingEntry, freePort, isAlive, memoryLogger } from './test-support.js';
import type { CatalogChange, StatusChange } from './types.js';

describe('backoff', () => {
  it('doubles from 0.5 s up to a 30 s ceiling', () => {
    const delays = [0, 1, 2, 3, 4, 5, 6, 7, 20].map((n) => backoffDelay(defaultBackoff, n));
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  });
});

describe('UpstreamRegistry', () => {
  it('accepts a pino logger', () => {
    const registry = new UpstreamRegistry({}, { logger: pino({ level: 'silent' }) });
    expect(registry.list()).toEqual([]);
  });

  it('starts every server without one failing server holding up the others, and closes them all', async () => {
    const deadPort = await freePort();
    const config = buildConfig(
      {
        servers: {
          everything: { command: process.execPath, args: [everythingEntry, 'stdio'] },
          unreachable: { url: `http://127.0.0.1:${deadPort}/mcp` },
          crashing: { command: process.execPath, args: ['-e', 'process.exit(1)'] },
        },
      },
      process.cwd(),
    );
    const registry = new UpstreamRegistry(config.servers, {
      logger: memoryLogger(),
      backoff: { initialMs: 200, maxMs: 1000 },
    });
    const statuses: StatusChange[] = [];
    const catalogs: CatalogChange[] = [];
    registry.onStatusChanged((change) => statuses.push(change));
    const unsubscribe = registry.onCatalogChanged((change) => catalogs.push(change));
    try {
      await registry.start();
      expect(registry.list().map((upstream) => upstream.name)).toEqual([
        'everything',
        'unreachable',
        'crashing',
      ]);
      expect(registry.get('everything')?.status()).toBe('ready');
      expect(registry.get('everything')?.transport).toBe('stdio');
      expect(registry.get('unreachable')?.transport).toBe('http');
      expect(registry.get('nope')).toBeUndefined();
      expect(registry.statuses()).toEqual({
        everything: 'ready',
        unreachable: 'starting',
        crashing: 'starting',
      });
      expect(await registry.waitReady(300)).toBe(false);
      expect(catalogs.map((change) => change.server)).toEqual(['everything']);
      unsubscribe();

      const refused = registry.get('unreachable')?.request('tools/list', undefined);
      await expect(refused).rejects.toMatchObject({
        code: 'upstream_unavailable',
      } satisfies Partial<CustosError>);
      const result = await registry.get('everything')?.request('tools/call', {
        name: 'echo',
        arguments: { message: 'via registry' },
      });
      expect(result?.content).toEqual([{ type: 'text', text: 'Echo: via registry' }]);

      await eventually(() => registry.get('crashing')?.lastError() !== undefined, 'a recorded failure');
      expect(statuses.some((change) => change.server === 'everything' && change.status === 'ready')).toBe(
        true,
      );

      const pid = (registry.get('everything') as StdioUpstream).pid() as number;
      await registry.close();
      expect(isAlive(pid)).toBe(false);
      expect(Object.values(registry.statuses())).toEqual(['closed', 'closed', 'closed']);
    } finally {
      await registry.close();
    }
  });
});
