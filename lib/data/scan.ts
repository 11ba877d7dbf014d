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

  for (const entry of sortedEntries(absRoot)) {
    const full = path.join(absRoot, entry);
    if (isIgnoredFolderName(entry)) continue;
    const stat = statOrNull(full);
    if (!stat) {
      skipped.push({ path: full, reason: 'unreadable entry (broken link or no permission)' });
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

function walk(dir: string, label: string, root: string, seen: Set<string>, out: LabelledFile[], skipped: Skipped[]): void {
  let entries: string[];
  try {
    entries = sortedEntries(dir);
  } catch {
    skipped.push({ path: dir, reason: 'folder cannot be read' });
    return;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry);
    const stat = statOrNull(full);
    if (!stat) {
      skipped.push({ path: full, reason: 'unreadable entry (broken link, link loop or no permission)' });
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

function statOrNull(file: string): fs.Stats | null {
  try {
    return fs.statSync(file);
  } catch {
    return null;
  }
}

function sortedEntries(dir: string): string[] {
  return fs.readdirSync(dir).sort(compareStrings);
}

/** Code-point order, like Python's sorted(): independent of locale. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Like scanImageFolder, but an error when no class has any image. */
export function scanNonEmptyImageFolder(root: string): ScannedFolder {
  const scanned = scanImageFolder(root);
  if (scanned.files.length === 0) {
    throw new UserError(`no images found in ${root}: expected class folders with image files (${IMAGE_EXTENSIONS.join(' ')})`);
  }
  return scanned;
}
