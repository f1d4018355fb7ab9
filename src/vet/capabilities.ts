import type { Json, ServerSnapshot } from './types.js';

/** What a tool can do, as far as its name, description, schema and annotations tell. */
export type Capability = 'reads_private' | 'untrusted_input' | 'sends_out' | 'destructive';

export interface ToolCapabilities {
  server: string;
  tool: string;
  capabilities: Capability[];
}

const words = (tool: Json): string =>
  `${String(tool.name)
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/[_.-]+/g, ' ')} ${typeof tool.description === 'string' ? tool.description : ''}`.toLowerCase();

const privateObject =
  /\b(?:files?|director(?:y|ies)|e-?mails?|mail(?:box)?|inbox|messages?|calendars?|events?|contacts?|database|tables?|rows?|sql|secrets?|credentials?|repos?(?:itor(?:y|ies))?|notes?|logs?|documents?|tickets?|issues?|customers?|employees?|photos?|history|records?|invoices?|accounts?|pages?|memory)\b/;
const readVerb =
  /\b(?:read|get|list|search|query|find|export|fetch|show|retrieve|download|describe|look ?up|scan)\b/;
const untrustedSource =
  /\b(?:web|url|urls|internet|browser|browse|navigate|fetch|scrape|crawl|rss|feed|e-?mails?|inbox|messages?|chat|channel|comments?|issues?|tickets?|pull requests?|reviews?|pages?|search results?|third-party|untrusted)\b/;
const sendVerb =
  /\b(?:send|post|email|mail|sms|webhook|upload|publish|share|tweet|notify|push|comment|reply|invite|forward|submit|transfer|payout|pay)\b/;
const destructiveVerb =
  /\b(?:delete|remove|drop|truncate|overwrite|write|move|rename|purge|wipe|destroy|erase|kill|terminate|flush|reset|restore|refund|revoke|deploy|execute|run)\b/;

/** Classify one tool. Annotations count when present; words decide where they are silent. */
export function classifyTool(server: string, tool: Json): ToolCapabilities {
  const text = words(tool);
  const a = (tool.annotations ?? {}) as Json;
  const props = Object.keys(((tool.inputSchema as Json | undefined)?.properties ?? {}) as Json);
  const caps = new Set<Capability>();
  if (readVerb.test(text) && privateObject.test(text) && a.openWorldHint !== true) caps.add('reads_private');
  if (untrustedSource.test(text) && (readVerb.test(text) || a.openWorldHint === true))
    caps.add('untrusted_input');
  if (
    a.readOnlyHint !== true &&
    (sendVerb.test(text) || props.some((p) => /^(?:url|webhook|endpoint|to|recipients?)$/i.test(p)))
  )
    caps.add('sends_out');
  if (
    a.destructiveHint === true ||
    (a.readOnlyHint !== true && a.destructiveHint !== false && destructiveVerb.test(text))
  )
    caps.add('destructive');
  return { server, tool: String(tool.name), capabilities: [...caps].sort() };
}

export interface ToxicFlow {
  id: 'lethal-trifecta' | 'untrusted-to-destructive' | 'private-to-outbound';
  severity: 'warn' | 'info';
  message: string;
  /** Tools that supply each leg of the flow, "server.tool". */
  legs: Record<string, string[]>;
  /** True when every leg is reachable on one server alone. */
  singleServer: boolean;
}

/**
 * Dangerous combinations across the servers an agent can reach: private data, untrusted
 * content and a way out together let an injection exfiltrate (the "lethal trifecta");
 * untrusted content next to destructive tools lets it destroy.
 */
export function toxicFlows(snapshots: readonly ServerSnapshot[]): {
  tools: ToolCapabilities[];
  flows: ToxicFlow[];
} {
  const tools = snapshots.flatMap((s) => s.tools.map((t) => classifyTool(s.name, t)));
  const having = (c: Capability) =>
    tools.filter((t) => t.capabilities.includes(c)).map((t) => `${t.server}.${t.tool}`);
  const serversOf = (names: string[]) => new Set(names.map((n) => n.slice(0, n.indexOf('.'))));
  const priv = having('reads_private');
  const untrusted = having('untrusted_input');
  const out = having('sends_out');
  const destructive = having('destructive');
  const flows: ToxicFlow[] = [];
  const single = (...legs: string[][]) => {
    const sets = legs.map(serversOf);
    return [...(sets[0] ?? [])].some((s) => sets.every((set) => set.has(s)));
  };
  if (priv.length && untrusted.length && out.length) {
    flows.push({
      id: 'lethal-trifecta',
      severity: 'warn',
      message:
        'an agent reaching these servers reads private data, takes in untrusted content and can send data out: a prompt injection in the content can exfiltrate the data',
      legs: { reads_private: priv, untrusted_input: untrusted, sends_out: out },
      singleServer: single(priv, untrusted, out),
    });
  }
  if (untrusted.length && destructive.length) {
    flows.push({
      id: 'untrusted-to-destructive',
      severity: 'warn',
      message:
        'untrusted content can steer destructive tools: require approval for them or separate the servers',
      legs: { untrusted_input: untrusted, destructive },
      singleServer: single(untrusted, destructive),
    });
  }
  if (priv.length && out.length && !untrusted.length) {
    flows.push({
      id: 'private-to-outbound',
      severity: 'info',
      message: 'private data and an outbound channel are reachable together',
      legs: { reads_private: priv, sends_out: out },
      singleServer: single(priv, out),
    });
  }
  return { tools, flows };
}
