/**
 * What `boat data issues --out DIR` writes: issues.csv, duplicates.csv, two review grids (PNG), the report
 * as JSON, and starter files for `boat data split --exclude` / `--relabel` that the user edits.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';

import { photoGrid, GridItem } from '../plot/grid';
import { escapeXml, isOwnedDirectory, replaceOwnedDirectory, toCsv, UserError } from '../util';
import type { DataIssuesResult } from './issues';

export interface WrittenOutputs {
  out: string;
  files: string[];
}

/** A white tile with a line of text: an empty grid's only cell, and padding in a duplicates row. */
async function textTile(text: string, width = 440, height = 60): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="white"/><text x="${width / 2}" y="${height / 2 + 5}" font-size="16" text-anchor="middle" font-family="DejaVu Sans, sans-serif">${escapeXml(text)}</text></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** The top suspects, each captioned "given → suggested score". */
export async function labelIssuesGrid(result: DataIssuesResult, limit = 24): Promise<Buffer> {
  const issues = result.report.label_issues.slice(0, limit);
  if (issues.length === 0) return textTile('no label issues found');
  const byPath = new Map(result.photos.map((p) => [p.path, p.file]));
  const items: GridItem[] = issues.map((i) => ({
    file: byPath.get(i.path)!,
    caption: `${i.rank}. ${i.given} → ${i.suggested} ${i.score.toFixed(2)}`,
  }));
  return photoGrid(items, { columns: 4, tile: 240 });
}

/** One row per near-duplicate group (at most `columns` members shown), captioned with class, subset and method. */
export async function duplicatesGrid(result: DataIssuesResult, limit = 12, columns = 4): Promise<Buffer> {
  const groups = result.report.near_duplicates.slice(0, limit);
  if (groups.length === 0) return textTile('no near-duplicates found');
  const byPath = new Map(result.photos.map((p) => [p.path, p.file]));
  const blank = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#ffffff' } })
    .png()
    .toBuffer();
  const items: GridItem[] = [];
  groups.forEach((g, k) => {
    for (let c = 0; c < columns; c++) {
      if (c >= g.paths.length) {
        items.push({ file: blank, caption: '' });
        continue;
      }
      const where = `${g.classes[c]}${g.subsets[c] ? ` [${g.subsets[c]}]` : ''}`;
      const head =
        c === 0
          ? `${k + 1}. ${g.method === 'both' ? 'both' : g.method === 'embedding' ? 'emb' : 'phash'} ${g.similarity.toFixed(2)}${g.leakage ? ' LEAK' : ''}: `
          : '';
      items.push({ file: byPath.get(g.paths[c])!, caption: `${head}${where}` });
    }
  });
  return photoGrid(items, { columns, tile: 240 });
}

/** Starter rows for --exclude: every label issue and, per near-duplicate group, all but one member (a train one when there is one). */
export function excludeRows(result: DataIssuesResult): string[][] {
  const sourceOf = new Map(result.photos.map((p) => [p.path, p.source]));
  const rows = new Map<string, string>();
  for (const i of result.report.label_issues)
    rows.set(
      sourceOf.get(i.path)!,
      `label issue ${i.rank}: given ${i.given}, suggested ${i.suggested}, self-confidence ${i.score.toFixed(4)}`,
    );
  for (const g of result.report.near_duplicates) {
    const keep = Math.max(0, g.subsets.indexOf('train'));
    g.paths.forEach((p, k) => {
      if (k === keep || rows.has(sourceOf.get(p)!)) return;
      rows.set(
        sourceOf.get(p)!,
        `near-duplicate (${g.method} ${g.similarity.toFixed(3)}${g.leakage ? ', leakage' : ''}) of ${sourceOf.get(g.paths[keep])}`,
      );
    });
  }
  return [...rows.entries()].map(([p, reason]) => [p, reason]);
}

/** Starter rows for --relabel: each label issue with the model's suggested class. */
export function relabelRows(result: DataIssuesResult): string[][] {
  const sourceOf = new Map(result.photos.map((p) => [p.path, p.source]));
  return result.report.label_issues.map((i) => [sourceOf.get(i.path)!, i.suggested]);
}

/** Fails before any work when `out` is a folder of someone else's (the same rule writeIssueOutputs applies at the end). */
export function checkIssuesOut(out: string): void {
  if (!fs.existsSync(out)) return;
  if (!fs.statSync(out).isDirectory()) throw new UserError(`output path exists and is not a folder: ${out}`);
  if (!isOwnedDirectory(out) && fs.readdirSync(out).length > 0)
    throw new UserError(
      `output folder ${out} exists and was not made by boat; choose another --out or empty it yourself`,
    );
}

/**
 * Writes the outputs into `out`, a folder this command creates (or replaces, when an earlier run of it
 * made it); a folder with other files in it is refused before anything is written.
 */
export async function writeIssueOutputs(result: DataIssuesResult, out: string): Promise<WrittenOutputs> {
  const names = [
    'issues.csv',
    'duplicates.csv',
    'label-issues.png',
    'duplicates.png',
    'exclude.csv',
    'relabel.csv',
    'report.json',
  ];
  const [issuesPng, duplicatesPng] = [await labelIssuesGrid(result), await duplicatesGrid(result)];
  const { report } = result;
  await replaceOwnedDirectory(out, { kind: 'data-issues', data: report.root }, async (tmp) => {
    const write = (name: string, data: string | Buffer): void => fs.writeFileSync(path.join(tmp, name), data);
    write(
      'issues.csv',
      toCsv(
        ['rank', 'path', 'subset', 'given', 'suggested', 'score'],
        report.label_issues.map((i) => [i.rank, i.path, i.subset ?? '', i.given, i.suggested, i.score]),
      ),
    );
    write(
      'duplicates.csv',
      toCsv(
        ['group', 'method', 'similarity', 'leakage', 'path', 'class', 'subset'],
        report.near_duplicates.flatMap((g, k) =>
          g.paths.map((p, m) => [
            k + 1,
            g.method,
            g.similarity,
            g.leakage ? 'yes' : 'no',
            p,
            g.classes[m],
            g.subsets[m] ?? '',
          ]),
        ),
      ),
    );
    write('label-issues.png', issuesPng);
    write('duplicates.png', duplicatesPng);
    write('exclude.csv', toCsv(['path', 'reason'], excludeRows(result)));
    write('relabel.csv', toCsv(['path', 'new_class'], relabelRows(result)));
    write('report.json', JSON.stringify(report, null, 2) + '\n');
  });
  const dir = path.resolve(out);
  return { out: dir, files: names.map((n) => path.join(dir, n)) };
}
