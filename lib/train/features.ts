/**
 * Cached backbone features for feature-extractor training. The frozen backbone runs once per image
 * (or once per augmented view when `views` > 0) and never again: every cached vector is keyed by the
 * image's content hash, the transform, the view, the input size, and the backbone: the pretrained
 * weights' checksum, or a hash of the backbone's own weights when it is not the pretrained one, and the
 * precision (bf16 features differ from fp32's in the third digit).
 * Re-runs and extra epochs cost only the head.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../engine/tf';

import {
  DataLoader,
  evalTransforms,
  ImageFolder,
  isRandom,
  jpegDecoderName,
  Transform,
  specOf,
  trainTransforms,
} from '../images';
import type { BoatModel } from '../model';
import { activePrecision } from '../engine/precision';
import { now, secondsSince, sha256File, sha256Hex, writeFileAtomic } from '../util';

export interface FeatureSet {
  /** [n, dim] row-major. */
  features: Float32Array;
  labels: Int32Array;
  files: string[];
  dim: number;
  /** How many rows were computed now (the rest came from the cache). */
  computed: number;
  /** Images that could not be decoded (listed in the dataset's `skipped`). */
  unreadable: number;
  /** Seconds spent running the backbone. */
  seconds: number;
}

export interface ExtractOptions {
  cacheDir: string;
  /** The transform applied before the backbone (eval transforms, or train transforms for augmented views). */
  transform: Transform;
  /** View index: each view of an augmenting transform is a different random draw. */
  view?: number;
  seed?: number;
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

export async function extractFeatures(
  model: BoatModel,
  root: string,
  options: ExtractOptions,
): Promise<FeatureSet & { dataset: ImageFolder }> {
  const dataset = new ImageFolder(root, options.transform);
  const view = options.view ?? 0;
  const seed = options.seed ?? 0;
  // The decoder is part of the key: the JPEG addon and sharp give pixels a level or so apart.
  const transformKey = JSON.stringify([specOf(options.transform) ?? options.transform.name, jpegDecoderName()]);
  const dim = model.backbone.outputs[0].shape[1] as number;
  // The seed (and view) only matter when the transform draws random numbers; eval features are shared by every seed.
  const random = isRandom(options.transform);
  // The pretrained backbone is keyed by its checksum; any other (a fine-tune's) by a hash of its own weights.
  const [backboneId, backboneKind] = model.backboneKey().split('|');
  // fp32 keeps the key it had before precisions existed, so caches made then stay valid.
  // Folding BatchNorm into the convolutions (model.features) is not in the key: its features differ from
  // the unfolded network's by float rounding (about 1e-6 relative), the same size as the differences
  // between backends and kernel sets (oneDNN, XNNPACK, webgpu), which the key leaves out too; keying it
  // would throw away every cache for no change a classifier could see.
  const precision = activePrecision();
  const precisionKey = precision === 'fp32' ? [] : [precision];
  const keys = await Promise.all(
    dataset.samples.map(async (s) => {
      const content = await sha256File(s.file);
      return sha256Hex(
        [
          content,
          transformKey,
          random ? view : 0,
          random ? seed : 'any-seed',
          backboneId,
          model.info.inputSize,
          backboneKind,
          ...precisionKey,
        ].join('|'),
      );
    }),
  );
  const cacheFile = (key: string): string => path.join(options.cacheDir, key.slice(0, 2), `${key}.f32`);
  const features = new Float32Array(dataset.length * dim);
  const missing: number[] = [];
  keys.forEach((key, i) => {
    try {
      const buf = fs.readFileSync(cacheFile(key));
      if (buf.length !== dim * 4) throw new Error('size');
      features.set(new Float32Array(buf.buffer, buf.byteOffset, dim), i * dim);
    } catch {
      missing.push(i);
    }
  });
  const started = now();
  if (missing.length > 0) {
    // Decode only the missing images; each keeps the randomness of its own index, whatever was cached.
    const loader = new DataLoader(dataset, {
      batchSize: options.batchSize ?? 16,
      seed: viewSeed(seed, view),
      indices: missing,
    });
    let done = 0;
    for await (const batch of loader.batches(0)) {
      const out = model.features(batch.x);
      const rows = (await out.data()) as Float32Array;
      tf.dispose([out, batch.x, batch.y]);
      batch.indices.forEach((i, j) => {
        const row = rows.slice(j * dim, (j + 1) * dim);
        features.set(row, i * dim);
        writeFileAtomic(cacheFile(keys[i]), new Uint8Array(row.buffer));
      });
      done += batch.indices.length;
      options.onProgress?.(done, missing.length);
    }
  }
  const seconds = secondsSince(started);
  // Files that failed to decode have no features: leave them out.
  const bad = new Set(dataset.skipped.map((s) => s.path));
  const computed = missing.filter((i) => !bad.has(dataset.samples[i].file)).length;
  const keep = dataset.samples.map((s, i) => (bad.has(s.file) ? -1 : i)).filter((i) => i >= 0);
  const kept = new Float32Array(keep.length * dim);
  keep.forEach((i, k) => kept.set(features.subarray(i * dim, (i + 1) * dim), k * dim));
  return {
    dataset,
    features: kept,
    labels: Int32Array.from(keep.map((i) => dataset.samples[i].label)),
    files: keep.map((i) => dataset.samples[i].file),
    dim,
    computed,
    unreadable: missing.length - computed,
    seconds,
  };
}

/** The loader seed for view `view`: distinct views draw distinct augmentations. */
function viewSeed(seed: number, view: number): number {
  return (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(view + 1, 0x85ebca6b)) >>> 0;
}

/**
 * The feature extraction of one run: each call extracts (or reads from the cache) one folder, logs what
 * it did, and adds to the run's totals. The feature extractor and the two-stage recipe's first stage
 * share it.
 */
export class FeatureRun {
  readonly datasets: ImageFolder[] = [];
  /** Seconds spent extracting, over every folder. */
  seconds = 0;
  /** Seconds one epoch would take if the backbone ran on every training photo again (from computed photos). */
  recomputePerEpoch = 0;

  constructor(
    private readonly model: BoatModel,
    private readonly options: {
      cacheDir: string;
      seed: number;
      log: (line: string) => void;
      onProgress: (done: number, total: number) => void;
    },
  ) {}

  async extract(dir: string, label: string, augment: boolean, view: number): Promise<FeatureSet> {
    const { preprocessing, inputSize } = this.model.info;
    const set = await extractFeatures(this.model, dir, {
      cacheDir: this.options.cacheDir,
      transform: augment ? trainTransforms(preprocessing, inputSize) : evalTransforms(preprocessing, inputSize),
      view,
      seed: this.options.seed,
      onProgress: this.options.onProgress,
    });
    const unreadable = set.unreadable > 0 ? ` (${set.unreadable} unreadable, skipped)` : '';
    this.options.log(
      `features ${label}: ${set.labels.length} images${unreadable}, ${set.computed} computed in ${set.seconds.toFixed(1)} s, ${set.labels.length - set.computed} from the cache`,
    );
    this.seconds += set.seconds;
    this.datasets.push(set.dataset);
    if (set.computed > 0) this.recomputePerEpoch += (set.seconds / set.computed) * set.labels.length;
    return set;
  }
}
