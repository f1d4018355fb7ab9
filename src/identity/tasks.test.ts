import { describe, expect, it } from 'vitest';
import { CustosError } from '../core/errors.js';
import { formatTaskScope, narrowReach, parseTaskScope, taskAllows, taskReachesServer } from './tasks.js';

function codeOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof CustosError) return error.code;
    throw error;
  }
  return 'no error';
}

describe('task scopes', () => {
  it('parses server and tool entries, keeping dots in tool names', () => {
    expect(parseTaskScope('server:files  tool:web.fetch.v2 server:files')).toEqual({
      servers: ['files'],
      tools: ['web.fetch.v2'],
    });
    expect(parseTaskScope(undefined)).toEqual({ servers: null, tools: null });
    expect(formatTaskScope(parseTaskScope('tool:a.b server:c'))).toBe('server:c tool:a.b');
  });

  it('rejects entries that are neither server:NAME nor tool:SERVER.TOOL', () => {
    for (const scope of ['files', 'server:', 'tool:files', 'tool:.x', 'server:Files', 'openid']) {
      expect(codeOf(() => parseTaskScope(scope))).toBe('invalid_scope');
    }
  });

  it('allows a call when its server or its qualified tool is granted', () => {
    const task = { servers: ['files'], tools: ['tickets.create'] };
    expect(taskAllows(task, 'files', 'read')).toBe(true);
    expect(taskAllows(task, 'tickets', 'create')).toBe(true);
    expect(taskAllows(task, 'tickets', 'delete')).toBe(false);
    expect(taskAllows(null, 'anything', 'at-all')).toBe(true);
    expect(taskReachesServer(task, 'tickets')).toBe(true);
    expect(taskReachesServer(task, 'mail')).toBe(false);
  });

  it('narrows within the parent and refuses anything outside it', () => {
    const parent = { servers: ['files'], tools: ['tickets.create'] };
    expect(narrowReach(parent, { servers: [], tools: ['files.read'] })).toEqual({
      servers: [],
      tools: ['files.read'],
    });
    expect(narrowReach(parent, { servers: null, tools: null })).toEqual(parent);
    expect(narrowReach(null, { servers: ['mail'], tools: [] })).toEqual({ servers: ['mail'], tools: [] });
    expect(codeOf(() => narrowReach(parent, { servers: ['tickets'], tools: [] }))).toBe('invalid_scope');
    expect(codeOf(() => narrowReach(parent, { servers: [], tools: ['mail.send'] }))).toBe('invalid_scope');
  });
});
