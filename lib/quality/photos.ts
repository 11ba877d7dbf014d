/**
 * The photos a data-quality run looks at: a class-folder tree, or a split root whose train/, val/ and
 * test/ are pooled (each photo keeps its subset), with the backbone's 2048-d features of every photo
 * from the feature cache that training shares.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { compareStrings, readSplitCsv, Skipped, SUBSETS, Subset } from '../data';
import type { BoatModel } from '../model';
import { evalTransforms } from '../images';
import { extractFeatures } from '../train/features';
import { readOwnedMarker, requireDirectory, UserError } from '../util';

export interface Photo {
  /** Absolute path. */
  file: string;
  /** Path relative to the data folder given, '/' separators. */
  path: string;
  /** The class its folder gives it. */
  label: number;
  subset?: Subset;
  /**
   * For a split root: the original photo this split file links to, relative to the data folder the split
   * was made from (what `boat data split --exclude` expects). For a class-folder tree: `path`.
   */
  source: string;
}

export interface PhotoFeatures {
  root: string;
  /** 'classes' for a class-folder tree, 'split' for a split root (subsets pooled). */
  layout: 'classes' | 'split';
  classes: string[];
  photos: Photo[];
  /** [photos.length, dim] row-major, the backbone's pooled features. */
  features: Float32Array;
  dim: number;
  /** Rows computed now (the rest came from the cache). */
  computed: number;
  /** Seconds spent running the backbone. */
  backboneSeconds: number;
  skipped: Skipped[];
}

/** True when `dir` holds at least one of train/, val/, test/ as folders (a split root). */
export function isSplitRoot(dir: string): boolean {
  return SUBSETS.some((s) => isDirectory(path.join(dir, s)));
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Where each file of a split's subset folders came from, read from split.csv and the subsets' markers. */
function splitSources(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const csv = path.join(root, 'split.csv');
  if (!fs.existsSync(csv)) return out;
  let rows: ReturnType<typeof readSplitCsv>;
  try {
    rows = readSplitCsv(csv);
  } catch {
    return out;
  }
  for (const subset of SUBSETS) {
    const data = readOwnedMarker(path.join(root, subset))?.data;
    if (typeof data !== 'string') continue;
    for (const r of rows.filter((row) => row.subset === subset)) {
      const relative = path.relative(data, r.file).split(path.sep).join('/');
      // splitDataset names a file nested below its class folder by its sub-path joined with '__'.
      const name = relative.split('/').slice(1).join('__');
      out.set(path.join(root, subset, r.class, name), relative);
    }
  }
  return out;
}

export interface CollectOptions {
  data: string;
  model: BoatModel;
  cacheDir: string;
  onProgress?: (done: number, total: number) => void;
}

/** Scans the data folder and reads (or computes, once per photo) every photo's backbone features. */
export async function collectPhotoFeatures(options: CollectOptions): Promise<PhotoFeatures> {
  requireDirectory(options.data, 'data folder');
  const root = path.resolve(options.data);
  const layout = isSplitRoot(root) ? 'split' : 'classes';
  const parts: Array<{ dir: string; subset?: Subset }> =
    layout === 'split'
      ? SUBSETS.filter((s) => isDirectory(path.join(root, s))).map((s) => ({ dir: path.join(root, s), subset: s }))
      : [{ dir: root }];
  const { preprocessing, inputSize } = options.model.info;
  const sources = layout === 'split' ? splitSources(root) : new Map<string, string>();
  const sets = [];
  let done = 0;
  for (const part of parts) {
    const set = await extractFeatures(options.model, part.dir, {
      cacheDir: options.cacheDir,
      transform: evalTransforms(preprocessing, inputSize),
      onProgress: (d, total) => options.onProgress?.(done + d, total),
    });
    done += set.computed;
    sets.push({ ...part, set });
  }
  const classes = [...new Set(sets.flatMap((s) => s.set.dataset.classes))].sort(compareStrings);
  const index = new Map(classes.map((c, i) => [c, i]));
  const photos: Photo[] = [];
  const rows: Float32Array[] = [];
  const skipped: Skipped[] = [];
  let dim = 0;
  for (const { subset, set } of sets) {
    dim = set.dim;
    set.files.forEach((file, i) => {
      const relative = path.relative(root, file).split(path.sep).join('/');
      photos.push({
        file,
        path: relative,
        label: index.get(set.dataset.classes[set.labels[i]])!,
        subset,
        source: sources.get(file) ?? relative,
      });
      rows.push(set.features.subarray(i * set.dim, (i + 1) * set.dim));
    });
    skipped.push(...set.dataset.skipped);
  }
  if (photos.length === 0) throw new UserError(`no readable images in ${options.data}`);
  const features = new Float32Array(photos.length * dim);
  rows.forEach((r, i) => features.set(r, i * dim));
  return {
    root,
    layout,
    classes,
    photos,
    features,
    dim,
    computed: sets.reduce((n, s) => n + s.set.computed, 0),
    backboneSeconds: sets.reduce((t, s) => t + s.set.seconds, 0),
    skipped,
  };
}
