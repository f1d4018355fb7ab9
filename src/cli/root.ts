import { Command } from 'commander';

/** The `custos` command with its global options, before any subcommand is added. */
export function rootCommand(): Command {
  return new Command('custos')
    .description('Custos governs autonomous AI agents: identity, least privilege, approval, audit')
    .option('--config <file>', 'configuration file (default ./custos.yaml)')
    .option('--data <dir>', 'data directory (default ./.custos)')
    .showHelpAfterError()
    .exitOverride();
}
