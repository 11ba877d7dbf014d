/**
 * Edits a split applies without touching a photo: an exclude file (rows of `path`, any other columns
 * ignored, e.g. the reason `boat data issues` writes) and a relabel file (rows of `path,new_class`).
 * Paths are relative to the data folder (`kayak/12.jpg`, as the issues command writes them) or absolute.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { parseCsv, UserError } from '../util';
import type { LabelledFile } from './scan';

export interface SplitEditRow {
  /** The photo's absolute path. */
  file: string;
  /** 1-based line in the CSV, for messages. */
  line: number;
}

function readRows(csv: string, what: string, columns: readonly string[]): { rows: string[][]; at: number[] } {
  let text: string;
  try {
    text = fs.readFileSync(csv, 'utf8');
  } catch {
    throw new UserError(`${what} file not found: ${csv}`);
  }
  const [header, ...rows] = parseCsv(text.replace(/^\uFEFF/, ''));
  const names = (header ?? []).map((h) => h.trim().toLowerCase());
  const at = columns.map((c) => {
    const i = names.indexOf(c);
    if (i < 0)
      throw new UserError(
        `${csv} is not ${what === 'exclude' ? 'an' : 'a'} ${what} file: no "${c}" column in its first line (expected ${columns.join(',')})`,
      );
    return i;
  });
  return { rows, at };
}

/** Finds the data file a row names, or fails with a one-line error naming the CSV line. */
function resolver(
  csv: string,
  files: readonly LabelledFile[],
  dataRoot: string,
): (value: string, line: number) => string {
  const byRelative = new Map(files.map((f) => [f.relative, f.file]));
  const byAbsolute = new Map(files.map((f) => [f.file, f.file]));
  return (value, line) => {
    const p = value.trim();
    const found = path.isAbsolute(p)
      ? byAbsolute.get(path.resolve(p))
      : byRelative.get(path.posix.normalize(p.split(path.sep).join('/')));
    if (!found)
      throw new UserError(
        `${csv} line ${line}: "${p}" is not a photo in ${dataRoot} (paths are relative to the data folder, like kayak/12.jpg)`,
      );
    return found;
  };
}

/** The photos an exclude file names. */
export function readExcludeFile(
  csv: string,
  files: readonly LabelledFile[],
  dataRoot: string,
): Map<string, SplitEditRow> {
  const { rows, at } = readRows(csv, 'exclude', ['path']);
  const resolve = resolver(csv, files, dataRoot);
  const out = new Map<string, SplitEditRow>();
  rows.forEach((r, k) => {
    if (r.every((c) => c.trim() === '')) return;
    const file = resolve(r[at[0]] ?? '', k + 2);
    out.set(file, { file, line: k + 2 });
  });
  return out;
}

/** The photos a relabel file names, each with its new class. */
export function readRelabelFile(
  csv: string,
  files: readonly LabelledFile[],
  dataRoot: string,
): Map<string, SplitEditRow & { newClass: string }> {
  const { rows, at } = readRows(csv, 'relabel', ['path', 'new_class']);
  const resolve = resolver(csv, files, dataRoot);
  const out = new Map<string, SplitEditRow & { newClass: string }>();
  rows.forEach((r, k) => {
    if (r.every((c) => c.trim() === '')) return;
    const file = resolve(r[at[0]] ?? '', k + 2);
    const newClass = (r[at[1]] ?? '').trim();
    if (newClass === '') throw new UserError(`${csv} line ${k + 2}: no new_class for ${r[at[0]]}`);
    const earlier = out.get(file);
    if (earlier && earlier.newClass !== newClass)
      throw new UserError(
        `${csv} line ${k + 2}: ${r[at[0]]} is relabelled twice (line ${earlier.line} says ${earlier.newClass})`,
      );
    out.set(file, { file, line: k + 2, newClass });
  });
  return out;
}
