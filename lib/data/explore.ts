/**
 * The exploration step of the tutorial as plain typed data: the file index with image sizes,
 * class counts, and the size summary. notebooks wrap these rows in DataFrames (see frames.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { defaultConcurrency, errorLine, mapLimit, Random, toCsv } from '../util';
import { readImageHeader } from './probe';
import { compareStrings, scanImageFolder, Skipped } from './scan';

export interface IndexRow {
  category: string;
  filepath: string;
  width: number;
  height: number;
}

export interface FileIndex {
  root: string;
  rows: IndexRow[];
  skipped: Skipped[];
}

/** Every image with its class and displayed size, read from headers only (no decoding). */
export async function buildFileIndex(root: string, concurrency = defaultConcurrency()): Promise<FileIndex> {
  const scanned = scanImageFolder(root);
  const skipped = [...scanned.skipped];
  const headers = await mapLimit(scanned.files, concurrency, async (f) => {
    try {
      return await readImageHeader(f.file);
    } catch (err) {
      skipped.push({ path: f.file, reason: errorLine(err) });
      return null;
    }
  });
  const rows: IndexRow[] = [];
  scanned.files.forEach((f, i) => {
    const h = headers[i];
    if (h) rows.push({ category: f.label, filepath: f.file, width: h.width, height: h.height });
  });
  return { root: scanned.root, rows, skipped };
}

/** The file index as CSV (category, filepath, width, height). */
export function indexCsv(rows: readonly IndexRow[]): string {
  return toCsv(
    ['category', 'filepath', 'width', 'height'],
    rows.map((r) => [r.category, r.filepath, r.width, r.height]),
  );
}

export interface ClassCount {
  category: string;
  count: number;
}

/** Images per class, largest first (ties by name), as the tutorial's bar chart shows them. */
export function classCounts(rows: readonly IndexRow[]): ClassCount[] {
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.category, (counts.get(r.category) ?? 0) + 1);
  return [...counts.entries()]
    .map(([category, count]) => ({ category, count }))
    .sort((a, b) => b.count - a.count || compareStrings(a.category, b.category));
}

export interface SizeSummary {
  statistic: string;
  width: number;
  height: number;
}

/** pandas-style describe() of the widths and heights: count, mean, std, min, 25%, 50%, 75%, max. */
export function sizeSummary(rows: readonly IndexRow[]): SizeSummary[] {
  const w = describe(rows.map((r) => r.width));
  const h = describe(rows.map((r) => r.height));
  return Object.keys(w).map((statistic) => ({ statistic, width: w[statistic], height: h[statistic] }));
}

function describe(values: number[]): Record<string, number> {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const mean = n ? sorted.reduce((s, v) => s + v, 0) / n : NaN;
  const std = n > 1 ? Math.sqrt(sorted.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)) : NaN;
  // Linear interpolation between closest ranks, like pandas' default.
  const q = (p: number): number => {
    if (!n) return NaN;
    const x = p * (n - 1);
    const lo = Math.floor(x);
    const hi = Math.min(n - 1, lo + 1);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (x - lo);
  };
  return {
    count: n,
    mean,
    std,
    min: n ? sorted[0] : NaN,
    '25%': q(0.25),
    '50%': q(0.5),
    '75%': q(0.75),
    max: n ? sorted[n - 1] : NaN,
  };
}

/** One file per class, picked with a seeded generator (the tutorial's random sample grid). */
export function samplePerClass(rows: readonly IndexRow[], seed = 0): IndexRow[] {
  const byClass = new Map<string, IndexRow[]>();
  for (const r of rows) byClass.set(r.category, [...(byClass.get(r.category) ?? []), r]);
  return [...byClass.entries()]
    .sort(([a], [b]) => compareStrings(a, b))
    .map(([c, members]) => Random.derive(seed, 'sample', c).pick(members));
}

/** The folder tree of a split (like the tutorial's `tree -d`), with image counts. */
export function folderTree(root: string, subsets: readonly string[] = ['train', 'val', 'test']): string {
  const lines = [path.basename(root) + '/'];
  subsets.forEach((subset, i) => {
    const dir = path.join(root, subset);
    if (!fs.existsSync(dir)) return;
    const last = i === subsets.length - 1;
    lines.push(`${last ? '└── ' : '├── '}${subset}/`);
    const classes = fs
      .readdirSync(dir)
      .filter((n) => !n.startsWith('.') && fs.statSync(path.join(dir, n)).isDirectory())
      .sort(compareStrings);
    classes.forEach((c, j) => {
      const n = fs.readdirSync(path.join(dir, c)).length;
      lines.push(`${last ? '    ' : '│   '}${j === classes.length - 1 ? '└── ' : '├── '}${c}/ (${n} images)`);
    });
  });
  return lines.join('\n');
}
