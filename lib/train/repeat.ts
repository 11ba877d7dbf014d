/**
 * `boat repeat --seeds 1,2,3 -- train …`: one training run per seed, each in its own process (a crash or
 * an out-of-memory in one seed cannot take the others down), and a table of val and test accuracy with
 * their mean, min and max. A seed that fails is a row of the table and makes the exit code non-zero;
 * the summary says over how many seeds it was taken.
 *
 * Seed S trains with `--seed S --out <out>/seed-S`, where <out> is the repeated command's own --out: a
 * folder boat repeat makes (or reuses, when it made it) and writes repeat.json into. Repeating the same
 * command into the same folder with more seeds adds them: the summary covers the earlier seeds too.
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
  /** Test recall per class, when the run had a test set. */
  testRecall?: ClassRecall[];
  /** Each stage's val and test accuracy and the stage kept, when the run was the two-stage recipe. */
  stages?: RecipeStages;
  /** Run by an earlier `boat repeat` of the same command into the same folder, and not run again. */
  earlier?: boolean;
}

export interface ClassRecall {
  class: string;
  recall: number;
  /** Test photos of the class. */
  support: number;
}

export interface StageScores {
  valAcc: number;
  testAcc: number | null;
}

export interface RecipeStages {
  stage1: StageScores;
  stage2: StageScores;
  kept: 'stage1' | 'stage2';
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
  /** Test recall per class over the succeeded seeds; null unless every one recorded it for the same classes. */
  testRecall: Array<{ class: string; support: number; recall: Spread }> | null;
  /**
   * Each stage's val and test accuracy over the succeeded seeds and how often each was kept; null unless
   * every one was a two-stage run. Whether stage 2 improves on stage 1 on average is read here.
   */
  stages: {
    stage1: { val: Spread; test: Spread };
    stage2: { val: Spread; test: Spread };
    kept: { stage1: number; stage2: number };
  } | null;
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
  const numbers = (values: Array<number | null>): number[] => values.filter((v): v is number => v !== null);
  let testRecall: RepeatSummary['testRecall'] = null;
  const classesOf = (r: SeedRun): string => JSON.stringify(r.testRecall?.map((c) => c.class));
  if (ok.length > 0 && ok.every((r) => r.testRecall !== undefined && classesOf(r) === classesOf(ok[0])))
    testRecall = ok[0].testRecall!.map((c, i) => ({
      class: c.class,
      support: c.support,
      recall: spread(ok.map((r) => r.testRecall![i].recall)),
    }));
  let stages: RepeatSummary['stages'] = null;
  if (ok.length > 0 && ok.every((r) => r.stages !== undefined)) {
    const of = (stage: 'stage1' | 'stage2') => ({
      val: spread(ok.map((r) => r.stages![stage].valAcc)),
      test: spread(numbers(ok.map((r) => r.stages![stage].testAcc))),
    });
    const kept = (stage: 'stage1' | 'stage2'): number => ok.filter((r) => r.stages!.kept === stage).length;
    stages = { stage1: of('stage1'), stage2: of('stage2'), kept: { stage1: kept('stage1'), stage2: kept('stage2') } };
  }
  return {
    runs: [...runs],
    val: spread(numbers(ok.map((r) => r.valAcc))),
    test: spread(numbers(ok.map((r) => r.testAcc))),
    failed: runs.filter((r) => !r.ok).map((r) => r.seed),
    testWrong,
    testRecall,
    stages,
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

/** Columns padded to their widest cell, numbers right-aligned, words left-aligned; a rule after the given rows. */
function alignTable(rows: string[][], rulesAfter: number[], leftColumns: number[]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  const lines: string[] = [];
  rows.forEach((r, i) => {
    lines.push(
      r
        .map((cell, c) => (leftColumns.includes(c) ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
        .join('  ')
        .trimEnd(),
    );
    if (rulesAfter.includes(i)) lines.push(rule);
  });
  return lines;
}

const fixed4 = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : x.toFixed(4));

/**
 * The table boat repeat prints: one row per seed, then mean, min and max. Two-stage runs add each stage's
 * val and test accuracy and the stage kept, so whether stage 2 improves on stage 1 reads off the mean row.
 */
export function formatRepeatTable(summary: RepeatSummary): string {
  const staged = summary.stages;
  const stageHeader = staged ? ['stage 1 val', 'stage 1 test', 'stage 2 val', 'stage 2 test', 'kept'] : [];
  const rows: string[][] = [['seed', ...stageHeader, 'val acc', 'test acc', 'minutes', 'result']];
  for (const r of summary.runs) {
    const st = r.stages;
    const stageCells = staged
      ? st
        ? [
            fixed4(st.stage1.valAcc),
            fixed4(st.stage1.testAcc),
            fixed4(st.stage2.valAcc),
            fixed4(st.stage2.testAcc),
          ].concat(st.kept === 'stage1' ? 'stage 1' : 'stage 2')
        : ['-', '-', '-', '-', '-']
      : [];
    rows.push([
      String(r.seed),
      ...stageCells,
      fixed4(r.valAcc),
      fixed4(r.testAcc),
      (r.seconds / 60).toFixed(1),
      (r.ok ? 'ok' : `FAILED: ${r.error ?? `exit ${r.code}`}`) + (r.earlier ? ' (earlier)' : ''),
    ]);
  }
  const over = (s: Spread): string => `${s.n} of ${summary.runs.length}`;
  const stat = (label: string, pick: (s: Spread) => number | null, kept: string): string[] => [
    label,
    ...(staged
      ? [
          fixed4(pick(staged.stage1.val)),
          fixed4(pick(staged.stage1.test)),
          fixed4(pick(staged.stage2.val)),
          fixed4(pick(staged.stage2.test)),
          kept,
        ]
      : []),
    fixed4(pick(summary.val)),
    fixed4(pick(summary.test)),
    '',
    '',
  ];
  rows.push(stat(`mean (${over(summary.val)})`, (s) => s.mean, ''));
  rows.push(stat('min', (s) => s.min, ''));
  rows.push(stat('max', (s) => s.max, ''));
  const kept = staged ? [stageHeader.length, rows[0].length - 1] : [rows[0].length - 1];
  const lines = alignTable(rows, [0, rows.length - 4], [0, ...kept]);
  if (staged)
    lines.push(
      `Kept by val accuracy: stage 1 in ${staged.kept.stage1} of ${staged.kept.stage1 + staged.kept.stage2} seeds, stage 2 in ${staged.kept.stage2}`,
    );
  if (summary.failed.length > 0)
    lines.push(
      `${summary.failed.length} of ${summary.runs.length} seeds failed (${summary.failed.join(', ')}); the figures are over the others`,
    );
  return lines.join('\n');
}

/** Test recall per class over the seeds (mean, min, max), with each class's test photos; empty without it. */
export function formatTestRecall(summary: RepeatSummary): string {
  if (summary.testRecall === null) return '';
  const n = summary.testRecall[0]?.recall.n ?? 0;
  const rows: string[][] = [['class', 'test photos', 'recall mean', 'min', 'max']];
  for (const c of summary.testRecall)
    rows.push([c.class, String(c.support), fixed4(c.recall.mean), fixed4(c.recall.min), fixed4(c.recall.max)]);
  return [`Test recall per class over ${n} seeds:`, ...alignTable(rows, [0], [0])].join('\n');
}

type RunMetrics = Pick<SeedRun, 'testWrong' | 'testRecall' | 'stages'> & { valAcc: number; testAcc: number | null };

const numberOrNull = (x: unknown): number | null => (typeof x === 'number' ? x : null);

/**
 * Reads a finished run's metrics.json: best val accuracy and test accuracy (null without a test set), and
 * where the run recorded them its test mistakes, test recall per class and the recipe's two stages.
 */
export function readRunMetrics(out: string): RunMetrics {
  const file = path.join(out, 'metrics.json');
  let metrics: {
    best_val_acc?: unknown;
    test_acc?: unknown;
    test_misclassified?: unknown;
    test?: { perClass?: unknown };
    stages?: { stage1?: { val_acc?: unknown; test_acc?: unknown }; stage2?: { val_acc?: unknown; test_acc?: unknown } };
    kept?: unknown;
  };
  try {
    metrics = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof metrics;
  } catch {
    throw new Error(`no readable ${file}`);
  }
  if (typeof metrics.best_val_acc !== 'number') throw new Error(`${file} has no best_val_acc`);
  const wrong = metrics.test_misclassified;
  const perClass = metrics.test?.perClass;
  const { stage1, stage2 } = metrics.stages ?? {};
  const kept = metrics.kept;
  return {
    valAcc: metrics.best_val_acc,
    testAcc: numberOrNull(metrics.test_acc),
    ...(Array.isArray(wrong)
      ? {
          testWrong: wrong.map((w: Partial<Record<keyof WrongPhoto, unknown>>) => ({
            file: String(w.file),
            actual: String(w.actual),
            predicted: String(w.predicted),
          })),
        }
      : {}),
    ...(Array.isArray(perClass)
      ? {
          testRecall: perClass.map((c: { class?: unknown; recall?: unknown; support?: unknown }) => ({
            class: String(c.class),
            recall: Number(c.recall),
            support: Number(c.support),
          })),
        }
      : {}),
    ...(typeof stage1?.val_acc === 'number' &&
    typeof stage2?.val_acc === 'number' &&
    (kept === 'stage1' || kept === 'stage2')
      ? {
          stages: {
            stage1: { valAcc: stage1.val_acc, testAcc: numberOrNull(stage1.test_acc) },
            stage2: { valAcc: stage2.val_acc, testAcc: numberOrNull(stage2.test_acc) },
            kept,
          },
        }
      : {}),
  };
}

const REPEAT_FILE = 'repeat.json';

/**
 * The runs an earlier `boat repeat` of the same command recorded in <base>/repeat.json, for the seeds not
 * in `seeds` (those run again), marked `earlier`; with a note when there is a repeat.json that cannot
 * join (another command, or unreadable), which this run's summary then replaces.
 */
export function earlierRuns(
  base: string,
  args: readonly string[],
  seeds: readonly number[],
): { runs: SeedRun[]; note?: string } {
  const file = path.join(base, REPEAT_FILE);
  if (!fs.existsSync(file)) return { runs: [] };
  const parse = (): { command?: unknown; runs?: unknown } | null => {
    try {
      return JSON.parse(fs.readFileSync(file, 'utf8')) as { command?: unknown; runs?: unknown } | null;
    } catch {
      return null; // not JSON: unreadable, as below
    }
  };
  const saved = parse();
  const runs = saved?.runs;
  const isRun = (r: Partial<Record<keyof SeedRun, unknown>> | null): boolean =>
    typeof r === 'object' && r !== null && Number.isInteger(r.seed) && typeof r.ok === 'boolean';
  if (!saved || !Array.isArray(runs) || !runs.every(isRun))
    return { runs: [], note: `${file} is unreadable; this run's summary replaces it` };
  if (JSON.stringify(saved.command) !== JSON.stringify(['boat', ...args]))
    return {
      runs: [],
      note: `${file} is the summary of another command (${Array.isArray(saved.command) ? saved.command.join(' ') : '?'}); this run's summary replaces it`,
    };
  return {
    runs: (runs as SeedRun[]).filter((r) => !seeds.includes(r.seed)).map((r) => ({ ...r, earlier: true })),
  };
}

/**
 * Runs every seed in turn (one at a time: each run uses every core), then writes <out>/repeat.json over
 * these seeds and those an earlier repeat of the same command left there.
 */
export async function runRepeat(options: RepeatOptions): Promise<RepeatSummary> {
  const log = options.log ?? ((line: string) => console.log(line));
  const base = repeatedOut(options.args);
  if (options.seeds.length === 0) throw new UserError('--seeds needs at least one seed');
  claimOutputDirectory(base, 'boat-repeat', 'the repeated --out');
  const earlier = earlierRuns(base, options.args, options.seeds);
  if (earlier.note) log(`boat repeat: ${earlier.note}`);
  if (earlier.runs.length > 0)
    log(
      `boat repeat: seeds ${earlier.runs.map((r) => r.seed).join(',')} from an earlier repeat of this command join the summary (${path.join(base, REPEAT_FILE)})`,
    );
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
    let recorded: Pick<SeedRun, 'testWrong' | 'testRecall' | 'stages'> = {};
    if (code === 0) {
      try {
        const after = fs.statSync(path.join(out, 'metrics.json')).mtimeMs;
        if (before !== null && after === before)
          throw new Error(`the run did not write ${path.join(out, 'metrics.json')}`);
        ({ valAcc, testAcc, ...recorded } = readRunMetrics(out));
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
      ...recorded,
    });
    log(
      ok
        ? `boat repeat: seed ${seed}: val ${valAcc!.toFixed(4)}${testAcc !== null ? `, test ${testAcc.toFixed(4)}` : ''}`
        : `boat repeat: seed ${seed} FAILED (${error})`,
    );
  }
  const summary = summarizeRuns([...earlier.runs, ...runs].sort((a, b) => a.seed - b.seed));
  writeJsonAtomic(path.join(base, REPEAT_FILE), {
    command: ['boat', ...options.args],
    seeds: summary.runs.map((r) => r.seed),
    runs: summary.runs,
    val: summary.val,
    test: summary.test,
    failed: summary.failed,
    test_wrong: summary.testWrong,
    test_recall: summary.testRecall,
    stages: summary.stages,
  });
  return summary;
}
