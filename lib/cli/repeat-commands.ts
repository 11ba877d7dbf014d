/** `boat repeat`: a training command once per seed, and the spread of its val and test accuracy. */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { Command, Option } from 'commander';

import { photoGrid } from '../plot/grid';
import {
  formatAlwaysWrong,
  formatRepeatTable,
  formatTestRecall,
  repeatedData,
  repeatedOut,
  RepeatSummary,
  runRepeat,
  wrongInEverySeed,
} from '../train/repeat';
import { displayPath, writeFileAtomic } from '../util';
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

const GRID = 'test-wrong-in-every-seed.png';

/** The test photos every seed got wrong, as one captioned grid (true class → the first seed's prediction). */
async function alwaysWrongGrid(summary: RepeatSummary, data: string, file: string): Promise<string | null> {
  const tiles = wrongInEverySeed(summary)
    .filter((w) => fs.existsSync(path.join(data, w.file)))
    .map((w) => ({ file: path.join(data, w.file), caption: `${path.basename(w.file)}: ${w.actual} → ${w.predicted}` }));
  if (tiles.length === 0) return null;
  writeFileAtomic(file, await photoGrid(tiles, { columns: Math.min(5, tiles.length), tile: 220 }));
  return file;
}

export async function repeatCommand(command: string[], flags: RepeatFlags): Promise<void> {
  const summary = await runRepeat({ seeds: flags.seeds, args: command, run: runBoat });
  console.log(`\n${formatRepeatTable(summary)}`);
  const recall = formatTestRecall(summary);
  if (recall) console.log(`\n${recall}`);
  const wrong = formatAlwaysWrong(summary);
  if (wrong) console.log(wrong);
  const grid = await alwaysWrongGrid(summary, repeatedData(command), path.join(repeatedOut(command), GRID));
  if (grid) console.log(`Those photos, each with what the first seed predicted: ${displayPath(grid)}`);
  // A seed that failed in this run is a failed repeat (exit 1): the table above says which and why. An
  // earlier repeat's failure, not run again, stays a row of the table but is not this run's failure.
  const ran = summary.runs.filter((r) => !r.earlier);
  const failed = ran.filter((r) => !r.ok).map((r) => r.seed);
  if (failed.length > 0)
    throw new Error(`${failed.length} of ${ran.length} seeds failed (${failed.join(', ')}); see the table`);
}
