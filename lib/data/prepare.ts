/**
 * Ingests the Kaggle "boat-types-recognition" download (its zip, or the folder it unpacks to)
 * into a clean ImageFolder tree: `out/<class_name>/<file>`.
 *
 * The Kaggle zip holds its 9 class folders twice, at the top level and again under boats/, and
 * class names contain spaces ("cruise ship"). The tutorial deletes the top-level copies and renames
 * the folders; here nothing in the source is touched: images are copied into `out`, one copy of each
 * class is kept, and spaces become underscores.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as yauzl from 'yauzl';

import { replaceOwnedDirectory, UserError } from '../util';
import { compareStrings, hasImageExtension, Skipped, sortedEntries } from './scan';

export interface PrepareOptions {
  /** The Kaggle zip or an unpacked folder. */
  source: string;
  out: string;
}

export interface PreparedClass {
  name: string;
  /** The folder in the source it was taken from (relative to the source). */
  from: string;
  images: number;
}

export interface PrepareReport {
  source: string;
  out: string;
  classes: PreparedClass[];
  images: number;
  skipped: Skipped[];
}

/** One file of the source, wherever it lives (folder or zip). */
interface SourceFile {
  /** Path relative to the source root with '/' separators. */
  relative: string;
  size: number;
  copyTo(dest: string): Promise<void>;
}

/** Kaggle class folder name → our class name: "cruise ship" → "cruise_ship". */
export function normaliseClassName(name: string): string {
  return name.trim().replace(/\s+/g, '_');
}

export async function prepareDataset(options: PrepareOptions): Promise<PrepareReport> {
  const source = path.resolve(options.source);
  if (!fs.existsSync(source)) throw new UserError(`source not found: ${options.source}`);
  const stat = fs.statSync(source);
  if (stat.isDirectory()) {
    const listed = listFolder(source);
    const report = await ingest(source, options.out, listed.files);
    return { ...report, skipped: [...listed.skipped, ...report.skipped] };
  }
  if (!source.toLowerCase().endsWith('.zip')) {
    throw new UserError(`source must be the Kaggle .zip or an unpacked folder: ${options.source}`);
  }
  const zip = await openZip(source);
  try {
    return await ingest(source, options.out, await listZip(zip));
  } finally {
    zip.close();
  }
}

async function ingest(source: string, out: string, files: SourceFile[]): Promise<PrepareReport> {
  const skipped: Skipped[] = [];
  const byDir = new Map<string, SourceFile[]>();
  for (const file of files) {
    const where = path.posix.join(source, file.relative);
    if (file.relative.split('/').some((part) => part === '__MACOSX' || part.startsWith('.'))) continue;
    if (!hasImageExtension(file.relative)) {
      skipped.push({ path: where, reason: 'not an image file' });
      continue;
    }
    if (file.size === 0) {
      skipped.push({ path: where, reason: 'empty file (0 bytes)' });
      continue;
    }
    const dir = path.posix.dirname(file.relative);
    if (dir === '.') {
      skipped.push({ path: where, reason: 'image outside any class folder' });
      continue;
    }
    byDir.set(dir, [...(byDir.get(dir) ?? []), file]);
  }
  // One folder per class name; Kaggle has two copies of each, keep the larger, then the deeper (boats/…).
  const chosen = new Map<string, string>();
  for (const dir of [...byDir.keys()].sort(compareStrings)) {
    const name = normaliseClassName(path.posix.basename(dir));
    const current = chosen.get(name);
    if (current === undefined || isPreferredCopy(dir, current, byDir)) chosen.set(name, dir);
  }
  for (const dir of [...byDir.keys()].sort(compareStrings)) {
    const name = normaliseClassName(path.posix.basename(dir));
    if (chosen.get(name) !== dir) {
      skipped.push({
        path: path.posix.join(source, dir),
        reason: `second copy of class "${name}" (kept ${chosen.get(name)})`,
      });
    }
  }
  if (chosen.size === 0) throw new UserError(`no class folders with images found in ${source}`);

  const classes: PreparedClass[] = [...chosen.entries()]
    .sort(([a], [b]) => compareStrings(a, b))
    .map(([name, dir]) => ({ name, from: dir, images: byDir.get(dir)!.length }));
  await replaceOwnedDirectory(out, { kind: 'prepared-dataset', source }, async (tmp) => {
    for (const cls of classes) {
      const classDir = path.join(tmp, cls.name);
      fs.mkdirSync(classDir);
      for (const file of byDir.get(cls.from)!)
        await file.copyTo(path.join(classDir, path.posix.basename(file.relative)));
    }
  });
  return { source, out: path.resolve(out), classes, images: classes.reduce((n, c) => n + c.images, 0), skipped };
}

function isPreferredCopy(candidate: string, current: string, byDir: Map<string, SourceFile[]>): boolean {
  const a = byDir.get(candidate)!.length;
  const b = byDir.get(current)!.length;
  if (a !== b) return a > b;
  return candidate.split('/').length > current.split('/').length;
}

function listFolder(root: string): { files: SourceFile[]; skipped: Skipped[] } {
  const out: SourceFile[] = [];
  const skipped: Skipped[] = [];
  const visit = (dir: string, seen: Set<string>): void => {
    const listed = sortedEntries(dir);
    skipped.push(...listed.undecodable);
    for (const entry of listed.names) {
      const full = path.join(dir, entry);
      let stat: fs.Stats;
      try {
        stat = fs.statSync(full);
      } catch {
        continue; // broken link: nothing to copy
      }
      if (stat.isDirectory()) {
        const real = fs.realpathSync(full);
        if (!seen.has(real)) visit(full, new Set([...seen, real]));
      } else if (stat.isFile()) {
        out.push({
          relative: path.relative(root, full).split(path.sep).join('/'),
          size: stat.size,
          copyTo: async (dest) => fs.promises.copyFile(full, dest, fs.constants.COPYFILE_FICLONE),
        });
      }
    }
  };
  visit(root, new Set([fs.realpathSync(root)]));
  return { files: out, skipped };
}

function openZip(file: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: false }, (err, zip) => {
      if (err || !zip) reject(new UserError(`cannot read zip ${file}: ${err?.message ?? 'unknown error'}`));
      else resolve(zip);
    });
  });
}

function listZip(zip: yauzl.ZipFile): Promise<SourceFile[]> {
  return new Promise((resolve, reject) => {
    const files: SourceFile[] = [];
    zip.on('entry', (entry: yauzl.Entry) => {
      if (!entry.fileName.endsWith('/')) {
        files.push({
          relative: entry.fileName.replace(/^\/+/, ''),
          size: entry.uncompressedSize,
          copyTo: (dest) =>
            new Promise<void>((done, fail) => {
              zip.openReadStream(entry, (err, stream) => {
                if (err || !stream) fail(new UserError(`cannot read ${entry.fileName} from zip: ${err?.message}`));
                else pipeline(stream, fs.createWriteStream(dest)).then(done, fail);
              });
            }),
        });
      }
      zip.readEntry();
    });
    zip.on('end', () => resolve(files));
    zip.on('error', (err: Error) => reject(new UserError(`corrupt zip: ${err.message}`)));
    zip.readEntry();
  });
}
