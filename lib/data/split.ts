/**
 * The tutorial's split: keep the N largest classes, then a stratified 60/20/20 train/val/test split
 * (its train_test_split with test_size=0.4, then 0.5 of the rest), materialised as folders.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import {
  linkOrCopy,
  OWNED_MARKER,
  parseCsv,
  Random,
  readOwnedMarker,
  replaceOwnedDirectory,
  requireWritableDirectory,
  toCsv,
  UserError,
  writeFileAtomic,
} from '../util';
import { compareStrings, LabelledFile, scanNonEmptyImageFolder, Skipped } from './scan';
import { readExcludeFile, readRelabelFile, SplitEditRow } from './split-edits';

export const SUBSETS = ['train', 'val', 'test'] as const;
export type Subset = (typeof SUBSETS)[number];

export interface SplitOptions {
  /** An ImageFolder tree: data/<class>/<images>. */
  data: string;
  /** Where train/, val/, test/ and split.csv go. */
  out: string;
  /** Keep only the `top` largest classes (all when undefined). */
  top?: number;
  seed?: number;
  /** Fractions for val and test; train gets the rest. */
  valFraction?: number;
  testFraction?: number;
  /** Materialise the folders (default) or only write split.csv. */
  materialise?: boolean;
  /** A CSV whose `path` column names photos to leave out of the split (the photos stay where they are). */
  exclude?: string;
  /** A CSV of `path,new_class` rows: photos that go into the split under another class than their folder's. */
  relabel?: string;
  /**
   * Copy the photos into the subset folders instead of hard-linking them. A hard link is the same file
   * as the original, so editing a photo in train/ edits it in the data folder too; a copy is independent.
   */
  copy?: boolean;
}

export interface SplitRow {
  /** Source image path relative to the folder holding split.csv, '/' separators. */
  path: string;
  class: string;
  subset: Subset;
  /** Set when an exclude or relabel file was applied: "relabelled from <class>", or "" (written as split.csv's note column). */
  note?: string;
}

export interface SplitReport {
  out: string;
  csv: string;
  seed: number;
  classes: string[];
  dropped: Array<{ class: string; images: number }>;
  counts: Record<string, Record<Subset, number>>;
  rows: SplitRow[];
  linked: number;
  copied: number;
  skipped: Skipped[];
  /** Photos left out by the exclude file, relative to the data folder. */
  excluded: string[];
  /** Photos given another class by the relabel file. */
  relabelled: Array<{ path: string; from: string; to: string }>;
  /** Rows of the exclude and relabel files naming photos of classes the split leaves out (--top): nothing to do. */
  ignored: string[];
}

/** Per-class subset sizes: val and test are rounded shares, train gets the rest (each within ±1 of its share). */
export function subsetSizes(n: number, valFraction = 0.2, testFraction = 0.2): Record<Subset, number> {
  const val = Math.round(n * valFraction);
  const test = Math.round(n * testFraction);
  return { train: n - val - test, val, test };
}

/** Keeps the `top` classes with most files; ties are broken by name so the choice is stable. */
export function largestClasses(
  files: readonly LabelledFile[],
  top: number | undefined,
): { kept: string[]; dropped: Array<{ class: string; images: number }> } {
  const counts = new Map<string, number>();
  for (const f of files) counts.set(f.label, (counts.get(f.label) ?? 0) + 1);
  const ranked = [...counts.entries()].sort(([a, na], [b, nb]) => nb - na || compareStrings(a, b));
  const keep = top === undefined ? ranked.length : top;
  return {
    kept: ranked
      .slice(0, keep)
      .map(([c]) => c)
      .sort(compareStrings),
    dropped: ranked.slice(keep).map(([c, n]) => ({ class: c, images: n })),
  };
}

/**
 * Assigns every file of the kept classes to a subset. Files are shuffled per class with a generator
 * derived from (seed, class), after sorting by path, so the result does not depend on the order in
 * which the file system lists files.
 */
export function assignSubsets(
  files: readonly LabelledFile[],
  classes: readonly string[],
  seed: number,
  valFraction = 0.2,
  testFraction = 0.2,
): Array<LabelledFile & { subset: Subset }> {
  const out: Array<LabelledFile & { subset: Subset }> = [];
  for (const label of classes) {
    const members = files.filter((f) => f.label === label).sort((a, b) => compareStrings(a.relative, b.relative));
    const shuffled = Random.derive(seed, 'split', label).shuffled(members);
    const sizes = subsetSizes(members.length, valFraction, testFraction);
    shuffled.forEach((f, i) => {
      const subset: Subset = i < sizes.train ? 'train' : i < sizes.train + sizes.val ? 'val' : 'test';
      out.push({ ...f, subset });
    });
  }
  return out.sort((a, b) => compareStrings(a.label, b.label) || compareStrings(a.relative, b.relative));
}

export async function splitDataset(options: SplitOptions): Promise<SplitReport> {
  const seed = options.seed ?? 38;
  if (options.top !== undefined && (!Number.isInteger(options.top) || options.top < 1)) {
    throw new UserError(`--top must be a positive integer, got ${options.top}`);
  }
  const out = path.resolve(options.out);
  requireWritableDirectory(out);
  const scanned = scanNonEmptyImageFolder(options.data);
  if (SUBSETS.some((s) => path.resolve(out, s) === scanned.root)) {
    throw new UserError(`--out ${options.out} would replace the data folder itself`);
  }
  const { kept, dropped } = largestClasses(scanned.files, options.top);
  const edits = applySplitEdits(
    assignSubsets(scanned.files, kept, seed, options.valFraction, options.testFraction),
    scanned.files,
    scanned.root,
    kept,
    options,
  );
  const assigned = edits.assigned;

  const counts: Record<string, Record<Subset, number>> = {};
  for (const label of kept) counts[label] = { train: 0, val: 0, test: 0 };
  for (const f of assigned) counts[f.label][f.subset]++;

  let linked = 0;
  let copied = 0;
  if (options.materialise ?? true) {
    refuseForeignFiles(out, scanned.files);
    for (const subset of SUBSETS) {
      const members = assigned.filter((a) => a.subset === subset).map((f) => ({ file: f.file, entry: subsetEntry(f) }));
      const files = members.map((m) => m.entry);
      await replaceOwnedDirectory(
        path.join(out, subset),
        { kind: 'split-subset', subset, seed, data: scanned.root, files, ...edits.marker },
        async (tmp) => {
          for (const label of kept) fs.mkdirSync(path.join(tmp, label));
          for (const m of members) {
            const dest = path.join(tmp, ...m.entry.split('/'));
            if (options.copy) {
              fs.copyFileSync(m.file, dest);
              copied++;
            } else if (linkOrCopy(m.file, dest) === 'link') linked++;
            else copied++;
          }
        },
      );
    }
  }
  const rel = (file: string): string => path.relative(out, file).split(path.sep).join('/');
  const rows: SplitRow[] = assigned.map((f) => ({
    path: rel(f.file),
    class: f.label,
    subset: f.subset,
    ...(edits.applied ? { note: edits.notes.get(f.file) ?? '' } : {}),
  }));
  const csv = path.join(out, 'split.csv');
  if (edits.applied) {
    // Excluded photos stay on record, with subset "excluded", so split.csv says what the split left out and why.
    const excludedRows = edits.excluded.map((f) => [
      rel(f.file),
      f.label,
      EXCLUDED,
      `excluded by ${path.basename(options.exclude!)}`,
    ]);
    writeFileAtomic(
      csv,
      toCsv(
        ['path', 'class', 'subset', 'note'],
        [...rows.map((r) => [r.path, r.class, r.subset, r.note ?? '']), ...excludedRows],
      ),
    );
  } else {
    writeFileAtomic(
      csv,
      toCsv(
        ['path', 'class', 'subset'],
        rows.map((r) => [r.path, r.class, r.subset]),
      ),
    );
  }
  const relativeToData = (file: string): string => path.relative(scanned.root, file).split(path.sep).join('/');
  return {
    out,
    csv,
    seed,
    classes: kept,
    dropped,
    counts,
    rows,
    linked,
    copied,
    skipped: scanned.skipped,
    excluded: edits.excluded.map((f) => relativeToData(f.file)),
    relabelled: edits.relabelled.map((r) => ({ path: relativeToData(r.file), from: r.from, to: r.to })),
    ignored: edits.ignored,
  };
}

/** The subset name split.csv gives photos that an exclude file left out; readSplitCsv skips them. */
export const EXCLUDED = 'excluded';

/**
 * Applies the exclude and relabel files after the subsets are drawn from the folders' own classes, so
 * every other photo keeps the subset it has without them: a run on the cleaned split is compared with the
 * original on the same val and test photos (minus the excluded ones), not on a fresh draw.
 */
function applySplitEdits(
  drawn: Array<LabelledFile & { subset: Subset }>,
  files: readonly LabelledFile[],
  root: string,
  kept: readonly string[],
  options: SplitOptions,
): {
  assigned: Array<LabelledFile & { subset: Subset }>;
  excluded: Array<LabelledFile & { subset: Subset }>;
  relabelled: Array<{ file: string; from: string; to: string }>;
  notes: Map<string, string>;
  ignored: string[];
  applied: boolean;
  marker: Record<string, string>;
} {
  const exclude = options.exclude ? readExcludeFile(options.exclude, files, root) : new Map<string, SplitEditRow>();
  const relabel = options.relabel
    ? readRelabelFile(options.relabel, files, root)
    : new Map<string, SplitEditRow & { newClass: string }>();
  const inSplit = new Set(drawn.map((f) => f.file));
  const ignored = [...new Set([...exclude.keys(), ...relabel.keys()].filter((file) => !inSplit.has(file)))].map(
    (file) => path.relative(root, file).split(path.sep).join('/'),
  );
  for (const [file, row] of relabel) {
    if (!inSplit.has(file)) continue;
    if (!kept.includes(row.newClass))
      throw new UserError(
        `${options.relabel} line ${row.line}: "${row.newClass}" is not one of the split's classes (${kept.join(', ')})`,
      );
    if (exclude.has(file))
      throw new UserError(
        `${options.relabel} line ${row.line}: ${path.relative(root, file)} is also in the exclude file ${options.exclude} (line ${exclude.get(file)!.line}); keep it in one of them`,
      );
  }
  const notes = new Map<string, string>();
  const relabelled: Array<{ file: string; from: string; to: string }> = [];
  const assigned = drawn
    .filter((f) => !exclude.has(f.file))
    .map((f) => {
      const to = relabel.get(f.file)?.newClass;
      if (to === undefined || to === f.label) return f;
      notes.set(f.file, `relabelled from ${f.label}`);
      relabelled.push({ file: f.file, from: f.label, to });
      return { ...f, label: to };
    })
    .sort((a, b) => compareStrings(a.label, b.label) || compareStrings(a.relative, b.relative));
  const marker: Record<string, string> = {};
  if (options.exclude) marker.exclude = path.resolve(options.exclude);
  if (options.relabel) marker.relabel = path.resolve(options.relabel);
  return {
    assigned,
    excluded: drawn.filter((f) => exclude.has(f.file)),
    relabelled,
    notes,
    ignored,
    applied: !!(options.exclude || options.relabel),
    marker,
  };
}

/** Where a file goes inside its subset folder, '/' separators: files nested below the class folder keep their sub-path in the name. */
function subsetEntry(f: LabelledFile): string {
  return `${f.label}/${f.relative.split('/').slice(1).join('__')}`;
}

/**
 * Re-running a split replaces the subset folders, so a file the user put into one would be deleted: fail,
 * naming them, before any work. A subset folder's marker lists the files the split put there; one written
 * before markers had that list is judged by name (any name the split could have made from the data folder).
 */
function refuseForeignFiles(out: string, dataFiles: readonly LabelledFile[]): void {
  const foreign: string[] = [];
  for (const subset of SUBSETS) {
    const dir = path.join(out, subset);
    const marker = readOwnedMarker(dir);
    if (!marker) continue; // not ours: replaceOwnedDirectory refuses it unless it is empty
    const ours = new Set(Array.isArray(marker.files) ? (marker.files as string[]) : dataFiles.map(subsetEntry));
    for (const entry of filesBelow(dir))
      if (entry !== OWNED_MARKER && !ours.has(entry)) foreign.push(`${subset}/${entry}`);
  }
  if (foreign.length === 0) return;
  const named = foreign
    .slice(0, 5)
    .map((f) => path.join(out, f))
    .join(', ');
  const more = foreign.length > 5 ? ` and ${foreign.length - 5} more` : '';
  throw new UserError(
    `the split folders hold ${foreign.length} file${foreign.length === 1 ? '' : 's'} the split did not put there, which re-running it would delete: ${named}${more}; move them out first`,
  );
}

/** Paths of the files below `dir`, relative, '/' separators. */
function filesBelow(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const relative = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...filesBelow(path.join(dir, entry.name), relative));
    else out.push(relative);
  }
  return out;
}

/** Reads a split.csv written by splitDataset; paths are resolved against the csv's folder. */
export function readSplitCsv(csv: string): Array<SplitRow & { file: string }> {
  let text: string;
  try {
    text = fs.readFileSync(csv, 'utf8');
  } catch {
    throw new UserError(`split file not found: ${csv}`);
  }
  const [header, ...rows] = parseCsv(text);
  const at = (name: string): number => {
    const i = header?.indexOf(name) ?? -1;
    if (i < 0) throw new UserError(`${csv} is not a split file: no "${name}" column`);
    return i;
  };
  const [pi, ci, si] = [at('path'), at('class'), at('subset')];
  return rows
    .map((r, line) => ({ r, line }))
    .filter(({ r }) => r.length > 1 && r[si] !== EXCLUDED)
    .map(({ r, line }) => {
      const subset = r[si] as Subset;
      if (!SUBSETS.includes(subset)) throw new UserError(`${csv} line ${line + 2}: unknown subset "${r[si]}"`);
      return { path: r[pi], class: r[ci], subset, file: path.resolve(path.dirname(csv), r[pi]) };
    });
}
