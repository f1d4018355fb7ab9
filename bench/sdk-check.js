// Checks the benchmark's echo server, directly and through the bare proxy, with the
// official MCP SDK client, on both protocol eras: `node bench/sdk-check.js`.
// Exits 1 if any check fails.
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { startBareProxy } from './bare-proxy.js';
import { startEchoServer } from './echo-server.js';

async function check(label, url, clientOptions) {
  const client = new Client({ name: 'custos-bench-check', version: '1.0.0' }, clientOptions);
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  const { tools } = await client.listTools();
  const result = await client.callTool({ name: 'echo', arguments: { text: 'hello' } });
  const protocol = transport.protocolVersion;
  if (!protocol?.startsWith('2026')) await client.ping(); // ping is gone from 2026-07-28
  const text = result.content?.[0]?.text;
  await transport.terminateSession?.().catch(() => {});
  await client.close();
  const ok = tools.length === 1 && tools[0].name === 'echo' && text === 'hello' && !result.isError;
  console.log(
    `${ok ? 'ok  ' : 'FAIL'} ${label}: protocol ${protocol}, tools [${tools
      .map((t) => t.name)
      .join(', ')}], echo -> ${JSON.stringify(text)}`,
  );
  return ok;
}

const echo = await startEchoServer({ port: 0 });
const proxy = await startBareProxy({ port: 0, target: echo.url });
const eras = [
  ['2025-11-25', undefined],
  ['2026-07-28', { versionNegotiation: { mode: { pin: '2026-07-28' } } }],
  ['auto', { versionNegotiation: { mode: 'auto' } }],
];
let failed = 0;
try {
  for (const [era, options] of eras) {
    for (const [via, url] of [
      ['direct', echo.url],
      ['bare proxy', proxy.url],
    ]) {
      try {
        if (!(await check(`${via}, client ${era}`, url, options))) failed++;
      } catch (error) {
        failed++;
        console.log(`FAIL ${via}, client ${era}: ${error.stack ?? error}`);
      }
    }
  }
} finally {
  await proxy.close();
  await echo.close();
}
process.exitCode = failed === 0 ? 0 : 1;
