/**
 * The root `boat` command: settings every sub-command inherits, and the help epilog.
 *
 * Sub-commands must be made with `parent.command(name)` (not `new Command()` plus addCommand): only
 * then do they inherit exitOverride, the output routing and the error suggestions set here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Command, Help, Option, OutputConfiguration } from 'commander';

const PACKAGE_JSON = path.resolve(__dirname, '..', '..', '..', 'package.json');

/** The exit codes main() returns; the help epilog and docs/cli.md are made from this list. */
export const EXIT_CODES: ReadonlyArray<[code: number, meaning: string]> = [
  [0, 'success, --help and --version'],
  [1, 'failure while running (BOAT_DEBUG=1 shows the stack trace)'],
  [
    2,
    'usage: an unknown command or option, a bad option value, a missing sub-command, ' +
      'or bad input such as a missing folder, a mismatched model or a read-only output folder',
  ],
];

/** The environment variables every command reads. */
export const ENVIRONMENT: ReadonlyArray<[setting: string, meaning: string]> = [
  ['BOAT_DEBUG=1', 'print stack traces with errors'],
  ['BOAT_BACKEND=NAME', 'the engine: tensorflow, webgpu, wasm or cpu (default: the first of these that starts)'],
  ['BOAT_THREADS=N', 'threads for the wasm engine, 1 to 8 (default: one per core)'],
  ['BOAT_NATIVE=0', 'turn off the native oneDNN kernels and the JPEG addon'],
  ['BOAT_PRECISION=P', 'fp32, bf16 or auto, as --precision (default auto); the notebooks read it too'],
  ['BOAT_NATIVE_JPEG=0', 'decode JPEGs with sharp instead of the libjpeg-turbo addon'],
  [
    'BOAT_JPEG_EXACT=1',
    "the JPEG addon skips its DCT-domain shrink, so the pixels match torchvision's to the bit (slower)",
  ],
];

/** A help section laid out (and wrapped to 80 columns) by commander, like its own Options section. */
function helpSection(title: string, rows: ReadonlyArray<readonly [string | number, string]>): string {
  const help = new Help();
  const width = Math.max(...rows.map(([term]) => String(term).length));
  return [`${title}:`, ...rows.map(([term, text]) => help.formatItem(String(term), width, text, help))].join('\n');
}

const REQUIRED = new WeakSet<Option>();

/**
 * Marks an option as required. Commander's own requiredOption() is checked before unknown options, so
 * `boat train --epoch 3` would complain about the missing --mode instead of suggesting --epochs; these are
 * checked in a preAction hook, after commander has rejected unknown options and bad values.
 */
export function required(option: Option): Option {
  REQUIRED.add(option);
  option.description = option.description ? `${option.description} (required)` : '(required)';
  return option;
}

/**
 * Before each action: required options are there, and no option's value is empty (`--out ""` would mean
 * the current folder to path.resolve, a folder boat did not make).
 */
export function isRequired(option: Option): boolean {
  return REQUIRED.has(option);
}

function checkOptions(_root: Command, command: Command): void {
  for (const option of command.options) {
    const value: unknown = command.getOptionValue(option.attributeName());
    if (REQUIRED.has(option) && value === undefined) {
      command.error(`error: required option '${option.flags}' not specified`, {
        code: 'commander.missingMandatoryOptionValue',
      });
    }
    if (value === '')
      command.error(`error: option '${option.flags}' argument '' is invalid. Expected a value.`, {
        code: 'commander.invalidArgument',
      });
  }
}

/** "boat train --mode <mode> --out <dir> [options]": the usage line names the required options. */
function commandUsage(command: Command): string {
  const usage = Help.prototype.commandUsage.call(new Help(), command);
  const needed = command.options.filter((o) => REQUIRED.has(o)).map((o) => o.flags);
  return needed.length === 0 ? usage : usage.replace(' [options]', ` ${needed.join(' ')} [options]`);
}

export function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(PACKAGE_JSON, 'utf8')) as { version: string }).version;
}

/**
 * The root command. Commander never exits the process or prints errors itself: parse errors are thrown
 * as CommanderError (exitOverride) for main() to print in the project's one-line format.
 */
export function createRootCommand(output: Pick<OutputConfiguration, 'writeOut' | 'writeErr'> = {}): Command {
  return new Command('boat')
    .description('Boat types recognition with ResNet50: the PyTorch tutorial ported to TypeScript, headless.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'print help for the command')
    .helpCommand('help [command]', 'print help for a command')
    .exitOverride()
    .configureOutput({ ...output, outputError: () => {} })
    .showSuggestionAfterError(true)
    .configureHelp({ commandUsage })
    .hook('preAction', checkOptions)
    .addHelpText(
      'after',
      `\n${helpSection('Environment', ENVIRONMENT)}\n\n${helpSection('Exit codes', EXIT_CODES)}\n\n` +
        "boat <command> --help shows a command's options; docs/cli.md lists them all.",
    );
}
