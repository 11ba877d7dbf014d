/** `boat data issues`: label issues and near-duplicates (thin wiring over lib/quality). */
import * as path from 'node:path';

import { Command } from 'commander';

import { checkIssuesOut, findDataIssues, formatDataIssues, writeIssueOutputs } from '../quality';
import { progressLine } from '../train/progress';
import { integer, positiveInteger } from './options';

/** Adds `issues` to the `boat data` group. */
export function registerIssuesCommand(data: Command): void {
  data
    .command('issues')
    .description(
      'likely label errors (confident learning on cross-validated probabilities) and near-duplicates (embeddings, perceptual hash)',
    )
    .option('--data <dir>', 'class folders, or a split root with train/val/test (pooled)', 'data/boats')
    .option('--folds <k>', 'cross-validation folds (default 5)', positiveInteger)
    .option('--seed <n>', 'random seed for the folds and the heads (default 0)', integer)
    .option('--out <dir>', 'write issues.csv, duplicates.csv, review grids and starter exclude/relabel files here')
    .option('--json', 'print the report as JSON (progress goes to stderr)')
    .option('--split <csv>', "a split.csv, to report each photo's subset and leakage across it")
    .option('--cache <dir>', 'feature cache (default .cache/features)')
    .action(issuesCommand);
}

export interface IssuesFlags {
  data: string;
  folds?: number;
  seed?: number;
  out?: string;
  json?: boolean;
  split?: string;
  cache?: string;
}

export async function issuesCommand(flags: IssuesFlags): Promise<void> {
  const json = flags.json === true;
  const out = flags.out;
  if (out) checkIssuesOut(out);
  // With --json, stdout carries only the JSON; progress goes to stderr.
  const log = (line: string): void => void (json ? process.stderr : process.stdout).write(`${line}\n`);
  const tty = process.stderr.isTTY;
  const started = Date.now();
  const result = await findDataIssues({
    data: flags.data,
    folds: flags.folds,
    seed: flags.seed,
    split: flags.split,
    cacheDir: flags.cache,
    log,
    onProgress: (stage, done, total) => {
      if (!tty) return;
      const line =
        stage === 'features'
          ? progressLine('features', done, total, (Date.now() - started) / 1000)
          : `cross-validation: fold ${done + 1}/${total}`;
      process.stderr.write(`\r${line}\x1b[K`);
      if (stage !== 'features' && done + 1 === total) process.stderr.write('\n');
    },
  });
  if (json) console.log(JSON.stringify(result.report, null, 2));
  else console.log(formatDataIssues(result.report));
  if (out) {
    const written = await writeIssueOutputs(result, out);
    log(`Wrote ${written.files.map((f) => path.basename(f)).join(', ')} to ${written.out}`);
    log(
      `Edit exclude.csv (or relabel.csv), then: boat data split --data <the class folders> --out <split folder> --exclude ${path.join(written.out, 'exclude.csv')}`,
    );
  }
}
