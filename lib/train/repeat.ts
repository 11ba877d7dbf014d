/**
 * `boat repeat --seeds 1,2,3 -- train …`: one training run per seed, each in its own process (a crash or
 * an out-of-memory in one seed cannot take the others down), and a table of val and test accuracy with
 * their mean, min and max. A seed that fails is a row of the table and makes the exit code non-zero;
 * the summary says over how many seeds it was taken.
 *
 * Seed S trains with `--seed S --out <out>/seed-S`, where <out> is the repeated command's own --out: a
 * folder boat repeat makes (or reuses, when it made it) and writes repeat.json into.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { claimOutputDirectory, UserError, writeJsonAtomic } from '../util';

export interface RepeatOptions {
  seeds: readonly number[];
  /** The boat command to repeat, without `boat`: ['train', '--recipe', 'two-stage', '--out', 'models/x', …]. */
  args: readonly string[];
  /** Runs one boat command line and resolves to its exit code (the CLI runs a child process). */
  run: (args: string[]) => Promise<number>;
  log?: (line: string) => void;
}

export interface SeedRun {
  seed: number;
  out: string;
  /** The command's exit code (0 when it succeeded). */
  code: number;
  ok: boolean;
  valAcc: number | null;
  testAcc: number | null;
  /** Why the seed counts as failed. */
  error?: string;
  seconds: number;
  /** The test photos this seed's model got wrong (metrics.json's test_misclassified), when it recorded them. */
  testWrong?: WrongPhoto[];
}

/** A test photo a model got wrong: its path under the data folder, its class and the model's answer. */
export interface WrongPhoto {
  file: string;
  actual: string;
  predicted: string;
}

export interface Spread {
  /** How many seeds the figures are taken over (the succeeded ones that have the figure). */
  n: number;
  mean: number | null;
  min: number | null;
  max: number | null;
}

export interface RepeatSummary {
  runs: SeedRun[];
  val: Spread;
  test: Spread;
  failed: number[];
  /**
   * Test photos and how many of the succeeded seeds got each wrong, most first; null unless every succeeded
   * seed recorded its mistakes. Photos every seed gets wrong are the first place to look for label errors.
   */
  testWrong: Array<{ file: string; seeds: number }> | null;
}

export const REPEATABLE_COMMANDS = ['train'] as const;

/** The value of `--flag v` or `--flag=v` in args, and where it is; the last one wins, as in commander. */
function findOption(args: readonly string[], flag: string): { value: string; index: number; inline: boolean } | null {
  let found: { value: string; index: number; inline: boolean } | null = null;
  args.forEach((a, i) => {
    if (a === flag && i + 1 < args.length) found = { value: args[i + 1], index: i, inline: false };
    else if (a.startsWith(`${flag}=`)) found = { value: a.slice(flag.length + 1), index: i, inline: true };
  });
  return found;
}

/** Checks the command to repeat; returns its --out (the folder the seeds' outputs go in). */
export function repeatedOut(args: readonly string[]): string {
  const command = args[0];
  if (command === undefined)
    throw new UserError('give the command to repeat after --, e.g. -- train --recipe two-stage');
  if (!(REPEATABLE_COMMANDS as readonly string[]).includes(command))
    throw new UserError(`boat repeat repeats ${REPEATABLE_COMMANDS.join(', ')}, not ${command}`);
  if (args.some((a) => a === '--seed' || a.startsWith('--seed=')))
    throw new UserError('leave --seed out of the repeated command: boat repeat adds --seed for each of --seeds');
  const out = findOption(args, '--out');
  if (!out || out.value === '') throw new UserError('the repeated command needs --out (each seed writes <out>/seed-S)');
  return out.value;
}

/** The repeated command's --data (train's default when it has none): where the test photos are. */
export function repeatedData(args: readonly string[]): string {
  return findOption(args, '--data')?.value ?? 'data';
}

/** The command line for one seed: --out replaced by <out>/seed-S, --seed S added. */
export function seedArgs(args: readonly string[], seed: number): { args: string[]; out: string } {
  const base = repeatedOut(args);
  const out = path.join(base, `seed-${seed}`);
  const found = findOption(args, '--out')!;
  const copy = [...args];
  if (found.inline) copy[found.index] = `--out=${out}`;
  else copy[found.index + 1] = out;
  return { args: [...copy, '--seed', String(seed)], out };
}

function spread(values: number[]): Spread {
  if (values.length === 0) return { n: 0, mean: null, min: null, max: null };
  return {
    n: values.length,
    mean: values.reduce((a, b) => a + b, 0) / values.length,
    min: Math.min(...values),
    max: Math.max(...values),
  };
}

/** Mean, min and max of val and test accuracy over the seeds that succeeded; the failed seeds listed. */
export function summarizeRuns(runs: readonly SeedRun[]): RepeatSummary {
  const ok = runs.filter((r) => r.ok);
  let testWrong: RepeatSummary['testWrong'] = null;
  if (ok.length > 0 && ok.every((r) => r.testWrong !== undefined)) {
    const counts = new Map<string, number>();
    for (const r of ok)
      for (const file of new Set(r.testWrong!.map((w) => w.file))) counts.set(file, (counts.get(file) ?? 0) + 1);
    testWrong = [...counts]
      .map(([file, seeds]) => ({ file, seeds }))
      .sort((a, b) => b.seeds - a.seeds || a.file.localeCompare(b.file));
  }
  return {
    runs: [...runs],
    val: spread(ok.map((r) => r.valAcc).filter((v): v is number => v !== null)),
    test: spread(ok.map((r) => r.testAcc).filter((v): v is number => v !== null)),
    failed: runs.filter((r) => !r.ok).map((r) => r.seed),
    testWrong,
  };
}

/**
 * The test photos every succeeded seed got wrong, with the first such seed's answer; empty when the runs did
 * not record their mistakes.
 */
export function wrongInEverySeed(summary: RepeatSummary): WrongPhoto[] {
  const ok = summary.runs.filter((r) => r.ok);
  if (summary.testWrong === null || ok.length === 0) return [];
  const first = new Map(ok[0].testWrong!.map((w) => [w.file, w]));
  return summary.testWrong.filter((w) => w.seeds === ok.length).map((w) => first.get(w.file)!);
}

/** The test photos every succeeded seed got wrong, one line; empty when the runs did not record them. */
export function formatAlwaysWrong(summary: RepeatSummary, limit = 20): string {
  if (summary.testWrong === null) return '';
  const n = summary.runs.filter((r) => r.ok).length;
  const every = wrongInEverySeed(summary).map((w) => w.file);
  const some = summary.testWrong.length - every.length;
  const shown = every.slice(0, limit).join(', ') + (every.length > limit ? `, … (${every.length - limit} more)` : '');
  return (
    `Test photos wrong in all ${n} seeds: ${every.length}${every.length > 0 ? ` (${shown})` : ''}; ` +
    `wrong in some but not all: ${some} (all in repeat.json)`
  );
}

/** The table boat repeat prints: one row per seed, then mean, min and max. */
export function formatRepeatTable(summary: RepeatSummary): string {
  const f = (x: number | null): string => (x === null ? '-' : x.toFixed(4));
  const rows: string[][] = [['seed', 'val acc', 'test acc', 'minutes', 'result']];
  for (const r of summary.runs)
    rows.push([
      String(r.seed),
      f(r.valAcc),
      f(r.testAcc),
      (r.seconds / 60).toFixed(1),
      r.ok ? 'ok' : `FAILED: ${r.error ?? `exit ${r.code}`}`,
    ]);
  const over = (s: Spread): string => `${s.n} of ${summary.runs.length}`;
  rows.push([`mean (${over(summary.val)})`, f(summary.val.mean), f(summary.test.mean), '', '']);
  rows.push(['min', f(summary.val.min), f(summary.test.min), '', '']);
  rows.push(['max', f(summary.val.max), f(summary.test.max), '', '']);
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const lines = rows.map((r) =>
    r
      .map((cell, c) => (c === 0 || c === r.length - 1 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
      .join('  ')
      .trimEnd(),
  );
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  lines.splice(lines.length - 3, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  const failed =
    summary.failed.length > 0
      ? `\n${summary.failed.length} of ${summary.runs.length} seeds failed (${summary.failed.join(', ')}); the figures are over the others`
      : '';
  return lines.join('\n') + failed;
}

/** Reads a finished run's metrics.json: best val accuracy and test accuracy (null without a test set). */
export function readRunMetrics(out: string): { valAcc: number; testAcc: number | null; testWrong?: WrongPhoto[] } {
  const file = path.join(out, 'metrics.json');
  let metrics: { best_val_acc?: unknown; test_acc?: unknown; test_misclassified?: unknown };
  try {
    metrics = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof metrics;
  } catch {
    throw new Error(`no readable ${file}`);
  }
  if (typeof metrics.best_val_acc !== 'number') throw new Error(`${file} has no best_val_acc`);
  const wrong = metrics.test_misclassified;
  return {
    valAcc: metrics.best_val_acc,
    testAcc: typeof metrics.test_acc === 'number' ? metrics.test_acc : null,
    ...(Array.isArray(wrong)
      ? {
          testWrong: wrong.map((w: Partial<Record<keyof WrongPhoto, unknown>>) => ({
            file: String(w.file),
            actual: String(w.actual),
            predicted: String(w.predicted),
          })),
        }
      : {}),
  };
}

/** Runs every seed in turn (one at a time: each run uses every core), then writes <out>/repeat.json. */
export async function runRepeat(options: RepeatOptions): Promise<RepeatSummary> {
  const log = options.log ?? ((line: string) => console.log(line));
  const base = repeatedOut(options.args);
  if (options.seeds.length === 0) throw new UserError('--seeds needs at least one seed');
  claimOutputDirectory(base, 'boat-repeat', 'the repeated --out');
  const runs: SeedRun[] = [];
  for (const seed of options.seeds) {
    const { args, out } = seedArgs(options.args, seed);
    log(`boat repeat: seed ${seed} of ${options.seeds.join(',')}: boat ${args.join(' ')}`);
    const started = Date.now();
    // The seed's old metrics must not pass for this run's, should it fail before saving.
    const before = fs.existsSync(path.join(out, 'metrics.json'))
      ? fs.statSync(path.join(out, 'metrics.json')).mtimeMs
      : null;
    let code: number;
    let error: string | undefined;
    try {
      code = await options.run(args);
    } catch (err) {
      code = -1;
      error = (err as Error).message;
    }
    const seconds = (Date.now() - started) / 1000;
    let valAcc: number | null = null;
    let testAcc: number | null = null;
    let testWrong: WrongPhoto[] | undefined;
    if (code === 0) {
      try {
        const after = fs.statSync(path.join(out, 'metrics.json')).mtimeMs;
        if (before !== null && after === before)
          throw new Error(`the run did not write ${path.join(out, 'metrics.json')}`);
        ({ valAcc, testAcc, testWrong } = readRunMetrics(out));
      } catch (err) {
        error = (err as Error).message.startsWith('ENOENT')
          ? `no ${path.join(out, 'metrics.json')}`
          : (err as Error).message;
      }
    } else if (error === undefined) error = `exit ${code}`;
    const ok = code === 0 && error === undefined;
    runs.push({
      seed,
      out,
      code,
      ok,
      valAcc,
      testAcc,
      seconds,
      ...(error !== undefined ? { error } : {}),
      ...(testWrong !== undefined ? { testWrong } : {}),
    });
    log(
      ok
        ? `boat repeat: seed ${seed}: val ${valAcc!.toFixed(4)}${testAcc !== null ? `, test ${testAcc.toFixed(4)}` : ''}`
        : `boat repeat: seed ${seed} FAILED (${error})`,
    );
  }
  const summary = summarizeRuns(runs);
  writeJsonAtomic(path.join(base, 'repeat.json'), {
    command: ['boat', ...options.args],
    seeds: options.seeds,
    runs: summary.runs,
    val: summary.val,
    test: summary.test,
    failed: summary.failed,
    test_wrong: summary.testWrong,
  });
  return summary;
}
