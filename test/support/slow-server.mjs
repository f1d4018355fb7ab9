// A small stdio MCP server for the containment tests: "wait" takes as long as it is told
// and, when the client cancels it (notifications/cancelled), appends a line to the file
// named by the SLOW_SERVER_LOG environment variable, so a test can see the upstream heard it.
import { appendFileSync } from 'node:fs';
import { Server } from '@modelcontextprotocol/server';
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';

const server = new Server({ name: 'slow', version: '1.0.0' }, { capabilities: { tools: {} } });

server.setRequestHandler('tools/list', () => ({
  tools: [
    {
      name: 'wait',
      description: 'waits for the given number of milliseconds',
      inputSchema: { type: 'object', properties: { ms: { type: 'number' } } },
    },
  ],
}));

server.setRequestHandler('tools/call', (request, ctx) => {
  // The 2.x SDK puts the request's cancellation signal at ctx.mcpReq.signal.
  const signal = ctx.mcpReq.signal;
  const ms = Number(request.params.arguments?.ms ?? 1000);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ content: [{ type: 'text', text: `waited ${ms} ms` }] }), ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      appendFileSync(process.env.SLOW_SERVER_LOG, `cancelled ${String(signal.reason)}\n`);
      resolve({ content: [{ type: 'text', text: 'cancelled' }] });
    });
  });
});

await server.connect(new StdioServerTransport());
