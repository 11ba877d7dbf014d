import * as path from 'node:path';

import { auditDataset, formatAudit, indexCsv, makeDemoDataset, prepareDataset, splitDataset, Skipped, skippedLines, SUBSETS, buildFileIndex, classCounts, sizeSummary } from '../data';
import { UserError, writeFileAtomic } from '../util';
import { intFlag, parseFlags, requiredString, stringFlag } from './args';

export const DATA_USAGE = `Usage:
  boat data prepare --source <kaggle zip or folder> --out data/boats
  boat data demo    --out data/boats [--per-class N] [--seed S]
  boat data split   --data data/boats --out data [--top 5] [--seed 38] [--copy]
                    (the subset folders hold hard links to the photos unless --copy)
  boat data audit   --data data/boats [--split data/split.csv] [--json]
  boat data index   --data data/boats [--out index.csv]`;

export async function dataCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'prepare':
      return prepareCommand(rest);
    case 'demo':
      return demoCommand(rest);
    case 'split':
      return splitCommand(rest);
    case 'audit':
      return auditCommand(rest);
    case 'index':
      return indexCommand(rest);
    case undefined:
    case '--help':
      console.log(DATA_USAGE);
      return;
    default:
      throw new UserError(`unknown data command "${sub}" (boat data --help lists them)`);
  }
}

export function printSkipped(skipped: readonly Skipped[], limit = 20): void {
  for (const line of skippedLines(skipped, limit)) console.log(line);
}

async function prepareCommand(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, { source: { type: 'string' }, out: { type: 'string', default: 'data/boats' } });
  const report = await prepareDataset({ source: requiredString(flags, 'source'), out: requiredString(flags, 'out') });
  console.log(`Prepared ${report.images} images in ${report.classes.length} classes into ${report.out} (source untouched: ${report.source})`);
  for (const c of report.classes) console.log(`  ${c.name.padEnd(18)} ${String(c.images).padStart(5)}  from ${c.from}`);
  printSkipped(report.skipped);
}

async function demoCommand(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, { out: { type: 'string', default: 'data/boats' }, 'per-class': { type: 'string' }, seed: { type: 'string' } });
  const result = await makeDemoDataset({ out: requiredString(flags, 'out'), perClass: intFlag(flags, 'per-class'), seed: intFlag(flags, 'seed') });
  console.log(`Wrote the SYNTHETIC demo dataset (drawn pictures, not photos): ${result.images} images in ${result.classes.length} classes into ${result.out}`);
}

async function splitCommand(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, { data: { type: 'string', default: 'data/boats' }, out: { type: 'string', default: 'data' }, top: { type: 'string' }, seed: { type: 'string' }, copy: { type: 'boolean', default: false } });
  const report = await splitDataset({ data: requiredString(flags, 'data'), out: requiredString(flags, 'out'), top: intFlag(flags, 'top'), seed: intFlag(flags, 'seed'), copy: flags.copy === true });
  printSplit(report.out, report.classes, report.counts, report.dropped, report.linked, report.copied);
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
  console.log(`Split into ${SUBSETS.map((s) => path.join(out, s)).join(', ')} (${linked} hard links, ${copied} copies)`);
  console.log(`  ${'class'.padEnd(18)} ${SUBSETS.map((s) => s.padStart(6)).join(' ')}`);
  for (const c of classes) console.log(`  ${c.padEnd(18)} ${SUBSETS.map((s) => String(counts[c][s]).padStart(6)).join(' ')}`);
  if (dropped.length > 0) console.log(`Dropped (outside --top): ${dropped.map((d) => `${d.class} (${d.images})`).join(', ')}`);
  if (linked > 0) console.log('Note: hard links are the original files, so editing a photo in train/val/test edits it in the data folder too; --copy makes independent copies');
}

async function auditCommand(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, { data: { type: 'string', default: 'data/boats' }, split: { type: 'string' }, json: { type: 'boolean', default: false } });
  const report = await auditDataset({ data: requiredString(flags, 'data'), split: stringFlag(flags, 'split') });
  if (flags.json) console.log(JSON.stringify(report, null, 2));
  else console.log(formatAudit(report));
}

async function indexCommand(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, { data: { type: 'string', default: 'data/boats' }, out: { type: 'string' } });
  const index = await buildFileIndex(requiredString(flags, 'data'));
  const out = stringFlag(flags, 'out');
  if (out) {
    writeFileAtomic(out, indexCsv(index.rows));
    console.log(`Wrote ${index.rows.length} rows to ${out}`);
  }
  console.log(`Images per class (${index.rows.length} in all):`);
  for (const c of classCounts(index.rows)) console.log(`  ${c.category.padEnd(18)} ${String(c.count).padStart(5)}`);
  console.log('Image sizes (px):');
  for (const s of sizeSummary(index.rows)) console.log(`  ${s.statistic.padEnd(6)} width ${fmt(s.width).padStart(9)}  height ${fmt(s.height).padStart(9)}`);
  printSkipped(index.skipped);
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}


