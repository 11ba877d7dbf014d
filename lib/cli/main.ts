import { Command, CommanderError, OutputConfiguration } from 'commander';

import { errorLine, UserError } from '../util';
import { registerBenchCommand } from './bench';
import { registerDataCommands } from './data-commands';
import { registerExplainCommands } from './explain-commands';
import { registerExportCommands } from './export-commands';
import { registerMainJob } from './main-job';
import { registerModelCommands } from './model-commands';
import { registerNotebooksCommand } from './notebooks';
import { registerRepeatCommands } from './repeat-commands';
import { createRootCommand } from './program';

/**
 * Each group adds its commands to the root: a file lib/cli/<group>-commands.ts exports
 * `register...(program)`, which declares each command's options with commander (parsers from ./options,
 * `required()` from ./program, `.choices()` for fixed sets) and whose action calls a handler taking a
 * typed flags object. The help lists the groups in this order.
 */
const COMMAND_GROUPS: Array<(program: Command) => void> = [
  registerDataCommands,
  registerMainJob,
  registerModelCommands,
  registerRepeatCommands,
  registerExplainCommands,
  registerExportCommands,
  registerBenchCommand,
  registerNotebooksCommand,
];

/** The whole `boat` command tree; `output` redirects help and version text (tests read it in-process). */
export function buildProgram(output: Pick<OutputConfiguration, 'writeOut' | 'writeErr'> = {}): Command {
  const program = createRootCommand(output);
  for (const register of COMMAND_GROUPS) register(program);
  return program;
}

/**
 * Runs one `boat` command line and returns its exit code: 0 ok (help and --version too), 1 failure,
 * 2 usage (a parse error or a UserError). Errors go to stderr as one line, "boat: error: ...".
 * `program` is for tests that need a command of their own.
 */
export async function main(argv: string[], program: Command = buildProgram()): Promise<number> {
  try {
    // Bare `boat` shows the help, as it always has, rather than commander's missing-command error.
    await program.parseAsync(argv.length === 0 ? ['--help'] : argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return commanderExit(err);
    if (process.env.BOAT_DEBUG) console.error(err);
    const message = err instanceof UserError ? err.message : errorLine(err);
    console.error(`boat: error: ${message}`);
    return err instanceof UserError ? 2 : 1;
  }
}

function commanderExit(err: CommanderError): number {
  if (err.exitCode === 0) return 0; // --help, --version
  // A command group given without its sub-command: commander has printed that group's help to stderr.
  if (err.code === 'commander.help') return 2;
  // Commander's messages read "error: unknown option '--epoch'\n(Did you mean --epochs?)".
  const message = err.message
    .replace(/^error: /, '')
    .replace(/\s*\n\s*/g, ' ')
    .trim();
  console.error(`boat: error: ${message}`);
  return 2;
}
