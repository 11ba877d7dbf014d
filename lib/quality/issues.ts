/**
 * `boat data issues`: label issues by confident learning on out-of-sample probabilities, and
 * near-duplicates by backbone embeddings and perceptual hashes, for a class-folder tree or a split root.
 */
import * as path from 'node:path';

import { readSplitCsv, Skipped, Subset } from '../data';
import { createBoatModel } from '../model';
import { selectBackend } from '../engine';
import { now, OWNED_MARKER, requireDirectory, secondsSince, UserError } from '../util';
import { findLabelIssues } from './confident-learning';
import { crossValidatedProbabilities } from './cross-val';
import {
  DuplicateMethod,
  EMBEDDING_THRESHOLD,
  embeddingPairs,
  groupPairs,
  mergeGroups,
  PHASH_MAX_DISTANCE,
  phashPairs,
} from './duplicates';
import { perceptualHashes } from './phash';
import { collectPhotoFeatures, Photo } from './photos';

export interface DataIssuesOptions {
  /** A class-folder tree, or a split root (train/, val/, test/). */
  data: string;
  folds?: number;
  seed?: number;
  /** The feature cache shared with `boat train` (default .cache/features). */
  cacheDir?: string;
  /** For a class-folder tree: a split.csv whose subsets are reported (and leakage found). */
  split?: string;
  embeddingThreshold?: number;
  phashMaxDistance?: number;
  /** Head epochs per fold. */
  epochs?: number;
  inputSize?: number;
  log?: (line: string) => void;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface LabelIssue {
  path: string;
  given: string;
  suggested: string;
  score: number;
  rank: number;
  subset: Subset | null;
}

export interface NearDuplicate {
  paths: string[];
  classes: string[];
  subsets: Array<Subset | null>;
  similarity: number;
  method: DuplicateMethod;
  /** Members sit in more than one of train/val/test. */
  leakage: boolean;
}

/** The JSON of `boat data issues --json`; the first keys are the stable ones. */
export interface DataIssuesReport {
  label_issues: LabelIssue[];
  near_duplicates: NearDuplicate[];
  folds: number;
  images: number;
  seconds: number;
  root: string;
  layout: 'classes' | 'split';
  classes: string[];
  /** Share of photos whose out-of-sample prediction is their given class. */
  cross_validated_accuracy: number;
  thresholds: { per_class: Record<string, number>; embedding_cosine: number; phash_max_bits: number };
  timing: {
    backbone_seconds: number;
    features_computed: number;
    cross_validation_seconds: number;
    phash_seconds: number;
    total_seconds: number;
  };
  skipped: Skipped[];
  notes: string[];
}

export interface DataIssuesResult {
  report: DataIssuesReport;
  photos: Photo[];
  /** Out-of-sample probabilities, one row per photo. */
  probabilities: number[][];
}

export async function findDataIssues(options: DataIssuesOptions): Promise<DataIssuesResult> {
  const started = now();
  const log = options.log ?? (() => undefined);
  requireDirectory(options.data, 'data folder');
  const folds = options.folds ?? 5;
  const seed = options.seed ?? 0;
  const embeddingThreshold = options.embeddingThreshold ?? EMBEDDING_THRESHOLD;
  const phashMax = options.phashMaxDistance ?? PHASH_MAX_DISTANCE;
  if (!Number.isInteger(folds) || folds < 2)
    throw new UserError(`--folds must be an integer of at least 2, got ${folds}`);
  const backend = await selectBackend();
  log(backend.line);
  // Only the backbone runs here; the head's classes do not matter.
  const model = await createBoatModel({ classes: ['any'], mode: 'feature-extractor', inputSize: options.inputSize });
  let collected;
  try {
    collected = await collectPhotoFeatures({
      data: options.data,
      model,
      cacheDir: options.cacheDir ?? path.resolve('.cache', 'features'),
      onProgress: (done, total) => options.onProgress?.('features', done, total),
    });
  } finally {
    model.dispose();
  }
  const { photos, classes } = collected;
  if (options.split && collected.layout === 'classes') {
    const subsetOf = new Map(readSplitCsv(options.split).map((r) => [path.resolve(r.file), r.subset]));
    for (const p of photos) p.subset = subsetOf.get(p.file);
  }
  log(
    `features: ${photos.length} images, ${collected.computed} computed in ${collected.backboneSeconds.toFixed(1)} s, ${photos.length - collected.computed} from the cache`,
  );

  const labels = Int32Array.from(photos.map((p) => p.label));
  const cvStarted = now();
  const notes: string[] = [];
  // One class leaves nothing to confuse it with: near-duplicates only.
  const cv =
    classes.length > 1
      ? await crossValidatedProbabilities(collected.features, collected.dim, labels, classes.length, {
          folds,
          seed,
          epochs: options.epochs,
          onFold: (fold, total) => options.onProgress?.('cross-validation', fold, total),
        })
      : { probabilities: photos.map(() => [1]), accuracy: 1 };
  const cvSeconds = secondsSince(cvStarted);
  if (classes.length > 1)
    log(
      `cross-validation: ${folds} folds in ${cvSeconds.toFixed(1)} s, out-of-sample accuracy ${cv.accuracy.toFixed(4)}`,
    );
  else
    notes.push(
      `one class (${classes[0]}): label issues need at least two classes, so only near-duplicates were looked for`,
    );
  const issues = classes.length > 1 ? findLabelIssues(cv.probabilities, labels, classes.length) : [];

  const hashStarted = now();
  const hashed = await perceptualHashes(photos.map((p) => p.file));
  const phashSeconds = secondsSince(hashStarted);
  const groups = mergeGroups(
    groupPairs(await embeddingPairs(collected.features, collected.dim, embeddingThreshold), 'embedding'),
    groupPairs(phashPairs(hashed.hashes, phashMax), 'phash'),
  );
  const perClass: Record<string, number> = {};
  classes.forEach((c, j) => {
    const own = photos.map((p, i) => (p.label === j ? cv.probabilities[i][j] : NaN)).filter((v) => !Number.isNaN(v));
    perClass[c] = own.length > 0 ? own.reduce((a, b) => a + b, 0) / own.length : NaN;
  });
  const report: DataIssuesReport = {
    label_issues: issues.map((i) => ({
      path: photos[i.index].path,
      given: classes[i.given],
      suggested: classes[i.suggested],
      score: round(i.score),
      rank: i.rank,
      subset: photos[i.index].subset ?? null,
    })),
    near_duplicates: groups.map((g) => {
      const subsets = g.members.map((m) => photos[m].subset ?? null);
      return {
        paths: g.members.map((m) => photos[m].path),
        classes: g.members.map((m) => classes[photos[m].label]),
        subsets,
        similarity: round(g.similarity),
        method: g.method,
        leakage: new Set(subsets.filter((s) => s !== null)).size > 1,
      };
    }),
    folds,
    images: photos.length,
    seconds: round(secondsSince(started), 1),
    root: collected.root,
    layout: collected.layout,
    classes,
    cross_validated_accuracy: round(cv.accuracy),
    thresholds: {
      per_class: Object.fromEntries(Object.entries(perClass).map(([c, t]) => [c, round(t)])),
      embedding_cosine: embeddingThreshold,
      phash_max_bits: phashMax,
    },
    timing: {
      backbone_seconds: round(collected.backboneSeconds, 1),
      features_computed: collected.computed,
      cross_validation_seconds: round(cvSeconds, 1),
      phash_seconds: round(phashSeconds, 1),
      total_seconds: round(secondsSince(started), 1),
    },
    // The subsets' ownership markers are the split's own files, not data the scan missed.
    skipped: [...collected.skipped.filter((s) => path.basename(s.path) !== OWNED_MARKER), ...hashed.skipped],
    notes,
  };
  return { report, photos, probabilities: cv.probabilities };
}

function round(v: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** The report as text: label issues, near-duplicate groups (leakage marked), skips, timing. */
export function formatDataIssues(report: DataIssuesReport, limit = 30): string {
  const lines: string[] = [];
  const where = report.layout === 'split' ? 'a split: train/val/test pooled, subsets shown' : 'a class-folder tree';
  lines.push(`Data issues in ${report.root} (${report.images} images, ${report.classes.length} classes, ${where})`);
  lines.push(
    `Out-of-sample probabilities: ${report.folds}-fold stratified cross-validation of the head on cached features (accuracy ${report.cross_validated_accuracy.toFixed(4)})`,
  );
  lines.push(`Label issues (confident learning, ranked by self-confidence): ${report.label_issues.length}`);
  const at = (subset: Subset | null): string => (subset ? ` [${subset}]` : '');
  for (const i of report.label_issues.slice(0, limit))
    lines.push(
      `  ${String(i.rank).padStart(4)}  ${i.score.toFixed(4)}  ${i.given} -> ${i.suggested}  ${i.path}${at(i.subset)}`,
    );
  if (report.label_issues.length > limit)
    lines.push(`  ... and ${report.label_issues.length - limit} more (--json or --out for all)`);
  const { embedding_cosine: cos, phash_max_bits: bits } = report.thresholds;
  lines.push(
    `Near-duplicate groups (embedding cosine >= ${cos}, perceptual hash within ${bits} of 64 bits): ${report.near_duplicates.length}`,
  );
  for (const g of report.near_duplicates.slice(0, limit)) {
    const members = g.paths
      .map((p, k) => `${p} (${g.classes[k]}${g.subsets[k] ? `, ${g.subsets[k]}` : ''})`)
      .join(' ~ ');
    lines.push(`  [${g.method} ${g.similarity.toFixed(3)}]${g.leakage ? ' LEAKAGE' : ''} ${members}`);
  }
  if (report.near_duplicates.length > limit) lines.push(`  ... and ${report.near_duplicates.length - limit} more`);
  const leaks = report.near_duplicates.filter((g) => g.leakage).length;
  if (report.near_duplicates.some((g) => g.subsets.some((s) => s !== null)))
    lines.push(`Leakage (near-duplicates across train/val/test): ${leaks} group(s)`);
  for (const note of report.notes) lines.push(`Note: ${note}`);
  if (report.skipped.length > 0) {
    lines.push(`Skipped ${report.skipped.length} entr${report.skipped.length === 1 ? 'y' : 'ies'}:`);
    for (const s of report.skipped.slice(0, 20)) lines.push(`  ${s.path}: ${s.reason}`);
    if (report.skipped.length > 20) lines.push(`  ... and ${report.skipped.length - 20} more`);
  }
  const t = report.timing;
  lines.push(
    `Took ${report.seconds.toFixed(1)} s (backbone ${t.backbone_seconds.toFixed(1)} s for ${t.features_computed} uncached photos, cross-validation ${t.cross_validation_seconds.toFixed(1)} s, perceptual hashes ${t.phash_seconds.toFixed(1)} s)`,
  );
  return lines.join('\n');
}
