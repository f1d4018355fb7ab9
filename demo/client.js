#!/usr/bin/env node
// A real MCP agent for the demo: the official MCP SDK client, authenticated to Custos
// with OAuth client credentials. Usage: node demo/client.js [demo-reader|demo-writer] [--modern]
import { readFileSync } from 'node:fs';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

const name = process.argv[2] ?? 'demo-reader';
const modern = process.argv.includes('--modern');
const credentials = JSON.parse(
  readFileSync(process.env.CUSTOS_DEMO_CREDENTIALS ?? '.custos/demo/credentials.json', 'utf8'),
);
const agent = credentials.agents.find((a) => a.name === name);
if (!agent) throw new Error(`no demo agent ${name}`);

const tokenResponse = await fetch(`${credentials.url}/oauth/token`, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({
    grant_type: 'client_credentials',
    client_id: agent.clientId,
    client_secret: agent.clientSecret,
  }),
});
const { access_token: token } = await tokenResponse.json();

const client = new Client(
  { name: `custos-demo-${name}`, version: '1.0.0' },
  modern ? { versionNegotiation: { mode: 'auto' } } : {},
);
await client.connect(
  new StreamableHTTPClientTransport(new URL(`${credentials.url}/mcp`), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  }),
);
console.log(`${name} connected (protocol ${client.getNegotiatedProtocolVersion?.() ?? 'unknown'})`);
const { tools } = await client.listTools();
console.log(`${name} may see ${tools.length} tools: ${tools.map((t) => t.name).join(', ')}`);

const show = (label, result) =>
  console.log(
    `${label}: ${result.isError ? 'REFUSED ' : ''}${result.content
      ?.map((c) => c.text ?? c.type)
      .join(' ')
      .slice(0, 200)}`,
  );

show(
  'read welcome.txt',
  await client.callTool({
    name: 'read_text_file',
    arguments: {
      path: `${credentials.agents[0].secretFile.replace(/demo-reader\.secret$/, '')}sandbox/welcome.txt`,
    },
    _meta: { 'io.custos/reasoning': 'The user asked what the sandbox is for.' },
  }),
);
show('echo', await client.callTool({ name: 'echo', arguments: { message: 'hello through Custos' } }));
show(
  'write note.txt',
  await client.callTool({
    name: 'write_file',
    arguments: {
      path: `${credentials.agents[0].secretFile.replace(/demo-reader\.secret$/, '')}sandbox/note.txt`,
      content: `written by ${name}\n`,
    },
    _meta: { 'io.custos/reasoning': 'Leaving a note for the next shift.' },
  }),
);
await client.close();
