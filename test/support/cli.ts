import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';

export const root = resolve('.');
/** The CLI as users run it. */
export const bin = join(root, 'bin', 'custos.js');

/** The newest modification time under a directory (files only). */
function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

/** The CLI (and the console) run from dist: build when it is missing or older than the sources. */
export function ensureBuilt(): void {
  if (
    existsSync(join(root, 'dist', 'cli', 'main.js')) &&
    existsSync(join(root, 'dist', 'console', 'index.html')) &&
    newest(join(root, 'dist')) >= Math.max(newest(join(root, 'src')), newest(join(root, 'web', 'src')))
  ) {
    return;
  }
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'pipe' });
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Run the built CLI as users do, in a child process, to completion. Logs at warn unless `env`
 * says otherwise; `stdin` is written and closed (otherwise stdin is closed empty).
 */
export function runCli(
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string>; stdin?: string } = {},
): Promise<CliRun> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [bin, ...args], {
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      env: { ...process.env, CUSTOS_LOG_LEVEL: 'warn', ...options.env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', fail);
    child.on('close', (code) => done({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(options.stdin ?? '');
  });
}

/** runCli, with stdout parsed as JSON (commands run with --json; {} when it is not JSON). */
export async function runCliJson(
  args: readonly string[],
  options: Parameters<typeof runCli>[1] = {},
): Promise<CliRun & { json: Record<string, unknown> }> {
  const run = await runCli(args, options);
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(run.stdout) as Record<string, unknown>;
  } catch {}
  return { ...run, json };
}

/**
 * The official SDK client speaking stdio to `custos connect` (the bridge for stdio-only agents),
 * started as users start it: `bridgeArgs` follow `connect` (--url, --client-id, credentials).
 */
export async function connectThroughBridge(
  name: string,
  bridgeArgs: readonly string[],
  env: Record<string, string> = {},
): Promise<Client> {
  const client = new Client({ name, version: '1.0.0' });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [bin, 'connect', ...bridgeArgs],
      env: { ...process.env, ...env } as Record<string, string>,
    }),
  );
  return client;
}
