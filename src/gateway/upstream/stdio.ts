import { isAbsolute, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { Transport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import type { StdioServerConfig } from '../../core/config.js';
import { SupervisedUpstream, type SupervisorOptions } from './supervised-upstream.js';

export interface StdioUpstreamOptions extends Omit<SupervisorOptions, 'timeoutMs'> {
  /** Directory a relative (or absent) `cwd` is resolved against; defaults to the process cwd. */
  baseDir?: string;
}

/** Longest stderr line passed to the logger; a runaway child must not flood the log. */
const maxStderrLine = 4096;

/**
 * A stdio MCP server: Custos spawns the child and supervises it, restarting it with backoff
 * when it exits. The child sees only the SDK's small default environment (HOME, PATH, ...)
 * plus the configured `env`, never Custos's own environment (which holds its secrets).
 *
 * Version negotiation stays 'legacy': with 'auto' the SDK spawns a second, throwaway child
 * per connection to probe server/discover, which doubles side effects of starting a server.
 */
export class StdioUpstream extends SupervisedUpstream {
  readonly transport = 'stdio';
  protected readonly versionNegotiation = 'legacy';
  readonly #config: StdioServerConfig;
  readonly #cwd: string;
  #current: StdioClientTransport | undefined;

  constructor(name: string, config: StdioServerConfig, options: StdioUpstreamOptions) {
    super(name, { ...options, timeoutMs: config.timeout * 1000 });
    this.#config = config;
    const base = options.baseDir ?? process.cwd();
    this.#cwd =
      config.cwd === undefined ? base : isAbsolute(config.cwd) ? config.cwd : resolve(base, config.cwd);
  }

  /** The pid of the running child, if one is running. */
  pid(): number | undefined {
    return this.#current?.pid ?? undefined;
  }

  protected createTransport(): Transport {
    const transport = new StdioClientTransport({
      command: this.#config.command,
      args: [...this.#config.args],
      env: { ...this.#config.env },
      cwd: this.#cwd,
      stderr: 'pipe',
    });
    // With stderr: 'pipe' this is a PassThrough, available before the child starts.
    const stderr = transport.stderr as Readable | null;
    if (stderr !== null) {
      const lines = createInterface({ input: stderr, crlfDelay: Number.POSITIVE_INFINITY });
      lines.on('line', (line) => {
        const text = line.length > maxStderrLine ? `${line.slice(0, maxStderrLine)}…` : line;
        this.logger.info({ server: this.name, stderr: text }, 'upstream stderr');
      });
    }
    this.#current = transport;
    return transport;
  }
}
