import { CommanderError } from 'commander';
import { isCustosError } from '../core/errors.js';
import { buildProgram } from './program.js';

/** Run the CLI; resolves to the exit code (0 ok, 1 failed check or error, 2 bad usage). */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
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
