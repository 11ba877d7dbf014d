/** `boat repeat`: a training command once per seed, and the spread of its val and test accuracy. */
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';

import { Command, Option } from 'commander';

import { formatAlwaysWrong, formatRepeatTable, runRepeat } from '../train/repeat';
import { seedList } from './options';
import { required } from './program';

const BOAT = path.resolve(__dirname, '..', '..', '..', 'bin', 'boat.js');

export function registerRepeatCommands(program: Command): void {
  program
    .command('repeat')
    .description(
      'run `boat train` once per seed (adding --seed S and --out <out>/seed-S) and print the mean, min and max of val and test accuracy',
    )
    .argument(
      '<command...>',
      'the boat command to repeat, after --: -- train --recipe two-stage --data data --out models/NAME',
    )
    .addOption(required(new Option('--seeds <list>', 'comma-separated seeds, e.g. 1,2,3,4,5').argParser(seedList)))
    .action(repeatCommand);
}

export interface RepeatFlags {
  seeds: number[];
}

/** One seed's run: the CLI in a child process, its output passed through; resolves to its exit code. */
function runBoat(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BOAT, ...args], { stdio: 'inherit' });
    child.on('error', reject);
    // A run killed by a signal counts as failed, with the shell's code for it.
    child.on('close', (code, signal) => resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 0)));
  });
}

export async function repeatCommand(command: string[], flags: RepeatFlags): Promise<void> {
  const summary = await runRepeat({ seeds: flags.seeds, args: command, run: runBoat });
  console.log(`\n${formatRepeatTable(summary)}`);
  const wrong = formatAlwaysWrong(summary);
  if (wrong) console.log(wrong);
  // A failed seed is a failed repeat (exit 1): the table above says which and why.
  if (summary.failed.length > 0)
    throw new Error(
      `${summary.failed.length} of ${summary.runs.length} seeds failed (${summary.failed.join(', ')}); see the table`,
    );
}
