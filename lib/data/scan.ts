import * as fs from 'node:fs';
import * as path from 'node:path';

import { requireDirectory, UserError } from '../util';

/** The file extensions torchvision's ImageFolder accepts (compared case-insensitively). */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp'] as const;

export function hasImageExtension(file: string): boolean {
  return (IMAGE_EXTENSIONS as readonly string[]).includes(path.extname(file).toLowerCase());
}

/** A file or folder that was left out, with a one-line reason. */
export interface Skipped {
  path: string;
  reason: string;
}

/** "Skipped N entries:" and one line per entry (`path: reason`), at most `limit` of them. */
export function skippedLines(skipped: readonly Skipped[], limit = 20, note = ''): string[] {
  if (skipped.length === 0) return [];
  const lines = [`Skipped ${skipped.length} entr${skipped.length === 1 ? 'y' : 'ies'}${note}:`];
  for (const s of skipped.slice(0, limit)) lines.push(`  ${s.path}: ${s.reason}`);
  if (skipped.length > limit) lines.push(`  ... and ${skipped.length - limit} more`);
  return lines;
}

export interface LabelledFile {
  /** Class name: the name of the top-level folder the file sits in. */
  label: string;
  /** Absolute path. */
  file: string;
  /** Path relative to the dataset root, with '/' separators (stable across platforms). */
  relative: string;
}

export interface ScannedFolder {
  root: string;
  /** Class names, sorted like torchvision's ImageFolder. */
  classes: string[];
  /** Files sorted by (label, relative path), independent of the order the file system lists them in. */
  files: LabelledFile[];
  skipped: Skipped[];
}

/** Folders under a dataset root that are ours, not classes (split subsets, hidden folders). */
function isIgnoredFolderName(name: string): boolean {
  return name.startsWith('.');
}

/**
 * Lists an ImageFolder-style tree: `root/<class>/**\/<image>`.
 *
 * Like torchvision it walks class folders recursively, following links, and keeps files by extension.
 * Unlike torchvision it never throws on odd content: a class "folder" that is a file, an empty class
 * folder, a non-image file or a symlink loop is reported in `skipped` with its reason.
 */
export function scanImageFolder(root: string): ScannedFolder {
  requireDirectory(root, 'data folder');
  const absRoot = path.resolve(root);
  const skipped: Skipped[] = [];
  const files: LabelledFile[] = [];
  const classes: string[] = [];

  const top = sortedEntries(absRoot);
  skipped.push(...top.undecodable);
  for (const entry of top.names) {
    const full = path.join(absRoot, entry);
    if (isIgnoredFolderName(entry)) continue;
    const stat = statOrReason(full);
    if (typeof stat === 'string') {
      skipped.push({ path: full, reason: `unreadable entry (${stat})` });
      continue;
    }
    if (!stat.isDirectory()) {
      skipped.push({ path: full, reason: 'not a class folder (a file at the top level)' });
      continue;
    }
    const found: LabelledFile[] = [];
    walk(full, entry, absRoot, new Set([fs.realpathSync(absRoot), fs.realpathSync(full)]), found, skipped);
    if (found.length === 0) {
      skipped.push({ path: full, reason: 'empty class folder (no image files)' });
      continue;
    }
    classes.push(entry);
    files.push(...found);
  }
  files.sort((a, b) => compareStrings(a.label, b.label) || compareStrings(a.relative, b.relative));
  return { root: absRoot, classes, files, skipped };
}

function walk(
  dir: string,
  label: string,
  root: string,
  seen: Set<string>,
  out: LabelledFile[],
  skipped: Skipped[],
): void {
  let entries: string[];
  try {
    const listed = sortedEntries(dir);
    skipped.push(...listed.undecodable);
    entries = listed.names;
  } catch {
    skipped.push({ path: dir, reason: 'folder cannot be read' });
    return;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry);
    const stat = statOrReason(full);
    if (typeof stat === 'string') {
      skipped.push({ path: full, reason: `unreadable entry (${stat})` });
    } else if (stat.isDirectory()) {
      const real = fs.realpathSync(full);
      if (seen.has(real)) {
        skipped.push({ path: full, reason: 'folder link loop' });
        continue;
      }
      walk(full, label, root, new Set([...seen, real]), out, skipped);
    } else if (!stat.isFile()) {
      skipped.push({ path: full, reason: 'not a regular file' });
    } else if (!hasImageExtension(entry)) {
      skipped.push({ path: full, reason: `not an image file (extension "${path.extname(entry) || 'none'}")` });
    } else if (stat.size === 0) {
      skipped.push({ path: full, reason: 'empty file (0 bytes)' });
    } else {
      out.push({ label, file: full, relative: path.relative(root, full).split(path.sep).join('/') });
    }
  }
}

/** The entry's stats (links followed), or why they cannot be had. */
function statOrReason(file: string): fs.Stats | string {
  try {
    return fs.statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return 'link loop';
    if (code === 'EACCES' || code === 'EPERM') return 'no permission';
    if (code === 'ENOENT' && fs.lstatSync(file, { throwIfNoEntry: false })?.isSymbolicLink()) return 'broken link';
    return `cannot be read: ${code ?? (err as Error).message}`;
  }
}

/**
 * A folder's entry names, sorted. Names that are not valid UTF-8 are left out and reported: Node's
 * string paths cannot name them (they decode lossily to another name), and neither can sharp.
 */
export function sortedEntries(dir: string): { names: string[]; undecodable: Skipped[] } {
  const names: string[] = [];
  const undecodable: Skipped[] = [];
  for (const raw of fs.readdirSync(dir, { encoding: 'buffer' })) {
    const name = raw.toString('utf8');
    if (Buffer.from(name, 'utf8').equals(raw)) names.push(name);
    else
      undecodable.push({
        path: path.join(dir, escapeBytes(raw)),
        reason:
          'file name is not valid UTF-8, and the decoders take paths as UTF-8 text; rename it (convmv converts names) to use it',
      });
  }
  return { names: names.sort(compareStrings), undecodable };
}

/** A raw name for display: printable ASCII as is, every other byte as \xNN. */
function escapeBytes(raw: Buffer): string {
  return Array.from(raw, (b) =>
    b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`,
  ).join('');
}

/** Code-point order, like Python's sorted(): independent of locale. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Like scanImageFolder, but an error when no class has any image. */
export function scanNonEmptyImageFolder(root: string): ScannedFolder {
  const scanned = scanImageFolder(root);
  if (scanned.files.length === 0) {
    throw new UserError(
      `no images found in ${root}: expected class folders with image files (${IMAGE_EXTENSIONS.join(' ')})`,
    );
  }
  return scanned;
}
