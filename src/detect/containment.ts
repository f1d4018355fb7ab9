import { CustosError } from '../core/errors.js';
import type { ContainmentTable } from '../store/index.js';

/** What a containment stops: everything, one agent, one task, one server, or one tool. */
export type ContainScope = 'all' | 'agent' | 'task' | 'server' | 'tool';

export const containScopes: readonly ContainScope[] = ['all', 'agent', 'task', 'server', 'tool'];

export interface ResumeVote {
  readonly by: string;
  readonly at: number;
}

/** A kill switch, scoped kill or quarantine in force (or lifted). Times in ms. */
export interface Containment {
  readonly id: string;
  readonly scope: ContainScope;
  /** Agent id, task id, server name, "server.tool", or "*" for all. */
  readonly target: string;
  readonly reason: string;
  readonly actor: string;
  readonly incidentId: string | null;
  readonly createdAt: number;
  readonly resumeVotes: readonly ResumeVote[];
  readonly liftedAt: number | null;
}

export function containmentFromRow(row: ContainmentTable): Containment {
  return {
    id: row.id,
    scope: row.scope as ContainScope,
    target: row.target,
    reason: row.reason,
    actor: row.actor,
    incidentId: row.incident_id,
    createdAt: Number(row.created_at),
    resumeVotes: JSON.parse(row.resume_votes) as ResumeVote[],
    liftedAt: row.lifted_at === null ? null : Number(row.lifted_at),
  };
}

export function containmentToRow(c: Containment): ContainmentTable {
  return {
    id: c.id,
    scope: c.scope,
    target: c.target,
    reason: c.reason,
    actor: c.actor,
    incident_id: c.incidentId,
    created_at: c.createdAt,
    resume_votes: JSON.stringify(c.resumeVotes),
    lifted_at: c.liftedAt,
  };
}

/** Validate a scope and target given by a person (CLI or admin API). */
export function parseTarget(
  scope: string,
  target: string | undefined,
): { scope: ContainScope; target: string } {
  if (!containScopes.includes(scope as ContainScope)) {
    throw new CustosError('bad_request', `scope must be one of ${containScopes.join(', ')}`);
  }
  if (scope === 'all') return { scope: 'all', target: '*' };
  if (target === undefined || target.trim() === '') {
    throw new CustosError('bad_request', `a ${scope} containment needs a target`);
  }
  if (scope === 'tool' && !/^[^.]+\..+$/.test(target)) {
    throw new CustosError('bad_request', 'a tool is named "server.tool"');
  }
  return { scope: scope as ContainScope, target };
}

/**
 * The containments in force, indexed for the request path: one flag and four maps, so a
 * call is checked in O(1) whatever the number of containments. Swapped as a whole on
 * refresh; updated in place by this process's own kills and resumes.
 */
export class ContainmentIndex {
  private all: Containment | undefined;
  private readonly agents = new Map<string, Containment>();
  private readonly tasks = new Map<string, Containment>();
  private readonly servers = new Map<string, Containment>();
  private readonly tools = new Map<string, Containment>();
  private count = 0;

  /** Put a containment in force (or replace the one with the same scope and target). */
  add(c: Containment): void {
    if (c.scope === 'all') {
      if (this.all === undefined) this.count += 1;
      this.all = c;
      return;
    }
    const map = this.mapOf(c.scope);
    if (!map.has(c.target)) this.count += 1;
    map.set(c.target, c);
  }

  remove(scope: ContainScope, target: string): void {
    if (scope === 'all') {
      if (this.all !== undefined) this.count -= 1;
      this.all = undefined;
      return;
    }
    if (this.mapOf(scope).delete(target)) this.count -= 1;
  }

  get(scope: ContainScope, target: string): Containment | undefined {
    return scope === 'all' ? this.all : this.mapOf(scope).get(target);
  }

  list(): Containment[] {
    return [
      ...(this.all ? [this.all] : []),
      ...this.agents.values(),
      ...this.tasks.values(),
      ...this.servers.values(),
      ...this.tools.values(),
    ];
  }

  get size(): number {
    return this.count;
  }

  /** The containment that stops this call, if any. */
  match(agentId: string, taskId: string | null, server: string | undefined, tool: string | undefined) {
    if (this.count === 0) return undefined;
    if (this.all !== undefined) return this.all;
    const agent = this.agents.get(agentId);
    if (agent !== undefined) return agent;
    if (taskId !== null && this.tasks.size > 0) {
      const task = this.tasks.get(taskId);
      if (task !== undefined) return task;
    }
    if (server === undefined) return undefined;
    if (this.servers.size > 0) {
      const s = this.servers.get(server);
      if (s !== undefined) return s;
    }
    if (tool !== undefined && this.tools.size > 0) return this.tools.get(`${server}.${tool}`);
    return undefined;
  }

  private mapOf(scope: Exclude<ContainScope, 'all'>): Map<string, Containment> {
    switch (scope) {
      case 'agent':
        return this.agents;
      case 'task':
        return this.tasks;
      case 'server':
        return this.servers;
      case 'tool':
        return this.tools;
    }
  }
}

/** The message an agent reads when a containment refuses its call. */
export function containedMessage(c: Containment): string {
  switch (c.scope) {
    case 'all':
      return 'the global kill switch is on: no calls are forwarded until a human resumes';
    case 'agent':
      return `this agent is quarantined (${c.reason}); a human must resume it`;
    case 'task':
      return `this task is quarantined (${c.reason}); a human must resume it`;
    case 'server':
      return `server ${c.target} is disabled (${c.reason})`;
    case 'tool':
      return `tool ${c.target} is disabled (${c.reason})`;
  }
}
