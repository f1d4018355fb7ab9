// A minimal MCP server over Streamable HTTP with one tool, `echo`, used as the upstream
// in the gateway benchmark. Written by hand on node:http because the SDK's HTTP path
// costs about 1 ms of CPU per request, which would make the upstream the bottleneck.
//
// It speaks MCP revision 2025-11-25 (initialize, Mcp-Session-Id, JSON responses) and,
// cheaply, the per-request 2026-07-28 style (server/discover, envelope in params._meta).
//
//   import { startEchoServer } from './echo-server.js'  -> { url, close }
//     startEchoServer({ onToolCall }) calls onToolCall(params) as each tools/call arrives
//     (the chaos benchmark counts the calls that reach the upstream this way)
//   node bench/echo-server.js [PORT]                      -> prints {"url": ...} on stdout
//   node bench/echo-server.js PORT --log-calls            -> and {"call": ms} for each tools/call
//     (absolute ms, performance.timeOrigin + performance.now(), comparable across processes)
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const legacyVersions = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'];
const modernVersions = ['2026-07-28'];
const serverInfo = { name: 'custos-bench-echo', version: '1.0.0' };
const metaVersionKey = 'io.modelcontextprotocol/protocolVersion';
const metaServerInfoKey = 'io.modelcontextprotocol/serverInfo';
const maxBodyBytes = 1 << 20;
const endpointPath = '/mcp';

const echoTool = {
  name: 'echo',
  title: 'Echo',
  description: 'Returns the text it is given.',
  inputSchema: { type: 'object', properties: { text: { type: 'string' } } },
  annotations: { readOnlyHint: true },
};

const jsonHeaders = { 'content-type': 'application/json' };

function isModern(version) {
  return typeof version === 'string' && modernVersions.includes(version);
}

function reply(res, status, body, extraHeaders) {
  if (body === undefined) {
    res.writeHead(status, extraHeaders);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...jsonHeaders,
    'content-length': Buffer.byteLength(text),
    ...extraHeaders,
  });
  res.end(text);
}

const rpcError = (id, code, message) => ({ jsonrpc: '2.0', id, error: { code, message } });

/** Answers one JSON-RPC request; returns [result] or [undefined, error]. */
function answer(message, modern) {
  const params = message.params ?? {};
  switch (message.method) {
    case 'ping':
      return [{}];
    case 'tools/list':
      return [modern ? { tools: [echoTool], ttlMs: 0, cacheScope: 'public' } : { tools: [echoTool] }];
    case 'tools/call': {
      if (params.name !== echoTool.name) return [undefined, [-32602, `Unknown tool: ${String(params.name)}`]];
      const text = params.arguments?.text;
      if (text !== undefined && typeof text !== 'string')
        return [{ content: [{ type: 'text', text: 'text must be a string' }], isError: true }];
      return [{ content: [{ type: 'text', text: text ?? '' }] }];
    }
    case 'server/discover':
      return [
        {
          supportedVersions: [...modernVersions, ...legacyVersions],
          capabilities: { tools: {} },
          ttlMs: 0,
          cacheScope: 'public',
        },
      ];
    default:
      return [undefined, [-32601, `Method not found: ${String(message.method)}`]];
  }
}

function handlePost(req, res, body, sessions, onToolCall) {
  let message;
  try {
    message = JSON.parse(body);
  } catch {
    return reply(res, 400, rpcError(null, -32700, 'Parse error'));
  }
  if (message === null || typeof message !== 'object' || Array.isArray(message) || message.jsonrpc !== '2.0')
    return reply(res, 400, rpcError(null, -32600, 'Invalid Request'));

  // Notifications and client responses get 202 with no body (Streamable HTTP).
  if (message.id === undefined || message.method === undefined) return reply(res, 202);

  const id = message.id;
  if (message.method === 'initialize') {
    const requested = message.params?.protocolVersion;
    const protocolVersion = legacyVersions.includes(requested) ? requested : legacyVersions[0];
    const sessionId = randomUUID();
    sessions.add(sessionId);
    const result = { protocolVersion, capabilities: { tools: {} }, serverInfo };
    return reply(res, 200, { jsonrpc: '2.0', id, result }, { 'mcp-session-id': sessionId });
  }

  const envelopeVersion = message.params?._meta?.[metaVersionKey];
  const modern = isModern(envelopeVersion) || message.method === 'server/discover';
  if (!modern) {
    // Sessions are optional to use but, when presented, must be ones this server issued.
    const sessionId = req.headers['mcp-session-id'];
    if (sessionId !== undefined && !sessions.has(sessionId))
      return reply(res, 404, rpcError(id, -32001, 'Session not found'));
  } else if (envelopeVersion !== undefined && !isModern(envelopeVersion)) {
    return reply(res, 400, {
      jsonrpc: '2.0',
      id,
      error: {
        code: -32022,
        message: 'Unsupported protocol version',
        data: { supported: modernVersions, requested: envelopeVersion },
      },
    });
  }

  if (message.method === 'tools/call') onToolCall?.(message.params ?? {});
  const [result, error] = answer(message, modern);
  if (error !== undefined) return reply(res, 200, rpcError(id, error[0], error[1]));
  if (modern) {
    result.resultType = 'complete';
    result._meta = { [metaServerInfoKey]: serverInfo };
  }
  return reply(res, 200, { jsonrpc: '2.0', id, result });
}

/** The request listener; `sessions` holds the Mcp-Session-Id values this server issued. */
function createHandler(sessions, onToolCall) {
  return (req, res) => {
    if (req.url !== endpointPath && !req.url.startsWith(`${endpointPath}?`)) return reply(res, 404);
    // Loopback only: refuse browser origins other than localhost (DNS rebinding).
    const origin = req.headers.origin;
    if (origin !== undefined && !/^https?:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(origin))
      return reply(res, 403, rpcError(null, -32600, 'Origin not allowed'));
    const version = req.headers['mcp-protocol-version'];
    if (version !== undefined && !legacyVersions.includes(version) && !isModern(version))
      return reply(res, 400, rpcError(null, -32600, `Unsupported MCP-Protocol-Version: ${version}`));

    if (req.method === 'DELETE') {
      const sessionId = req.headers['mcp-session-id'];
      if (sessionId === undefined || !sessions.delete(sessionId)) return reply(res, 404);
      return reply(res, 200);
    }
    if (req.method !== 'POST') return reply(res, 405, undefined, { allow: 'POST, DELETE' });

    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > maxBodyBytes) {
        reply(res, 413, rpcError(null, -32600, 'Request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (res.headersSent) return;
      const body = chunks.length === 1 ? chunks[0].toString() : Buffer.concat(chunks).toString();
      handlePost(req, res, body, sessions, onToolCall);
    });
  };
}

/** Starts the echo server on 127.0.0.1 (port 0 picks a free one); resolves to { url, close }. */
export async function startEchoServer({ port = 0, onToolCall } = {}) {
  const sessions = new Set();
  const server = http.createServer({ keepAliveTimeout: 60_000 }, createHandler(sessions, onToolCall));
  server.headersTimeout = 65_000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${server.address().port}${endpointPath}`;
  const close = () =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return { url, close };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const logCalls = process.argv.includes('--log-calls');
  const { url, close } = await startEchoServer({
    port: Number(process.argv[2] ?? 0),
    ...(logCalls
      ? { onToolCall: () => process.stdout.write(`{"call":${performance.timeOrigin + performance.now()}}\n`) }
      : {}),
  });
  console.log(JSON.stringify({ url }));
  const stop = () => close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('disconnect', stop);
}
