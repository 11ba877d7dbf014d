/** `boat data issues`: label issues and near-duplicates (thin wiring over lib/quality). */
import * as path from 'node:path';

import { checkIssuesOut, findDataIssues, formatDataIssues, writeIssueOutputs } from '../quality';
import { progressLine } from '../train/progress';
import { intFlag, parseFlags, requiredString, stringFlag } from './args';

export const QUALITY_USAGE = `  boat data issues  --data DIR [--folds 5] [--seed S] [--out DIR] [--json] [--split split.csv] [--cache .cache/features]`;

export async function issuesCommand(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, {
    data: { type: 'string', default: 'data/boats' },
    folds: { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string' },
    json: { type: 'boolean', default: false },
    split: { type: 'string' },
    cache: { type: 'string' },
  });
  const json = flags.json === true;
  const out = stringFlag(flags, 'out');
  if (out) checkIssuesOut(out);
  // With --json, stdout carries only the JSON; progress goes to stderr.
  const log = (line: string): void => void (json ? process.stderr : process.stdout).write(`${line}\n`);
  const tty = process.stderr.isTTY;
  const started = Date.now();
  const result = await findDataIssues({
    data: requiredString(flags, 'data'),
    folds: intFlag(flags, 'folds'),
    seed: intFlag(flags, 'seed'),
    split: stringFlag(flags, 'split'),
    cacheDir: stringFlag(flags, 'cache'),
    log,
    onProgress: (stage, done, total) => {
      if (!tty) return;
      const line = stage === 'features' ? progressLine('features', done, total, (Date.now() - started) / 1000) : `cross-validation: fold ${done + 1}/${total}`;
      process.stderr.write(`\r${line}\x1b[K`);
      if (stage !== 'features' && done + 1 === total) process.stderr.write('\n');
    },
  });
  if (json) console.log(JSON.stringify(result.report, null, 2));
  else console.log(formatDataIssues(result.report));
  if (out) {
    const written = await writeIssueOutputs(result, out);
    log(`Wrote ${written.files.map((f) => path.basename(f)).join(', ')} to ${written.out}`);
    log(`Edit exclude.csv (or relabel.csv), then: boat data split --data <the class folders> --out <split folder> --exclude ${path.join(written.out, 'exclude.csv')}`);
  }
}
