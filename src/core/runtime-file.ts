/**
 * What the CLI needs to reach a running server for a data directory: the runtime file the
 * server writes on start, and the installation's admin token. Kept apart from app.ts so a CLI
 * command finds the server without loading the server's modules.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where the CLI finds a running server for this data directory. */
export interface RuntimeFile {
  url: string;
  pid: number;
}

export function runtimeFilePath(dataDir: string): string {
  return join(dataDir, 'server.json');
}

/** The admin token: CUSTOS_ADMIN_TOKEN, else one kept in the data directory (mode 0600). */
export function adminToken(dataDir: string, env: NodeJS.ProcessEnv = process.env): string {
  if (env.CUSTOS_ADMIN_TOKEN) return env.CUSTOS_ADMIN_TOKEN;
  const file = join(dataDir, 'admin-token');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dataDir, { recursive: true });
  const token = `cat_${randomBytes(32).toString('base64url')}`;
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return token;
}
