import { CustosError } from '../core/errors.js';

/**
 * What a task token grants. `servers` and `tools` are either both null (the task does
 * not narrow the agent's reach) or both arrays: a call to SERVER.TOOL is within the task
 * when SERVER is in `servers` or "SERVER.TOOL" is in `tools` (see `taskAllows`).
 * `budget` is a call budget (null: none); `expiresAt` is milliseconds since the Unix epoch.
 */
export interface TaskGrant {
  id: string;
  purpose: string;
  servers: readonly string[] | null;
  tools: readonly string[] | null;
  budget: number | null;
  expiresAt: number;
}

/** The reach a scope string asks for; both null for an empty scope. */
export interface TaskReach {
  readonly servers: readonly string[] | null;
  readonly tools: readonly string[] | null;
}

const serverName = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const toolName = /^[\x21-\x7e]{1,128}$/;

/**
 * Parse an RFC 8693 `scope` of space-separated `server:NAME` and `tool:SERVER.TOOL`
 * entries. The tool part is everything after the first dot, so tool names may contain dots.
 */
export function parseTaskScope(scope: string | undefined): TaskReach {
  const entries = (scope ?? '').split(' ').filter((entry) => entry !== '');
  if (entries.length === 0) return { servers: null, tools: null };
  const servers = new Set<string>();
  const tools = new Set<string>();
  for (const entry of entries) {
    if (entry.startsWith('server:')) {
      const name = entry.slice('server:'.length);
      if (!serverName.test(name)) throw badScope(entry);
      servers.add(name);
    } else if (entry.startsWith('tool:')) {
      const qualified = entry.slice('tool:'.length);
      const dot = qualified.indexOf('.');
      const server = qualified.slice(0, dot);
      const tool = qualified.slice(dot + 1);
      if (dot < 0 || !serverName.test(server) || !toolName.test(tool)) throw badScope(entry);
      tools.add(qualified);
    } else {
      throw badScope(entry);
    }
  }
  return { servers: [...servers].sort(), tools: [...tools].sort() };
}

/** The scope string that describes a reach (for the token response's `scope`). */
export function formatTaskScope(reach: TaskReach): string | undefined {
  if (reach.servers === null && reach.tools === null) return undefined;
  return [
    ...(reach.servers ?? []).map((s) => `server:${s}`),
    ...(reach.tools ?? []).map((t) => `tool:${t}`),
  ].join(' ');
}

function badScope(entry: string): CustosError {
  return new CustosError('invalid_scope', `scope entry "${entry}" is not server:NAME or tool:SERVER.TOOL`);
}

/** Whether a task lets its agent call `tool` on `server`. A null task (agent token) does not narrow. */
export function taskAllows(
  task: Pick<TaskGrant, 'servers' | 'tools'> | null,
  server: string,
  tool: string,
): boolean {
  if (task === null || (task.servers === null && task.tools === null)) return true;
  return (task.servers ?? []).includes(server) || (task.tools ?? []).includes(`${server}.${tool}`);
}

/** Whether a task lets its agent reach `server` at all (for listing tools). */
export function taskReachesServer(
  task: Pick<TaskGrant, 'servers' | 'tools'> | null,
  server: string,
): boolean {
  if (task === null || (task.servers === null && task.tools === null)) return true;
  return (task.servers ?? []).includes(server) || (task.tools ?? []).some((t) => t.startsWith(`${server}.`));
}

/**
 * The reach of a task narrowed from `parent` (a task token's grant, or null for an agent
 * token). An empty request inherits the parent's reach; anything outside it is refused,
 * never silently dropped, so the caller learns its token is narrower than it asked.
 */
export function narrowReach(parent: TaskReach | null, requested: TaskReach): TaskReach {
  const parentOpen = parent === null || (parent.servers === null && parent.tools === null);
  if (requested.servers === null && requested.tools === null) {
    return parentOpen ? { servers: null, tools: null } : (parent as TaskReach);
  }
  if (parentOpen) return requested;
  const outside = [
    ...(requested.servers ?? []).filter((s) => !(parent.servers ?? []).includes(s)).map((s) => `server:${s}`),
    ...(requested.tools ?? [])
      .filter((t) => {
        const dot = t.indexOf('.');
        return !taskAllows(parent, t.slice(0, dot), t.slice(dot + 1));
      })
      .map((t) => `tool:${t}`),
  ];
  if (outside.length > 0) {
    throw new CustosError('invalid_scope', `scope exceeds the subject token's task: ${outside.join(' ')}`, {
      detail: { outside },
    });
  }
  return requested;
}
