/** The `boat data` commands: ingest, demo set, split, audit and index. */
import * as path from 'node:path';

import { Command, Option } from 'commander';

import {
  auditDataset,
  formatAudit,
  indexCsv,
  makeDemoDataset,
  prepareDataset,
  splitDataset,
  Skipped,
  skippedLines,
  SUBSETS,
  buildFileIndex,
  classCounts,
  sizeSummary,
} from '../data';
import { writeFileAtomic } from '../util';
import { integer, positiveInteger } from './options';
import { required } from './program';
import { registerIssuesCommand } from './quality-commands';

export function registerDataCommands(program: Command): void {
  const data = program.command('data').description('prepare, split and inspect the image folders');
  data
    .command('prepare')
    .description('copy the Kaggle download into one folder per class (the source is never modified)')
    .addOption(required(new Option('--source <path>', 'the Kaggle .zip or its unpacked folder')))
    .option('--out <dir>', 'where the class folders go', 'data/boats')
    .action(prepareCommand);
  data
    .command('demo')
    .description('write the SYNTHETIC demo set (drawn pictures, not photos), for trying things without the photos')
    .option('--out <dir>', 'where the class folders go', 'data/boats')
    .option('--per-class <n>', 'images per class', positiveInteger, 40)
    .option('--seed <n>', 'random seed', integer, 0)
    .action(demoCommand);
  data
    .command('split')
    .description(
      'stratified 60/20/20 split into <out>/train, val and test (hard links unless --copy) and <out>/split.csv',
    )
    .option('--data <dir>', 'the class folders', 'data/boats')
    .option('--out <dir>', 'where train/, val/, test/ and split.csv go', 'data')
    .option('--top <n>', 'keep only the N largest classes (default: all; the tutorial keeps 5)', positiveInteger)
    .option('--seed <n>', 'random seed', integer, 38)
    .option('--exclude <csv>', 'photos to leave out (a path column, as boat data issues writes); recorded in split.csv')
    .option('--relabel <csv>', 'photos to move to another class (path,new_class rows); recorded in split.csv')
    .option(
      '--copy',
      'copy the photos instead of hard-linking them (a hard link is the original file: editing it in train/ edits the original)',
    )
    .action(splitCommand);
  data
    .command('audit')
    .description(
      'exact duplicates (SHA-256), unreadable files, non-images, format/extension mismatches; with --split, duplicates across subsets (leakage)',
    )
    .option('--data <dir>', 'the class folders', 'data/boats')
    .option('--split <csv>', 'a split.csv written by boat data split, to check for leakage')
    .option('--json', 'print the report as JSON')
    .action(auditCommand);
  data
    .command('index')
    .description('file index with image sizes from the headers (no decoding), class counts and a size summary')
    .option('--data <dir>', 'the class folders', 'data/boats')
    .option('--out <csv>', 'also write the index as CSV')
    .action(indexCommand);
  registerIssuesCommand(data);
}

export function printSkipped(skipped: readonly Skipped[], limit = 20): void {
  for (const line of skippedLines(skipped, limit)) console.log(line);
}

export interface PrepareFlags {
  source: string;
  out: string;
}

export async function prepareCommand(flags: PrepareFlags): Promise<void> {
  const report = await prepareDataset({ source: flags.source, out: flags.out });
  console.log(
    `Prepared ${report.images} images in ${report.classes.length} classes into ${report.out} (source untouched: ${report.source})`,
  );
  for (const c of report.classes) console.log(`  ${c.name.padEnd(18)} ${String(c.images).padStart(5)}  from ${c.from}`);
  printSkipped(report.skipped);
}

export interface DemoFlags {
  out: string;
  perClass: number;
  seed: number;
}

export async function demoCommand(flags: DemoFlags): Promise<void> {
  const result = await makeDemoDataset({ out: flags.out, perClass: flags.perClass, seed: flags.seed });
  console.log(
    `Wrote the SYNTHETIC demo dataset (drawn pictures, not photos): ${result.images} images in ${result.classes.length} classes into ${result.out}`,
  );
}

export interface SplitFlags {
  data: string;
  out: string;
  top?: number;
  seed: number;
  exclude?: string;
  relabel?: string;
  copy?: boolean;
}

export async function splitCommand(flags: SplitFlags): Promise<void> {
  const report = await splitDataset({
    data: flags.data,
    out: flags.out,
    top: flags.top,
    seed: flags.seed,
    exclude: flags.exclude,
    relabel: flags.relabel,
    copy: flags.copy === true,
  });
  printSplit(report.out, report.classes, report.counts, report.dropped, report.linked, report.copied);
  printSplitEdits(report);
  console.log(`Wrote ${report.csv}`);
  printSkipped(report.skipped);
}

export function printSplit(
  out: string,
  classes: readonly string[],
  counts: Record<string, Record<string, number>>,
  dropped: ReadonlyArray<{ class: string; images: number }>,
  linked: number,
  copied: number,
): void {
  console.log(
    `Split into ${SUBSETS.map((s) => path.join(out, s)).join(', ')} (${linked} hard links, ${copied} copies)`,
  );
  console.log(`  ${'class'.padEnd(18)} ${SUBSETS.map((s) => s.padStart(6)).join(' ')}`);
  for (const c of classes)
    console.log(`  ${c.padEnd(18)} ${SUBSETS.map((s) => String(counts[c][s]).padStart(6)).join(' ')}`);
  if (dropped.length > 0)
    console.log(`Dropped (outside --top): ${dropped.map((d) => `${d.class} (${d.images})`).join(', ')}`);
  if (linked > 0)
    console.log(
      'Note: hard links are the original files, so editing a photo in train/val/test edits it in the data folder too; --copy makes independent copies',
    );
}

function printSplitEdits(report: Awaited<ReturnType<typeof splitDataset>>): void {
  if (report.excluded.length > 0)
    console.log(
      `Excluded ${report.excluded.length} photo(s) (still in the data folder, recorded in split.csv as "excluded")`,
    );
  if (report.relabelled.length > 0)
    console.log(
      `Relabelled ${report.relabelled.length} photo(s): ${report.relabelled
        .slice(0, 5)
        .map((r) => `${r.path} ${r.from} -> ${r.to}`)
        .join(', ')}${report.relabelled.length > 5 ? ', ...' : ''}`,
    );
  if (report.ignored.length > 0)
    console.log(`Ignored ${report.ignored.length} row(s) naming photos of classes outside the split (--top)`);
}

export interface AuditFlags {
  data: string;
  split?: string;
  json?: boolean;
}

export async function auditCommand(flags: AuditFlags): Promise<void> {
  const report = await auditDataset({ data: flags.data, split: flags.split });
  if (flags.json) console.log(JSON.stringify(report, null, 2));
  else console.log(formatAudit(report));
}

export interface IndexFlags {
  data: string;
  out?: string;
}

export async function indexCommand(flags: IndexFlags): Promise<void> {
  const index = await buildFileIndex(flags.data);
  const out = flags.out;
  if (out) {
    writeFileAtomic(out, indexCsv(index.rows));
    console.log(`Wrote ${index.rows.length} rows to ${out}`);
  }
  console.log(`Images per class (${index.rows.length} in all):`);
  for (const c of classCounts(index.rows)) console.log(`  ${c.category.padEnd(18)} ${String(c.count).padStart(5)}`);
  console.log('Image sizes (px):');
  for (const s of sizeSummary(index.rows))
    console.log(`  ${s.statistic.padEnd(6)} width ${fmt(s.width).padStart(9)}  height ${fmt(s.height).padStart(9)}`);
  printSkipped(index.skipped);
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
