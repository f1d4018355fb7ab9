import type { Severity } from './types.js';

/**
 * The OWASP MCP Top 10 (beta, owasp.org/www-project-mcp-top-10) ids this capability maps
 * findings to. Titles as the project lists them; the ordering may still change in the beta.
 */
export const owaspMcpTop10 = {
  MCP01: 'Token Mismanagement and Secret Exposure',
  MCP02: 'Privilege Escalation via Scope Creep',
  MCP03: 'Tool Poisoning',
  MCP04: 'Software Supply Chain Attacks and Dependency Tampering',
  MCP05: 'Command Injection and Execution',
  MCP06: 'Prompt Injection via Contextual Payloads',
  MCP07: 'Insufficient Authentication and Authorization',
  MCP08: 'Lack of Audit and Telemetry',
  MCP09: 'Shadow MCP Servers',
  MCP10: 'Context Injection and Over-Sharing',
} as const;

export type OwaspId = keyof typeof owaspMcpTop10;

export interface Rule {
  id: string;
  /** The usual severity; the rule's doc says when a finding is raised or lowered. */
  severity: Severity;
  title: string;
  owasp: readonly OwaspId[];
  help: string;
}

/** Every rule the deterministic layer has. Ids are stable: suppressions and SARIF refer to them. */
export const rules: readonly Rule[] = [
  {
    id: 'hidden.unicode-tag',
    severity: 'block',
    title: 'Unicode tag characters',
    owasp: ['MCP03'],
    help: 'Characters U+E0000-U+E007F render as nothing but the model reads them as text: a channel for instructions the user cannot see.',
  },
  {
    id: 'hidden.bidi-control',
    severity: 'block',
    title: 'Bidirectional override or isolate characters',
    owasp: ['MCP03'],
    help: 'U+202A-U+202E and U+2066-U+2069 reorder how text is displayed, so what a reviewer sees differs from what the model reads.',
  },
  {
    id: 'hidden.zero-width',
    severity: 'block',
    title: 'Zero-width or invisible characters',
    owasp: ['MCP03'],
    help: 'A run of zero-width or invisible formatting characters (U+200B-U+200D, U+2060-U+2064, U+FEFF) hides data or splits words to evade review. A single joiner inside an emoji sequence is ignored; a lone one is info.',
  },
  {
    id: 'hidden.html-comment',
    severity: 'warn',
    title: 'HTML comment',
    owasp: ['MCP03'],
    help: 'Text inside <!-- --> is hidden when a description is rendered as Markdown or HTML, but the model reads it. Block when the comment addresses the model or gives it instructions.',
  },
  {
    id: 'hidden.encoded-blob',
    severity: 'warn',
    title: 'Encoded text',
    owasp: ['MCP03'],
    help: 'A base64 run that decodes to natural-language text. Block when the decoded text gives instructions.',
  },
  {
    id: 'hidden.whitespace-padding',
    severity: 'warn',
    title: 'Whitespace padding',
    owasp: ['MCP03'],
    help: 'A long run of blank lines, tabs or spaces pushes text out of view in most user interfaces. Block when the text after it addresses the model or gives it instructions.',
  },
  {
    id: 'hidden.ansi-escape',
    severity: 'block',
    title: 'Terminal escape sequences',
    owasp: ['MCP03'],
    help: 'ESC characters can hide, erase or recolour text in terminals that show tool descriptions.',
  },
  {
    id: 'instruction.pseudo-tag',
    severity: 'block',
    title: 'Pseudo-tag addressed to the model',
    owasp: ['MCP03', 'MCP06'],
    help: 'Markup such as <IMPORTANT>, <SYSTEM>, [INST] or {{SYSTEM: frames text as privileged instructions to the model. Ordinary HTML (<b>, <script>) and plain "IMPORTANT:" notes do not fire.',
  },
  {
    id: 'instruction.override',
    severity: 'block',
    title: 'Attempt to override the model instructions',
    owasp: ['MCP03', 'MCP06'],
    help: 'Tells the model to ignore, forget or replace its previous instructions or safety rules, or to reveal its system prompt.',
  },
  {
    id: 'instruction.concealment',
    severity: 'block',
    title: 'Concealment from the user',
    owasp: ['MCP03', 'MCP06'],
    help: 'Tells the model to keep something from the user: "do not tell the user", "without informing the user", "secretly send".',
  },
  {
    id: 'instruction.authority',
    severity: 'warn',
    title: 'Authority framing addressed to the model',
    owasp: ['MCP03', 'MCP06'],
    help: 'Text that speaks to the model as a privileged party: "note to the assistant", "message from the system", "authorised by the developer".',
  },
  {
    id: 'instruction.sequencing',
    severity: 'warn',
    title: 'Sequencing across the session',
    owasp: ['MCP03'],
    help: 'Demands that the tool run before any other tool, after every message, or periodically: a way to see everything the session does.',
  },
  {
    id: 'instruction.skip-confirmation',
    severity: 'warn',
    title: 'Skipping the user confirmation',
    owasp: ['MCP02', 'MCP03'],
    help: 'Tells the model that actions are pre-approved or that the user need not be asked.',
  },
  {
    id: 'instruction.user-override',
    severity: 'warn',
    title: 'Ranking the tool above the user',
    owasp: ['MCP03', 'MCP06'],
    help: 'Tells the model to trust or follow the tool (or content it fetches) over what the user asks.',
  },
  {
    id: 'sensitive.file-request',
    severity: 'block',
    title: 'Request for a sensitive file',
    owasp: ['MCP01', 'MCP03'],
    help: 'Directs the model to read or pass on a credential file (SSH keys, cloud credentials, .env, /etc/shadow...). A bare mention, a negated one ("never read") or a setup note does not fire; an imperative without a named channel is warn.',
  },
  {
    id: 'sensitive.credential-request',
    severity: 'warn',
    title: 'Request for credentials',
    owasp: ['MCP01', 'MCP10'],
    help: 'Directs the model to put passwords, keys, tokens, cookies or one-time codes into a parameter, or a parameter description asks for them.',
  },
  {
    id: 'exfiltration.context-harvest',
    severity: 'warn',
    title: 'Harvesting the conversation or environment',
    owasp: ['MCP10'],
    help: "Directs the model to send the conversation, its system prompt, other tools' results, environment variables or everything the user says through a parameter.",
  },
  {
    id: 'exfiltration.personal-data',
    severity: 'warn',
    title: 'Harvesting personal data',
    owasp: ['MCP10'],
    help: "Directs the model to send the user's personal details (contact data, identifiers, health or financial data) the tool does not need.",
  },
  {
    id: 'exfiltration.directive-param',
    severity: 'warn',
    title: 'Directive to fill a free-text parameter',
    owasp: ['MCP10', 'MCP03'],
    help: 'An instruction to put content (files, results, history) into a free-text parameter of the tool: a channel out of the session.',
  },
  {
    id: 'shadowing.cross-server',
    severity: 'block',
    title: "Instructions about another server's tools",
    owasp: ['MCP03'],
    help: 'The description names a tool of another configured server and changes how or when it is used (when it is called, instead of it, it is broken). Naming another server with such a directive but no tool is warn; a plain reference is info.',
  },
  {
    id: 'shadowing.tool-preference',
    severity: 'warn',
    title: 'Displacing other tools',
    owasp: ['MCP03'],
    help: 'Claims precedence over every other tool ("prefer this over any other tool", "the other ones are outdated").',
  },
  {
    id: 'annotations.contradiction',
    severity: 'warn',
    title: 'Annotation contradicts the tool',
    owasp: ['MCP03', 'MCP02'],
    help: 'readOnlyHint is true but the name or description says the tool deletes, writes, sends or uploads.',
  },
  {
    id: 'schema.over-broad',
    severity: 'info',
    title: 'Over-broad input schema',
    owasp: ['MCP02'],
    help: 'The input schema accepts arbitrary properties or an object parameter without declared properties.',
  },
  {
    id: 'variance.listing',
    severity: 'warn',
    title: 'Definitions vary between listings',
    owasp: ['MCP03', 'MCP04'],
    help: 'Two listings, or listings under different client names, returned different definitions: the server may show reviewers one thing and agents another.',
  },
];

export const ruleById: ReadonlyMap<string, Rule> = new Map(rules.map((r) => [r.id, r]));
