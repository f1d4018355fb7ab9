import { definitionHash } from './pins.js';
import { ruleById } from './rules.js';
import type {
  DefinitionKind,
  Evidence,
  Finding,
  Json,
  Neighbours,
  ServerSnapshot,
  Severity,
} from './types.js';

/**
 * The deterministic detectors. Each rule looks for a structure (a hidden channel, a
 * directive aimed at the model together with what it asks for and where it should go),
 * never for a keyword alone: "secret", "GPU" or ".env" in a description fire nothing.
 * Offsets in evidence are into the field's own text.
 */

/** One piece of text the model reads, with what the rules need to know about its context. */
interface Field {
  server: string;
  kind: DefinitionKind;
  name: string;
  field: string;
  text: string;
  hash: string;
  /** Parameter names of the tool (empty for other kinds). */
  params: readonly string[];
  /** Free-text string parameters of the tool. */
  freeText: readonly string[];
  /** When the text is a parameter's own description: that parameter. */
  param?: string;
}

interface Scan {
  findings: Finding[];
  ownTools: ReadonlySet<string>;
  neighbours: Neighbours;
}

// Vocabulary -----------------------------------------------------------------------------

const negation = /\b(?:not|never|no|don't|doesn't|isn't|aren't|won't|cannot|can't|without|nor)\b/i;
const directiveVerb =
  /\b(?:read|cat|open|pass|send|include|includ(?:e|ing)|append|attach|add|put|place|provide|collect|gather|upload|forward|copy|paste|export|submit|give|supply|enter|save|store|post|call|fill|look for|find|grab|extract|embed|insert)\b/i;
const channelWord = /\b(?:parameter|param|argument|arg|field|input)s?\b/i;

/** Credential files and directories a tool has no business asking the model to read. */
const sensitivePath = new RegExp(
  [
    String.raw`~?\/?\.ssh\/(?:id_[a-z0-9_]+|known_hosts)`,
    String.raw`\bid_(?:rsa|ed25519|ecdsa|dsa)\b`,
    String.raw`~\/\.ssh\b(?!\/(?:authorized_keys|config)\b)`,
    String.raw`~?\/?\.aws(?:\/(?:credentials|config))?\b`,
    String.raw`\.netrc\b`,
    String.raw`\/etc\/(?:passwd|shadow|sudoers)\b`,
    String.raw`(?<![\w.])\.env(?![\w.-])(?! ?\.example)`,
    String.raw`\.env files?\b`,
    String.raw`\.kube\/config\b`,
    String.raw`\.docker\/config\.json\b`,
    String.raw`\.gnupg\b`,
    String.raw`\bsecring\.gpg\b`,
    String.raw`\.password-store\b`,
    String.raw`\.pgpass\b`,
    String.raw`\.npmrc\b`,
    String.raw`\.pypirc\b`,
    String.raw`\.git-credentials\b`,
    String.raw`\bgh\/hosts\.yml\b`,
    String.raw`\bgcloud\/credentials`,
    String.raw`\.(?:bash|zsh)_history\b`,
    String.raw`\bshell history\b`,
    String.raw`\bssh keys?\b`,
    String.raw`\bprivate (?:ssh )?keys?\b`,
  ].join('|'),
  'i',
);

const credentialTerm =
  /\b(?:passwords?|passcodes?|one-time (?:pass)?codes?|otp|api[ _-]?keys?|access (?:keys?|tokens?)|secret (?:access )?keys?|private keys?|seed phrase|recovery phrase|tokens?|session cookies|cookies|credentials?|card (?:numbers|details)|authori[sz]ation header|connection string with its password|[A-Z][A-Z0-9]*_(?:TOKEN|SECRET|KEY|PASSWORD|SECRET_ACCESS_KEY)\b|sk-(?:\.\.\.|[a-z0-9]{3,}))/i;

/** "password reset link", "token count": the term names something else, not a secret to hand over. */
const credentialCompound =
  /^\s*(?:reset|resets|manager|policy|policies|strength|generator|rotation|scanning|scanner|expiry|field|fields|count|counts|hash|hashes|length)\b/i;

const contextTerm =
  /\b(?:(?:full |entire |whole |complete )?conversation(?: history| so far)?|chat history|previous messages|system prompt|developer(?:'s)? (?:instructions|messages)|hidden (?:system )?(?:and developer )?messages|(?:the )?user's (?:last|original|exact|complete|full) (?:message|question)|everything the user (?:writes|says|types|shares)|every(?:thing)? you know about the user|environment variables?|(?:full |complete )?prompt|tool results|results? of (?:that|every|each|the other) (?:call|tool)|full result|shell history|recently opened documents|clipboard)\b/i;

const personalTerm =
  /\b(?:full name|e-?mail address|phone number|home address|date of birth|social security(?: number)?|ssn|mother's maiden name|location|salary|medical|health|address book|contacts)\b/i;

const payloadTerm =
  /\b(?:contents?|full|complete|entire|all|every(?:thing)?|history|transcript|files?|documents?|results?|output|messages?|data|details|body|bodies)\b/i;

// Text helpers ---------------------------------------------------------------------------

interface Sentence {
  start: number;
  text: string;
}

/** Split into sentences (and clauses after ";"), keeping offsets. */
function sentences(text: string): Sentence[] {
  const out: Sentence[] = [];
  const boundary = /(?<!\.)[.!?;](?!\.)(?=\s|$)|\n/g;
  let start = 0;
  for (let m = boundary.exec(text); m !== null; m = boundary.exec(text)) {
    const end = m.index + 1;
    if (end > start) out.push({ start, text: text.slice(start, end) });
    start = end;
  }
  if (start < text.length) out.push({ start, text: text.slice(start) });
  return out;
}

/** Whether the words just before `index` in `sentence` negate what follows. */
function negatedAt(sentence: string, index: number): boolean {
  const before = sentence.slice(Math.max(0, index - 40), index);
  const words = before.split(/\s+/).slice(-5).join(' ');
  return negation.test(words);
}

/** The first directive verb in a sentence that is not negated, if any. */
const directiveVerbGlobal = new RegExp(directiveVerb.source, 'gi');

function liveDirective(sentence: string): RegExpExecArray | undefined {
  const global = directiveVerbGlobal;
  global.lastIndex = 0;
  for (let m = global.exec(sentence); m !== null; m = global.exec(sentence)) {
    if (!negatedAt(sentence, m.index)) return m;
  }
  return undefined;
}

const wordRes = new Map<string, RegExp>();

function wordRe(word: string): RegExp {
  let re = wordRes.get(word);
  if (re === undefined) {
    re = new RegExp(`(?<![\\w-])${word.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w-])`, 'i');
    if (wordRes.size < 10_000) wordRes.set(word, re);
  }
  return re;
}

/** Whether a sentence names a channel: one of the tool's parameters, or "parameter"/"field". */
function namesChannel(sentence: string, field: Field): boolean {
  if (field.param !== undefined) return true;
  if (channelWord.test(sentence)) return true;
  return field.params.some((p) => p.length > 1 && wordRe(p).test(sentence));
}

function namesFreeTextParam(sentence: string, field: Field): boolean {
  if (field.param !== undefined) return field.freeText.includes(field.param);
  return field.freeText.some((p) => wordRe(p).test(sentence));
}

function evidence(text: string, start: number, end: number): Evidence {
  return { text: text.slice(start, end), start, end };
}

function add(scan: Scan, field: Field, rule: string, severity: Severity, message: string, ev: Evidence) {
  const r = ruleById.get(rule);
  if (r === undefined) throw new Error(`unknown rule ${rule}`);
  scan.findings.push({
    rule,
    severity,
    message,
    owasp: r.owasp,
    location: { server: field.server, kind: field.kind, name: field.name, field: field.field },
    evidence: ev,
    definitionHash: field.hash,
  });
}

/** Text that speaks to the model or tells it to do something: used to judge hidden content. */
const addressesModel =
  /\b(?:assistant|the model|the ai|ai agent|llm|you must|you are|ignore|system:|instructions?|before (?:using|calling|answering|returning)|read ~|read the|pass (?:it|its|them|the)|send (?:it|its|them|the)|include (?:it|its|them|the)|call )/i;

// Hidden content ------------------------------------------------------------------------

const tagChars = /[\u{E0000}-\u{E007F}]+/gu;
const bidiChars = /[\u202A-\u202E\u2066-\u2069]+/g;
const invisibleChars = /[\u200B-\u200D\u2060-\u2064\uFEFF\u180E]+/g;
const htmlComment = /(?:<|&lt;)!--([\s\S]*?)(?:--(?:>|&gt;)|$)/g;
const base64Run = /[A-Za-z0-9+/]{40,}={0,2}/g;
const padding = /(?:\n[ \t]*){12,}|[ \t\u00A0\u2000-\u200A\u3000]{20,}/g;
// Built from a string: the escape character is the point of the rule.
const ansi = new RegExp(`${String.fromCharCode(27)}(?:\\[[0-?]*[ -/]*[@-~]|[@-Z\\\\-_])?`, 'g');

function decodeBase64Text(blob: string): string | undefined {
  const bytes = Buffer.from(blob, 'base64');
  const text = bytes.toString('utf8');
  if (text.length < 20) return undefined;
  let printable = 0;
  for (const ch of text) if (/[\x20-\x7E\n\t]/.test(ch)) printable++;
  if (printable / text.length < 0.95) return undefined;
  return (text.match(/ /g)?.length ?? 0) >= 3 ? text : undefined;
}

function hiddenContent(scan: Scan, f: Field) {
  const { text } = f;
  for (const m of text.matchAll(tagChars)) {
    const decoded = [...m[0]].map((c) => String.fromCodePoint((c.codePointAt(0) ?? 0) - 0xe0000)).join('');
    add(
      scan,
      f,
      'hidden.unicode-tag',
      'block',
      `${[...m[0]].length} invisible Unicode tag characters (they read "${decoded.slice(0, 80)}")`,
      evidence(text, m.index, m.index + m[0].length),
    );
  }
  for (const m of text.matchAll(bidiChars)) {
    add(
      scan,
      f,
      'hidden.bidi-control',
      'block',
      'bidirectional override/isolate characters change how the text is displayed',
      evidence(text, m.index, m.index + m[0].length),
    );
  }
  let invisibleCount = 0;
  const runs: RegExpMatchArray[] = [];
  for (const m of text.matchAll(invisibleChars)) {
    const prev = text.codePointAt(Math.max(0, m.index - 2)) ?? 0;
    const next = text.codePointAt(m.index + m[0].length) ?? 0;
    // A lone zero-width joiner between emoji builds one glyph: legitimate.
    if (m[0] === '\u200D' && prev > 0x2000 && next > 0x2000) continue;
    invisibleCount += m[0].length;
    runs.push(m);
  }
  for (const m of runs) {
    const severe = m[0].length >= 2 || invisibleCount >= 3;
    add(
      scan,
      f,
      'hidden.zero-width',
      severe ? 'block' : 'info',
      `${m[0].length} invisible formatting character(s) (${[...m[0]].map((c) => `U+${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`).join(' ')})`,
      evidence(text, m.index ?? 0, (m.index ?? 0) + m[0].length),
    );
  }
  for (const m of text.matchAll(htmlComment)) {
    const body = m[1] ?? '';
    if (!/[A-Za-z]{3,}(?:\W+[A-Za-z]{2,}){2,}/.test(body)) continue;
    const severe = addressesModel.test(body);
    add(
      scan,
      f,
      'hidden.html-comment',
      severe ? 'block' : 'warn',
      severe
        ? 'an HTML comment (hidden when rendered) gives the model instructions'
        : 'an HTML comment hides text when the description is rendered',
      evidence(text, m.index, m.index + m[0].length),
    );
  }
  for (const m of text.matchAll(base64Run)) {
    const decoded = decodeBase64Text(m[0]);
    if (decoded === undefined) continue;
    const severe = addressesModel.test(decoded) || sensitivePath.test(decoded);
    add(
      scan,
      f,
      'hidden.encoded-blob',
      severe ? 'block' : 'warn',
      `base64 text that decodes to "${decoded.slice(0, 100)}"`,
      evidence(text, m.index, m.index + m[0].length),
    );
  }
  for (const m of text.matchAll(padding)) {
    const tail = text.slice(m.index + m[0].length);
    if (tail.trim() === '') continue;
    const severe = addressesModel.test(tail);
    add(
      scan,
      f,
      'hidden.whitespace-padding',
      severe ? 'block' : 'warn',
      severe
        ? `${m[0].length} whitespace characters push instructions to the model out of view`
        : `${m[0].length} whitespace characters push the rest of the text out of view`,
      evidence(text, m.index, m.index + m[0].length),
    );
  }
  for (const m of text.matchAll(ansi)) {
    add(
      scan,
      f,
      'hidden.ansi-escape',
      'block',
      'a terminal escape sequence can hide or rewrite the text shown to a reviewer',
      evidence(text, m.index, m.index + m[0].length),
    );
  }
}

// Instructions aimed at the model --------------------------------------------------------

const pseudoTag =
  /(?:<|&lt;)\s*\/?\s*(?:important|system(?:[_ -]?(?:instruction|prompt|message|note)s?)?|instructions?|secret|hidden|context|admin(?:[-_ ]?override)?|override|assistant|ai|model|critical|inst)\b[^<>\n]{0,40}?\s*(?:>|&gt;)|\[\/?(?:INST|SYSTEM(?: OVERRIDE)?|HIDDEN|IMPORTANT|ADMIN|OVERRIDE|SYS)\]|\{\{\s*(?:SYSTEM|ASSISTANT|INSTRUCTIONS?)\s*:|^#{1,6}\s*(?:instructions|notes?|message)\s+(?:for|to)\s+the\s+(?:assistant|ai|model|llm|agent)\b/gim;

const overridePatterns: RegExp[] = [
  /\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:your\s+|the\s+|my\s+)?(?:previous|prior|above|earlier|preceding|original|existing)\s+(?:instructions?|prompts?|rules|directions|guidelines|messages)/i,
  /\bforget everything you (?:were|have been|are) told\b/i,
  /\b(?:supersedes?|overrides?|replaces?)\s+(?:all\s+)?(?:prior|previous|your|earlier)\s+instructions\b/i,
  /\byour (?:previous|prior|earlier|original) instructions (?:are|have been) (?:cancel+ed|void|revoked|replaced|no longer valid)/i,
  /\bno longer bound by\b/i,
  /\byou are now (?:in (?:maintenance|developer|debug|admin) mode|DAN\b|an? (?:unrestricted|unfiltered))/i,
  /\bsystem prompt (?:update|override)\b/i,
  /\b(?:act as|you are|behave as) an? (?:unrestricted|unfiltered|jailbroken|uncensored)\b/i,
  /\b(?:refusal|safety|content) (?:policy|policies|guidelines|rules)\b[^.\n]{0,50}\b(?:void|suspended|disabled|do not apply|no longer apply)/i,
  /\b(?:reveal|output|print|repeat|disclose) (?:the contents of )?your (?:system prompt|hidden instructions|instructions verbatim)/i,
  /\bignore (?:all )?(?:safety|security) (?:guidelines|rules|instructions)\b/i,
  /\bfrom now on,? you will obey\b/i,
];

const concealmentPatterns: RegExp[] = [
  /\b(?:do not|don't|never|must not|should not|shouldn't|must never)\s+(?:tell|mention|inform|reveal|show|disclose|alert|notify|let)\b[^.!?\n]{0,60}?\b(?:the user|users|them|anyone|the participants)\b/i,
  /\b(?:do not|don't|never|must not)\s+(?:tell|mention|inform|reveal|disclose)\s+(?:this|these|it|that)(?:\s+(?:step|instruction|instructions|file))?\b/i,
  /\bnever (?:reveal|disclose|mention) (?:this|these) instructions?\b/i,
  /\bwithout (?:telling|informing|notifying|alerting|showing|letting)\s+(?:the\s+)?(?:user|them|participants|anyone)\b/i,
  /\b(?:hide|keep)\s+(?:this|it|these|that)\b[^.!?\n]{0,20}\bfrom (?:the )?user\b/i,
  /\bkeep (?:this|it) secret\b/i,
  /\bthe user (?:must|should|will|need) (?:not|never)\s+(?:be told|be informed|see|know|find out|notice|learn)\b/i,
  /\b(?:invisible|hidden) (?:to|from) the user\b/i,
  /\bno need to (?:mention|tell|inform|show)\b[^.!?\n]{0,60}\buser\b/i,
  /\bthe user (?:must not|should not|will not) (?:find out|be told)\b/i,
  /\b(?:secretly|silently|covertly|quietly)\b[^.!?\n]{0,80}?\b(?:send|read|include|pass|upload|forward|add|append|call|put|collect)\b/i,
  /\b(?:send|read|include|pass|upload|forward|add|append|call|put|collect)\b[^.!?\n]{0,80}?\b(?:secretly|silently|covertly)\b/i,
  /\((?:model|ai|assistant) only\)|\bfor the (?:ai|model|assistant) only\b|\((?:not (?:for )?the user)\)/i,
];

const authorityPatterns: RegExp[] = [
  // A heading that addresses the model ("Note to the AI: ..."), not a sentence about instructions.
  /^\W*(?:note|message|instructions?|attention|important instruction)s?\s+(?:to|for)\s+(?:the\s+)?(?:ai|assistant|model|llm|agent)(?: model)?\b/i,
  /\battention,?\s+(?:ai|assistant|model|agent)\b/i,
  /\bassistant instructions?\s*:/i,
  /\bthis is a message from the (?:system|administrator|developer)\b/i,
  /\b(?:authori[sz]ed|instructed) by the (?:developer|administrator|system|admin|operator)\b/i,
  /\btreat this tool'?s? (?:output|description|result) as (?:coming from )?the (?:system|administrator)/i,
  /\bimportant system notice\b/i,
  /\byou are (?:chatgpt's|claude's|the assistant's|the model's) (?:hidden )?supervisor\b/i,
];

const sequencingPatterns: RegExp[] = [
  /\bbefore\s+(?:using|calling|running|invoking)?\s*(?:any|every|all)\s+(?:other\s+)?(?:tools?|calls?|responses?|answers?|actions?)\b/i,
  /\b(?:always\s+)?call\s+this\s+(?:tool\s+)?first\b/i,
  /\bfirst,?\s+before any other\b/i,
  /\b(?:after|with|following)\s+every\s+(?:user\s+)?(?:message|turn|answer|response|tool call|call|request|reply)\b/i,
  /\bafter every tool call\b/i,
  /\bevery (?:few )?turns?\b/i,
  /\bin every conversation\b/i,
  /\bevery time the user\b/i,
  /\bwhenever the user (?:shares|mentions|says|writes|types)\b/i,
  /\bmust (?:run|be called) before any\b/i,
  /\b(?:do this|call (?:it|this)) periodically\b/i,
  /\bbefore every (?:response|answer|reply)\b/i,
];

const skipConfirmationPatterns: RegExp[] = [
  /\b(?:do not|don't|no need to|never|without)\s+(?:ask(?:ing)?|check(?:ing)?|confirm(?:ing)?|prompt(?:ing)?|wait(?:ing)?)\s+(?:the user|with the user|them|for (?:the user's |their )?(?:confirmation|permission|approval))/i,
  /\bwithout asking\b/i,
  /\bdo not ask (?:them|the user) again\b/i,
  /\bpre-?approved\b/i,
  /\b(?:do|does) not need (?:the user's |their )?(?:confirmation|approval|permission)/i,
  /\bbypass (?:the )?(?:confirmation|approval)s?(?: prompts?)?\b/i,
  /\bthe user (?:does not|doesn't) need to be asked\b/i,
  /\bjust (?:make|run|do|execute) (?:it|them)\b/i,
  /\bwhenever a newer version exists\b/i,
];

const userOverridePatterns: RegExp[] = [
  /\btrust (?:the|this) tool over the user\b/i,
  /\bif the user disagrees\b/i,
  /\btakes? (?:priority|precedence) over (?:anything|what|whatever) the user\b/i,
  /\bwhatever (?:the user|they) (?:asks?|says?|names?|wants?)(?: for)?\b/i,
  /\beven if (?:the user|they) (?:asked|asks|disagrees?|says?|said|only)\b/i,
  /\b(?:ignore|override) the user(?:'s)?\b/i,
  /\binstead of your own\b/i,
  /\bfollow the instructions (?:on|in|from) the (?:page|site|document|result|email)\b/i,
  /\bpresent it as (?:that|another|the other) source\b/i,
  /\bretry with sudo\b|\brephrase the command until it succeeds\b/i,
  /\btake priority over anything\b/i,
];

function firstMatch(
  text: string,
  patterns: readonly RegExp[],
): { index: number; length: number } | undefined {
  for (const p of patterns) {
    const m = p.exec(text);
    if (m) return { index: m.index, length: m[0].length };
  }
  return undefined;
}

/** The literal text a regex fragment must start with (lower-cased), up to its first operator. */
function literalPrefix(fragment: string): string | undefined {
  let out = '';
  for (let i = 0; i < fragment.length; i++) {
    const c = fragment[i] as string;
    if (c === '\\') {
      const next = fragment[i + 1] ?? '';
      if (/[.()[\]{}?*+|^$\\/-]/.test(next)) {
        out += next;
        i++;
        continue;
      }
      break;
    }
    if (c === ' ' || '[](){}|.^$+'.includes(c)) break;
    if (c === '?' || c === '*') {
      out = out.slice(0, -1);
      break;
    }
    out += c;
  }
  return out.length >= 2 ? out.toLowerCase() : undefined;
}

/** Split at "|" outside groups and character classes. */
function topLevelAlternatives(source: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let inClass = false;
  let start = 0;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') inClass = true;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) {
      parts.push(source.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(source.slice(start));
  return parts;
}

/**
 * Substrings one of which must occur (case-insensitively) in any text the pattern matches,
 * read off the pattern's first word or first group of words; undefined when that cannot be
 * told, and the pattern is then always tried. A plain includes() is far cheaper than running
 * dozens of regexes over every text, most of which match none.
 */
export function anchorsOf(pattern: RegExp): string[] | undefined {
  if (!pattern.flags.includes('i')) return undefined;
  const branches = topLevelAlternatives(pattern.source);
  const anchors: string[] = [];
  for (const branch of branches) {
    const rest = branch
      .replace(/^\^/, '')
      .replace(/^\\W\*/, '')
      .replace(/^\\b/, '');
    if (rest.startsWith('(?:')) {
      let depth = 0;
      let end = -1;
      for (let i = 0; i < rest.length; i++) {
        if (rest[i] === '\\') {
          i++;
          continue;
        }
        if (rest[i] === '(') depth++;
        else if (rest[i] === ')' && --depth === 0) {
          end = i;
          break;
        }
      }
      if (end < 0 || /[?*]/.test(rest[end + 1] ?? '')) return undefined;
      for (const alt of topLevelAlternatives(rest.slice(3, end))) {
        const lit = literalPrefix(alt);
        if (lit === undefined) return undefined;
        anchors.push(lit);
      }
      continue;
    }
    if (rest.startsWith('(')) return undefined;
    const lit = literalPrefix(rest);
    if (lit === undefined) return undefined;
    anchors.push(lit);
  }
  return anchors;
}

interface AnchoredPattern {
  pattern: RegExp;
  anchors: readonly string[] | undefined;
}

interface InstructionCheck {
  rule: string;
  patterns: readonly AnchoredPattern[];
  severity: Severity;
  message: string;
}

function check(
  rule: string,
  patterns: readonly RegExp[],
  severity: Severity,
  message: string,
): InstructionCheck {
  return {
    rule,
    patterns: patterns.map((pattern) => ({ pattern, anchors: anchorsOf(pattern) })),
    severity,
    message,
  };
}

export const instructionChecks: readonly InstructionCheck[] = [
  check('instruction.override', overridePatterns, 'block', 'tells the model to drop its own instructions'),
  check(
    'instruction.concealment',
    concealmentPatterns,
    'block',
    'tells the model to keep something from the user',
  ),
  check('instruction.authority', authorityPatterns, 'warn', 'addresses the model as a privileged party'),
  check(
    'instruction.sequencing',
    sequencingPatterns,
    'warn',
    'demands to run before or after everything else',
  ),
  check(
    'instruction.skip-confirmation',
    skipConfirmationPatterns,
    'warn',
    'tells the model not to ask the user',
  ),
  check(
    'instruction.user-override',
    userOverridePatterns,
    'warn',
    'ranks the tool (or fetched content) above the user',
  ),
];

function instructions(scan: Scan, f: Field) {
  const { text } = f;
  // HTML-escaped pseudo-tags are as readable to the model as real ones.
  for (const m of text.matchAll(pseudoTag)) {
    add(
      scan,
      f,
      'instruction.pseudo-tag',
      'block',
      `pseudo-tag "${m[0].trim()}" frames text as privileged instructions to the model`,
      evidence(text, m.index, m.index + m[0].length),
    );
    break;
  }
  // Most texts hold none of a pattern's anchor words: skip those patterns without running them.
  const lower = text.toLowerCase();
  const live: Array<{ check: InstructionCheck; patterns: RegExp[] }> = [];
  for (const c of instructionChecks) {
    const patterns = c.patterns
      .filter((p) => p.anchors === undefined || p.anchors.some((a) => lower.includes(a)))
      .map((p) => p.pattern);
    if (patterns.length > 0) live.push({ check: c, patterns });
  }
  if (live.length === 0) return;
  for (const s of sentences(text)) {
    for (const { check: c, patterns } of live) {
      const m = firstMatch(s.text, patterns);
      if (m)
        add(
          scan,
          f,
          c.rule,
          c.severity,
          c.message,
          evidence(text, s.start + m.index, s.start + m.index + m.length),
        );
    }
  }
}

// Sensitive data and exfiltration --------------------------------------------------------

function sensitive(scan: Scan, f: Field) {
  const { text } = f;
  for (const s of sentences(text)) {
    const verb = liveDirective(s.text);
    if (verb === undefined) continue;
    const path = sensitivePath.exec(s.text);
    if (path && !negatedAt(s.text, path.index)) {
      const channel = namesChannel(s.text, f) || /\b(?:upload|send|forward)\b/i.test(s.text);
      const imperative =
        /^\W*(?:(?:before|when|whenever)\b[^,]*,\s*)?(?:also\s+|first\s+|secretly\s+|you must\s+)?(?:read|collect|gather|cat|open|copy)\b/i.test(
          s.text,
        );
      if (channel || imperative) {
        add(
          scan,
          f,
          'sensitive.file-request',
          channel ? 'block' : 'warn',
          channel
            ? `asks the model to take "${path[0]}" and pass it on`
            : `asks the model to read "${path[0]}"`,
          evidence(text, s.start + path.index, s.start + path.index + path[0].length),
        );
        continue;
      }
    }
    const cred = credentialTerm.exec(s.text);
    if (
      cred &&
      verb.index < cred.index &&
      !credentialCompound.test(s.text.slice(cred.index + cred[0].length)) &&
      !negatedAt(s.text, cred.index) &&
      (namesChannel(s.text, f) || /\b(?:requires?|needs?) the user's\b/i.test(s.text))
    ) {
      add(
        scan,
        f,
        'sensitive.credential-request',
        'warn',
        `asks the model to hand over "${cred[0]}"`,
        evidence(text, s.start + cred.index, s.start + cred.index + cred[0].length),
      );
      continue;
    }
    const ctx = contextTerm.exec(s.text);
    if (ctx && verb.index < ctx.index && !negatedAt(s.text, ctx.index) && namesChannel(s.text, f)) {
      add(
        scan,
        f,
        'exfiltration.context-harvest',
        'warn',
        `asks the model to send "${ctx[0]}" through the tool`,
        evidence(text, s.start + ctx.index, s.start + ctx.index + ctx[0].length),
      );
      continue;
    }
    const personal = personalTerm.exec(s.text);
    if (
      personal &&
      verb.index < personal.index &&
      // "send a link to the user's email address" names a destination, not data to hand over
      !/\bto\b/i.test(s.text.slice(Math.max(0, personal.index - 30), personal.index)) &&
      !negatedAt(s.text, personal.index) &&
      /\b(?:the user's|their|user's)\b/i.test(s.text) &&
      (namesChannel(s.text, f) || /\b(?:send|upload|return)\b/i.test(s.text))
    ) {
      add(
        scan,
        f,
        'exfiltration.personal-data',
        'warn',
        `asks the model to hand over personal data ("${personal[0]}")`,
        evidence(text, s.start + personal.index, s.start + personal.index + personal[0].length),
      );
      continue;
    }
    const payload = payloadTerm.exec(s.text);
    if (payload && namesFreeTextParam(s.text, f) && f.param === undefined && !negatedAt(s.text, verb.index)) {
      const quoted = /['"`]([A-Za-z_][\w-]*)['"`]/.exec(s.text);
      if (
        quoted !== null ||
        /\b(?:in|into|as|to) (?:the )?['"`]?\w+['"`]? (?:parameter|argument|field)\b/i.test(s.text)
      )
        add(
          scan,
          f,
          'exfiltration.directive-param',
          'warn',
          'directs the model to put content into a free-text parameter',
          evidence(text, s.start + verb.index, s.start + s.text.trimEnd().length),
        );
    }
  }
}

// Shadowing ------------------------------------------------------------------------------

/** Conditions on another tool's use ("when X is called"): must sit in the clause that names it. */
const shadowTrigger = /\b(?:when|whenever|every time|each time|before|after)\b/i;
/** Replacing, forbidding or rewriting another tool: anywhere in the sentence. */
const shadowDirective =
  /\b(?:instead of|rather than|in place of|must|never (?:use|call)|do not (?:use|call)|don't (?:use|call)|ignore)\b|\b(?:is|are) (?:broken|deprecated|disabled|outdated|wrong|insecure|not secure|unreliable)\b|\bleaks\b|\breturns wrong\b/i;

const preferencePatterns: RegExp[] = [
  /\b(?:prefer|use) this tool (?:over|instead of) (?:any|all|every) other\b/i,
  /\bnever use any other\b/i,
  /\breplaces the built-in\b/i,
  /\bthe other (?:ones|tools) are (?:outdated|deprecated|broken|unsafe)\b/i,
  /\binstead of (?:any|the) other tools?\b/i,
];

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A tool name that reads as a word ("query") only counts next to its server's name. */
function distinctive(tool: string): boolean {
  return /[_\-.]|[a-z][A-Z]/.test(tool);
}

interface OtherRef {
  index: number;
  length: number;
  server: string;
  tool?: string;
}

interface NeighbourTool {
  server: string;
  tool: string;
}

interface CompiledNeighbours {
  /** One pass over a sentence: which neighbour server or distinctive tool names it mentions. */
  any: RegExp;
  /** Lower-cased server name or tool name to what it may refer to. */
  byWord: Map<string, { servers: string[]; tools: NeighbourTool[] }>;
}

const compiledNeighbours = new WeakMap<Neighbours, CompiledNeighbours>();
/** Per-name patterns, built the first time a sentence mentions the name. */
const toolPatterns = new Map<string, { bare: RegExp | undefined; withServer: RegExp }>();
const serverPatterns = new Map<string, RegExp>();

function compileNeighbours(neighbours: Neighbours): CompiledNeighbours {
  let compiled = compiledNeighbours.get(neighbours);
  if (compiled !== undefined) return compiled;
  const byWord = new Map<string, { servers: string[]; tools: NeighbourTool[] }>();
  const entry = (word: string) => {
    const key = word.toLowerCase();
    let e = byWord.get(key);
    if (e === undefined) {
      e = { servers: [], tools: [] };
      byWord.set(key, e);
    }
    return e;
  };
  for (const [server, tools] of neighbours) {
    entry(server).servers.push(server);
    for (const tool of tools) {
      // A word-like tool name ("query") is looked up through its server's name.
      (distinctive(tool) ? entry(tool) : entry(server)).tools.push({ server, tool });
    }
  }
  const words = [...byWord.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
  compiled = {
    any: words.length === 0 ? /$^/g : new RegExp(`(?<![\\w-])(?:${words.join('|')})(?![\\w-])`, 'gi'),
    byWord,
  };
  compiledNeighbours.set(neighbours, compiled);
  return compiled;
}

function patternsFor(server: string, tool: string) {
  const key = `${server}\u0000${tool}`;
  let p = toolPatterns.get(key);
  if (p === undefined) {
    p = {
      bare: distinctive(tool) ? new RegExp(`(?<![\\w.-])${escapeRegExp(tool)}(?![\\w-])`, 'i') : undefined,
      withServer: new RegExp(
        `\\b${escapeRegExp(server)}(?:'s| server's| server)?\\s+(?:the\\s+)?[\`'"]?${escapeRegExp(tool)}\\b`,
        'i',
      ),
    };
    toolPatterns.set(key, p);
  }
  return p;
}

function serverPattern(server: string): RegExp {
  let p = serverPatterns.get(server);
  if (p === undefined) {
    p = new RegExp(`\\b(?:the\\s+)?${escapeRegExp(server)}(?:\\s+server(?:'s)?|'s\\b)`, 'i');
    serverPatterns.set(server, p);
  }
  return p;
}

function otherReference(sentence: string, scan: Scan, own: string): OtherRef | undefined {
  const compiled = compileNeighbours(scan.neighbours);
  compiled.any.lastIndex = 0;
  const mentioned = new Set<string>();
  for (const m of sentence.matchAll(compiled.any)) mentioned.add(m[0].toLowerCase());
  if (mentioned.size === 0) return undefined;
  const candidates = [...mentioned].flatMap((w) => compiled.byWord.get(w)?.tools ?? []);
  for (const { server, tool } of candidates) {
    if (server === own || scan.ownTools.has(tool)) continue;
    const { bare, withServer } = patternsFor(server, tool);
    const m = bare?.exec(sentence) ?? withServer.exec(sentence);
    if (m) return { index: m.index, length: m[0].length, server, tool };
  }
  for (const server of [...mentioned].flatMap((w) => compiled.byWord.get(w)?.servers ?? [])) {
    if (server === own) continue;
    const ref = serverPattern(server).exec(sentence);
    if (ref) return { index: ref.index, length: ref[0].length, server };
  }
  return undefined;
}

function shadowing(scan: Scan, f: Field) {
  const { text } = f;
  for (const s of sentences(text)) {
    const ref = otherReference(s.text, scan, f.server);
    if (ref !== undefined) {
      const clauseStart = s.text.lastIndexOf(',', ref.index) + 1;
      const clauseEnd = s.text.indexOf(',', ref.index + ref.length);
      const clause = s.text.slice(clauseStart, clauseEnd === -1 ? undefined : clauseEnd);
      const directive = shadowDirective.test(s.text) || shadowTrigger.test(clause);
      const severity: Severity = directive ? (ref.tool ? 'block' : 'warn') : 'info';
      add(
        scan,
        f,
        'shadowing.cross-server',
        severity,
        ref.tool
          ? `${directive ? 'changes how the model uses' : 'mentions'} "${ref.tool}" of server "${ref.server}"`
          : `${directive ? 'gives directions about' : 'mentions'} server "${ref.server}"`,
        evidence(text, s.start + ref.index, s.start + ref.index + ref.length),
      );
    }
    const pref = firstMatch(s.text, preferencePatterns);
    if (pref)
      add(
        scan,
        f,
        'shadowing.tool-preference',
        'warn',
        'claims precedence over every other tool',
        evidence(text, s.start + pref.index, s.start + pref.index + pref.length),
      );
  }
}

// Definition-level checks ----------------------------------------------------------------

const mutatingWords = new Set(
  'delete remove drop truncate overwrite write update create send upload post purge wipe destroy erase kill terminate set put insert move rename push publish transfer pay'.split(
    ' ',
  ),
);

/** Whether a tool name ("delete_file", "sendEmail") starts or contains a word that changes state. */
function mutatingName(name: string): string | undefined {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[\s_.-]+/);
  return words.find((w) => mutatingWords.has(w));
}
/** A verb acting on the call's own input ("remove comments from the HTML") changes nothing outside. */
const transformsInput =
  /\bfrom (?:the |a |captured |given )?(?:html|text|input|string|output|markdown|code|content|terminal output|document|data)\b/i;
const mutatingVerb =
  /\b(?:delet(?:e|es|ing)|remov(?:e|es|ing)|drops?|truncat(?:e|es)|overwrit(?:e|es)|writes?|uploads?|uploading|sends?|posts?|purg(?:e|es)|wip(?:e|es)|destroys?|eras(?:e|es)|modif(?:y|ies)|kills?|terminat(?:e|es)|transfers?|publish(?:es)?|pays?)\b/i;

function annotationsCheck(scan: Scan, tool: Json, f: Field) {
  const annotations = tool.annotations as Json | undefined;
  if (annotations?.readOnlyHint !== true) return;
  const name = String(tool.name);
  if (mutatingName(name) !== undefined) {
    add(
      scan,
      { ...f, field: 'name', text: name },
      'annotations.contradiction',
      'warn',
      `readOnlyHint is true but the name "${name}" says it changes something`,
      { text: name, start: 0, end: name.length },
    );
    return;
  }
  if (f.field !== 'description') return;
  for (const s of sentences(f.text)) {
    const m = mutatingVerb.exec(s.text);
    if (m && !negatedAt(s.text, m.index) && !transformsInput.test(s.text)) {
      add(
        scan,
        f,
        'annotations.contradiction',
        'warn',
        `readOnlyHint is true but the description says it "${m[0]}"`,
        evidence(f.text, s.start + m.index, s.start + m.index + m[0].length),
      );
      return;
    }
  }
}

function schemaCheck(scan: Scan, schema: Json | undefined, f: Field) {
  if (schema === undefined) return;
  const open = schema.additionalProperties === true;
  const props = (schema.properties ?? {}) as Record<string, Json>;
  const looseObject = Object.entries(props).find(
    ([, p]) => p?.type === 'object' && p.properties === undefined && p.additionalProperties !== false,
  );
  if (open || looseObject) {
    add(
      scan,
      f,
      'schema.over-broad',
      'info',
      open
        ? 'the input schema accepts any additional property'
        : `parameter "${looseObject?.[0]}" accepts any object`,
      { text: '', start: 0, end: 0 },
    );
  }
}

// Walking a snapshot ---------------------------------------------------------------------

function paramsOf(tool: Json): { params: string[]; freeText: string[] } {
  const schema = tool.inputSchema as Json | undefined;
  const props = (schema?.properties ?? {}) as Record<string, Json>;
  const params = Object.keys(props);
  const freeText = params.filter((p) => {
    const prop = props[p];
    return (
      prop?.type === 'string' &&
      prop.enum === undefined &&
      prop.pattern === undefined &&
      prop.format === undefined &&
      (typeof prop.maxLength !== 'number' || prop.maxLength > 64)
    );
  });
  return { params, freeText };
}

/** Every text the model reads in one definition, with its field path. */
function* textsOf(definition: Json): Generator<[string, string, string | undefined]> {
  if (typeof definition.title === 'string') yield ['title', definition.title, undefined];
  if (typeof definition.description === 'string') yield ['description', definition.description, undefined];
  const annotations = definition.annotations as Json | undefined;
  if (typeof annotations?.title === 'string') yield ['annotations.title', annotations.title, undefined];
  const schema = definition.inputSchema as Json | undefined;
  if (schema !== undefined) yield* schemaTexts(schema, 'inputSchema', undefined);
  if (Array.isArray(definition.arguments)) {
    for (const [i, arg] of (definition.arguments as Json[]).entries())
      if (typeof arg?.description === 'string')
        yield [`arguments.${i}.description`, arg.description, undefined];
  }
}

function* schemaTexts(
  schema: Json,
  path: string,
  param: string | undefined,
): Generator<[string, string, string | undefined]> {
  if (typeof schema.description === 'string' && param !== undefined)
    yield [`${path}.description`, schema.description, param];
  const props = schema.properties as Record<string, Json> | undefined;
  if (props !== undefined && typeof props === 'object') {
    for (const [key, child] of Object.entries(props)) {
      if (child && typeof child === 'object')
        yield* schemaTexts(child, `${path}.properties.${key}`, param ?? key);
    }
  }
  const items = schema.items as Json | undefined;
  if (items && typeof items === 'object' && !Array.isArray(items))
    yield* schemaTexts(items, `${path}.items`, param);
  if (Array.isArray(schema.enum)) {
    for (const [i, value] of schema.enum.entries())
      if (typeof value === 'string' && value.length > 30) yield [`${path}.enum.${i}`, value, param];
  }
}

function scanText(scan: Scan, f: Field) {
  hiddenContent(scan, f);
  instructions(scan, f);
  sensitive(scan, f);
  shadowing(scan, f);
}

/**
 * Vet one server's snapshot against the other servers an agent can reach through the same
 * gateway (neighbours: server name to tool names). Returns the findings, unsorted.
 */
export function detect(snapshot: ServerSnapshot, neighbours: Neighbours = new Map()): Finding[] {
  const ownTools = new Set(snapshot.tools.map((t) => String(t.name)));
  const scan: Scan = { findings: [], ownTools, neighbours };
  const server = snapshot.name;
  if (typeof snapshot.instructions === 'string' && snapshot.instructions !== '') {
    scanText(scan, {
      server,
      kind: 'instructions',
      name: server,
      field: 'instructions',
      text: snapshot.instructions,
      hash: definitionHash({ instructions: snapshot.instructions }),
      params: [],
      freeText: [],
    });
  }
  for (const tool of snapshot.tools) {
    const name = String(tool.name);
    const hash = definitionHash(tool);
    const { params, freeText } = paramsOf(tool);
    let descriptionField: Field | undefined;
    for (const [field, text, param] of textsOf(tool)) {
      const f: Field = {
        server,
        kind: 'tool',
        name,
        field,
        text,
        hash,
        params,
        freeText,
        ...(param ? { param } : {}),
      };
      if (field === 'description') descriptionField = f;
      scanText(scan, f);
    }
    const base: Field = descriptionField ?? {
      server,
      kind: 'tool',
      name,
      field: 'annotations',
      text: '',
      hash,
      params,
      freeText,
    };
    annotationsCheck(scan, tool, base);
    schemaCheck(scan, tool.inputSchema as Json | undefined, { ...base, field: 'inputSchema', text: '' });
  }
  const others: Array<[DefinitionKind, readonly Json[], (d: Json) => string]> = [
    ['prompt', snapshot.prompts, (d) => String(d.name)],
    ['resource', snapshot.resources, (d) => String(d.uri)],
    ['resourceTemplate', snapshot.resourceTemplates, (d) => String(d.uriTemplate)],
  ];
  for (const [kind, list, nameOf] of others) {
    for (const definition of list) {
      const hash = definitionHash(definition);
      for (const [field, text] of textsOf(definition)) {
        scanText(scan, {
          server,
          kind,
          name: nameOf(definition),
          field,
          text,
          hash,
          params: [],
          freeText: [],
        });
      }
    }
  }
  return scan.findings;
}

const order: Record<Severity, number> = { block: 0, warn: 1, info: 2 };

/** The most severe finding's severity, or undefined when there are none. */
export function worstSeverity(findings: readonly Finding[]): Severity | undefined {
  let worst: Severity | undefined;
  for (const f of findings) {
    if (f.suppressed) continue;
    if (worst === undefined || order[f.severity] < order[worst]) worst = f.severity;
  }
  return worst;
}

export function sortFindings(findings: readonly Finding[]): Finding[] {
  return [...findings].sort(
    (a, b) =>
      order[a.severity] - order[b.severity] ||
      a.location.name.localeCompare(b.location.name) ||
      a.rule.localeCompare(b.rule) ||
      a.evidence.start - b.evidence.start,
  );
}
