// Policy decision latency with 200 realistic policies loaded.
// Run: npm run build && node bench/policy.js   (or through bench/run.js via run()).
import { PolicyStore } from '../dist/policy/index.js';

const agents = 50;
const servers = {
  files: [
    ['read_text_file', { readOnlyHint: true }],
    ['list_directory', { readOnlyHint: true }],
    ['search_files', { readOnlyHint: true }],
    ['write_file', { readOnlyHint: false, destructiveHint: true }],
    ['edit_file', { readOnlyHint: false, destructiveHint: true }],
    ['move_file', { readOnlyHint: false, destructiveHint: true }],
    ['create_directory', { readOnlyHint: false, destructiveHint: false, idempotentHint: true }],
  ],
  tickets: [
    ['search_tickets', { readOnlyHint: true, openWorldHint: false }],
    ['get_ticket', { readOnlyHint: true }],
    ['comment_ticket', { readOnlyHint: false, destructiveHint: false }],
    ['close_ticket', { readOnlyHint: false, destructiveHint: true }],
  ],
  shell: [
    ['run_command', {}],
    ['list_processes', { readOnlyHint: true }],
  ],
  web: [
    ['fetch', { readOnlyHint: true, openWorldHint: true }],
    ['post_webhook', { readOnlyHint: false }],
  ],
};
const serverNames = Object.keys(servers);

/** A seeded generator so every run measures the same requests. */
function random(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 200 policies in the shapes real deployments use: per-agent grants plus a few global guard rails. */
function generatePolicies() {
  const files = [];
  let count = 0;
  for (let a = 0; a < agents; a++) {
    const agent = `agt_${String(a).padStart(3, '0')}`;
    const home = serverNames[a % serverNames.length];
    const lines = [
      `permit (principal == Agent::"${agent}", action == Action::"list_tools", resource == Server::"${home}");`,
      `permit (principal == Agent::"${agent}", action == Action::"call_tool", resource in Server::"${home}")
  when { context.annotations.readOnlyHint || context.time.hour < 20 };`,
      `forbid (principal == Agent::"${agent}", action == Action::"call_tool", resource in Server::"files")
  unless { if context.arguments has path then context.arguments.path like "/srv/${agent}/*" else true };`,
    ];
    if (a % 2 === 0) {
      lines.push(`permit (principal == Agent::"${agent}", action == Action::"call_tool", resource in Server::"tickets")
  when { context has task && context.task.purpose == "triage" };`);
    }
    count += lines.length;
    files.push({ name: `agent-${agent}.cedar`, text: `${lines.join('\n')}\n` });
  }
  const guards = [
    `forbid (principal, action == Action::"call_tool", resource) when { context.annotations.destructiveHint }
  unless { context.time.weekday >= 1 && context.time.weekday <= 5 && context.time.hour >= 8 && context.time.hour < 18 };`,
    `forbid (principal, action == Action::"call_tool", resource == Tool::"shell/run_command")
  when { context.arguments has command && context.arguments.command like "*rm -rf*" };`,
    `forbid (principal, action == Action::"call_tool", resource == Tool::"shell/run_command")
  when { context.arguments has command && context.arguments.command like "*curl*" };`,
    `forbid (principal, action == Action::"call_tool", resource in Server::"web")
  when { context.arguments has url && !(context.arguments.url like "https://*") };`,
    `forbid (principal, action, resource) when { principal.environment == "quarantine" };`,
  ];
  for (let o = 0; o < 5; o++) {
    guards.push(
      `permit (principal in Owner::"owner${o}@example.com", action == Action::"list_tools", resource == Server::"tickets");`,
    );
  }
  for (let a = 0; count + guards.length < 200; a += 3) {
    const agent = `agt_${String(a).padStart(3, '0')}`;
    guards.push(`forbid (principal == Agent::"${agent}", action, resource == Tool::"files/move_file");`);
  }
  count += guards.length;
  files.push({ name: 'guards.cedar', text: `${guards.join('\n')}\n` });
  return files;
}

function generateRequests(n, seed) {
  const next = random(seed);
  const pick = (list) => list[Math.floor(next() * list.length)];
  const week = Date.parse('2026-03-02T00:00:00Z');
  const requests = [];
  for (let i = 0; i < n; i++) {
    const a = Math.floor(next() * agents);
    const agentId = `agt_${String(a).padStart(3, '0')}`;
    // Agents mostly use their home server.
    const server = next() < 0.8 ? serverNames[a % serverNames.length] : pick(serverNames);
    const [name, annotations] = pick(servers[server]);
    const args = {};
    if (server === 'files') {
      const root = next() < 0.9 ? `/srv/${agentId}` : '/etc';
      args.path = `${root}/dir${Math.floor(next() * 40)}/file${Math.floor(next() * 500)}.txt`;
      if (name === 'write_file') args.content = 'x'.repeat(Math.floor(next() * 200));
    } else if (server === 'shell')
      args.command = pick(['ls -la', 'cat notes.txt', 'rm -rf /tmp/x', 'curl example.com']);
    else if (server === 'web')
      args.url = pick(['https://example.com/a', 'http://example.com/b', 'https://api.test/c']);
    else args.query = `status:open id:${Math.floor(next() * 1000)}`;
    const action = next() < 0.1 ? 'list_tools' : 'call_tool';
    requests.push({
      principal: {
        agentId,
        name: `agent-${a}`,
        owner: a % 5 === 0 ? 'platform@example.com' : `owner${a % 7}@example.com`,
        environment: 'production',
        purpose: 'benchmark',
      },
      task: next() < 0.3 ? { id: `task_${i % 97}`, purpose: 'triage' } : undefined,
      action,
      resource: { server, kind: 'tool', name, annotations },
      arguments: args,
      time: week + Math.floor(next() * 7 * 24 * 3600 * 1000),
    });
  }
  return requests;
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** One request for every (agent, server, tool, action, with or without task): fills the engine's caches. */
function everyCombination() {
  const base = generateRequests(1, 1)[0];
  const requests = [];
  for (let a = 0; a < agents; a++) {
    const agentId = `agt_${String(a).padStart(3, '0')}`;
    for (const server of serverNames) {
      for (const [name, annotations] of servers[server]) {
        for (const action of ['call_tool', 'list_tools']) {
          for (const task of [undefined, { id: 'task_warm', purpose: 'triage' }]) {
            requests.push({
              ...base,
              principal: {
                ...base.principal,
                agentId,
                name: `agent-${a}`,
                owner: a % 5 === 0 ? 'platform@example.com' : `owner${a % 7}@example.com`,
              },
              task,
              action,
              resource: { server, kind: 'tool', name, annotations },
            });
          }
        }
      }
    }
  }
  return requests;
}

/** `quick` (from bench/run.js --quick) measures fewer decisions. */
export async function run({
  quick = false,
  decisions = quick ? 5_000 : 20_000,
  warmup = quick ? 1_000 : 5_000,
} = {}) {
  const store = PolicyStore.fromSources({ files: generatePolicies() });
  const policies = store.snapshot.policies.length;
  const requests = generateRequests(decisions, 42);
  // The first decision for a new (agent, action, tool) pays for indexing, partial evaluation and
  // pre-parsing; measure that separately, then the steady state.
  const combinations = everyCombination();
  const coldStarted = process.hrtime.bigint();
  for (const request of combinations) store.decide(request);
  const cold_mean_us = Number(process.hrtime.bigint() - coldStarted) / 1000 / combinations.length;
  for (const request of generateRequests(warmup, 7)) store.decide(request);
  const samples = new Float64Array(decisions);
  let allowed = 0;
  const started = process.hrtime.bigint();
  for (let i = 0; i < decisions; i++) {
    const t0 = process.hrtime.bigint();
    const decision = store.decide(requests[i]);
    samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
    if (decision.effect === 'allow') allowed++;
  }
  const elapsedS = Number(process.hrtime.bigint() - started) / 1e9;
  store.close();
  const sorted = Array.from(samples).sort((x, y) => x - y);
  const mean = sorted.reduce((sum, x) => sum + x, 0) / sorted.length;
  const round = (x) => Math.round(x * 10) / 10;
  return {
    name: 'policy',
    policies,
    decisions,
    allowed,
    p50_us: round(percentile(sorted, 0.5)),
    p99_us: round(percentile(sorted, 0.99)),
    mean_us: round(mean),
    decisions_per_s: Math.round(decisions / elapsedS),
    cold_mean_us: round(cold_mean_us),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await run();
  console.log(
    'benchmark  policies  decisions  allowed  p50 µs  p99 µs  mean µs  decisions/s  first-decision mean µs',
  );
  console.log(
    [
      result.name.padEnd(9),
      String(result.policies).padStart(8),
      String(result.decisions).padStart(10),
      String(result.allowed).padStart(8),
      String(result.p50_us).padStart(7),
      String(result.p99_us).padStart(7),
      String(result.mean_us).padStart(8),
      String(result.decisions_per_s).padStart(12),
      String(result.cold_mean_us).padStart(22),
    ].join('  '),
  );
}
