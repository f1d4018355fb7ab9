import { type Command, CommanderError } from 'commander';
import { isCustosError } from '../core/errors.js';
import { registerAuditVerify } from './audit-verify.js';
import { rootCommand } from './root.js';

/**
 * The program for these arguments. `custos audit verify DIR` gets one holding only that
 * command, so an auditor's check loads the verifier and nothing else; every other command
 * (and a verify with global options before it, or --live) gets the whole CLI.
 */
async function programFor(argv: readonly string[]): Promise<Command> {
  const [command, subcommand, ...rest] = argv.slice(2);
  if (command === 'audit' && subcommand === 'verify' && !rest.includes('--live')) {
    const program = rootCommand();
    registerAuditVerify(program.command('audit').description('read the audit log'), program);
    return program;
  }
  const { buildProgram } = await import('./program.js');
  return buildProgram();
}

/** Run the CLI; resolves to the exit code (0 ok, 1 failed check or error, 2 bad usage). */
export async function main(argv: string[]): Promise<number> {
  const program = await programFor(argv);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? 0 : 2;
    }
    if (isCustosError(error)) {
      console.error(`custos: ${error.message}${error.code === 'usage' ? '' : ` [${error.code}]`}`);
      const fix = error.detail?.fix;
      if (typeof fix === 'string') console.error(`fix: ${fix}`);
      return error.code === 'usage' ? 2 : 1;
    }
    console.error(error);
    return 1;
  }
}
