// A small stdio MCP server for the end-to-end tests: "echo-meta" answers with the
// params._meta it received, so a test can see exactly what Custos forwarded upstream.
import { Server } from '@modelcontextprotocol/server';
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';

const server = new Server({ name: 'meta-echo', version: '1.0.0' }, { capabilities: { tools: {} } });

server.setRequestHandler('tools/list', () => ({
  tools: [
    {
      name: 'echo-meta',
      description: 'answers with the params._meta of the request',
      inputSchema: { type: 'object', properties: { note: { type: 'string' } } },
      annotations: { readOnlyHint: true, destructiveHint: false },
    },
  ],
}));

server.setRequestHandler('tools/call', (request) => ({
  content: [{ type: 'text', text: JSON.stringify({ meta: request.params._meta ?? null }) }],
}));

await server.connect(new StdioServerTransport());
