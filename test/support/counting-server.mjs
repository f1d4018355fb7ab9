// A small stdio MCP server for the approval tests: every tools/call of "transfer" or "note"
// appends one line (the tool and its arguments) to the file named by COUNT_FILE before it
// answers, so a test counts what actually executed at the upstream.
import { appendFileSync } from 'node:fs';
import { Server } from '@modelcontextprotocol/server';
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';

const file = process.env.COUNT_FILE;
if (!file) throw new Error('COUNT_FILE is not set');

const server = new Server({ name: 'counting', version: '1.0.0' }, { capabilities: { tools: {} } });

const schema = { type: 'object', additionalProperties: true };
server.setRequestHandler('tools/list', () => ({
  tools: [
    { name: 'transfer', description: 'moves money (counted)', inputSchema: schema },
    { name: 'note', description: 'writes a note (counted)', inputSchema: schema },
  ],
}));

server.setRequestHandler('tools/call', (request) => {
  const line = JSON.stringify({ tool: request.params.name, arguments: request.params.arguments ?? {} });
  appendFileSync(file, `${line}\n`);
  return { content: [{ type: 'text', text: `executed ${request.params.name}` }] };
});

await server.connect(new StdioServerTransport());
