/**
 * `custos audit verify`: the auditor's command. A bundle's check loads only the verifier (no
 * store, no server), so an auditor does not wait for the server's modules.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { BundleVerification, LiveVerification } from '../audit/verify-bundle.js';
import { CustosError } from '../core/errors.js';
import { printJson } from './output.js';

/** A verifier key given inline or as a file holding it. */
export function readKey(value: string): string {
  return (existsSync(value) ? readFileSync(value, 'utf8') : value).trim();
}

export function registerAuditVerify(audit: Command, program: Command): void {
  audit
    .command('verify [dir]')
    .description('verify an export bundle offline (no server, no database), or the stored log with --live')
    .option('--key <key>', "the published verifier key, or a file holding it (default: the bundle's key.txt)")
    .option('--live', 'verify the stored log against its latest checkpoint instead of a bundle')
    .option('--json', 'print the result as JSON')
    .action(async (dir: string | undefined, o: { key?: string; live?: boolean; json?: boolean }) => {
      if (o.live === true && dir !== undefined)
        throw new CustosError('usage', 'give either a bundle directory or --live, not both');
      if (o.live !== true && dir === undefined)
        throw new CustosError('usage', 'give the bundle directory to verify, or --live');
      let result: BundleVerification | LiveVerification;
      if (o.live === true) {
        // The stored log needs the store: loaded only for --live.
        const { verifyStoredLog } = await import('./audit.js');
        result = await verifyStoredLog(program);
      } else {
        const key = o.key === undefined ? undefined : readKey(o.key);
        const { verifyBundle } = await import('../audit/verify-bundle.js');
        result = await verifyBundle(dir!, key === undefined ? {} : { verifierKey: key });
      }
      if (o.json) printJson(result);
      if (!result.ok) {
        if (!o.json) console.error(`custos: verification failed: ${result.problem}`);
        process.exitCode = 1;
        return;
      }
      if (!o.json) {
        const what = o.live === true ? 'the stored log' : dir;
        console.log(`ok: ${what} verifies (${result.events} events, ${result.checkpoints} checkpoints)`);
      }
    });
}
