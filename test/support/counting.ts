import { existsSync, readFileSync } from 'node:fs';

/** One call the counting server (counting-server.mjs) ran. */
export interface CountedCall {
  tool: string;
  arguments: Record<string, unknown>;
}

/** The calls the counting server ran, in order, from its COUNT_FILE (none before the first). */
export function countedCalls(file: string): CountedCall[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as CountedCall);
}
