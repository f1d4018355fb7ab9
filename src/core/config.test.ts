import { describe, expect, it } from 'vitest';
import { buildConfig } from './config.js';
import { CustosError } from './errors.js';

function problemsOf(raw: unknown): string {
  try {
    buildConfig(raw, '/srv/custos', { env: {} });
  } catch (error) {
    expect(error).toBeInstanceOf(CustosError);
    expect((error as CustosError).code).toBe('config_invalid');
    return (error as CustosError).message;
  }
  throw new Error('configuration was accepted');
}

describe('configuration', () => {
  it('applies defaults and resolves paths against the file folder', () => {
    const config = buildConfig({}, '/srv/custos', { env: {} });
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 7400 });
    expect(config.storage.url).toBe('sqlite:/srv/custos/.custos/custos.db');
    expect(config.policies).toBe('/srv/custos/policies');
    expect(config.limits.maxBodyBytes).toBe(4 * 1024 * 1024);
    expect(Object.isFrozen(config.listen)).toBe(true);
  });

  it('rejects an unknown key with its path and a fix', () => {
    const message = problemsOf({ listen: { host: '127.0.0.1', prot: 1 } });
    expect(message).toContain('listen.prot: unknown key');
    expect(message).toContain('fix:');
  });

  it('rejects an agent without an owner', () => {
    const message = problemsOf({ agents: [{ name: 'bot', purpose: 'x' }] });
    expect(message).toContain('agents.0.owner');
    expect(message).toContain('email address');
  });

  it('rejects a server that is neither stdio nor http', () => {
    expect(problemsOf({ servers: { files: { port: 3 } } })).toContain('servers.files');
  });

  it('accepts a vault credential on a server and an api, and rejects a malformed one', () => {
    const config = buildConfig(
      {
        servers: { t: { url: 'http://127.0.0.1:9/mcp', credential: 'k' } },
        apis: {
          tickets: {
            url: 'http://127.0.0.1:9/api',
            credential: { secret: 'k', header: 'X-Key: {{secret}}' },
          },
        },
      },
      '/x',
    );
    expect(config.apis.tickets?.timeout).toBe(30);
    const message = problemsOf({
      servers: { t: { url: 'http://127.0.0.1:9/mcp', credential: { value: 'k' } } },
    });
    expect(message).toContain('servers.t');
  });

  it('prefers CUSTOS_DATABASE_URL over the file', () => {
    const config = buildConfig({ storage: { url: 'sqlite:./a.db' } }, '/x', {
      env: { CUSTOS_DATABASE_URL: 'postgres://postgres@127.0.0.1/test' },
    });
    expect(config.storage.url).toBe('postgres://postgres@127.0.0.1/test');
  });

  it('rejects a server name with a dot', () => {
    expect(problemsOf({ servers: { 'a.b': { command: 'x' } } })).toContain('servers');
  });
});
