import type { PolicySources } from './load.js';
import type { DecisionInput, PolicyPrincipal, PolicyResource } from './types.js';

// Shared fixtures for the policy tests (not exported from index.ts).

export const monday10 = Date.parse('2026-03-02T10:00:00Z');
export const saturday10 = Date.parse('2026-03-07T10:00:00Z');

export function agent(agentId: string, overrides: Partial<PolicyPrincipal> = {}): PolicyPrincipal {
  return {
    agentId,
    name: agentId,
    owner: 'alice@example.com',
    environment: 'production',
    purpose: 'testing',
    ...overrides,
  };
}

export function tool(
  server: string,
  name: string,
  annotations?: PolicyResource['annotations'],
): PolicyResource {
  return annotations === undefined
    ? { server, kind: 'tool', name }
    : { server, kind: 'tool', name, annotations };
}

export function call(
  principal: PolicyPrincipal,
  resource: PolicyResource,
  args: unknown = {},
  time = monday10,
): DecisionInput {
  return { principal, action: 'call_tool', resource, arguments: args, time };
}

export function sources(files: Record<string, string>, schema?: string): PolicySources {
  return {
    files: Object.entries(files).map(([name, text]) => ({ name, text })),
    schema: schema === undefined ? undefined : { name: 'schema.cedarschema', text: schema },
  };
}
