/**
 * The tutorial's feature-extractor experiment (24 epochs) on a small stratified subset of the bench
 * images, timed two ways:
 * - with cached features: the backbone runs once per image, then 24 epochs train only the head;
 * - recomputing the backbone every epoch, as the tutorial does: measured over a few epochs and
 *   extrapolated to 24 (the bench output says so).
 * Both count compute only (backbone + head); model loading, test evaluation and saving are left out of both.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { scanImageFolder, splitDataset } from '../data';
import { DataLoader, evalTransforms, ImageFolder } from '../images';
import { BoatModel, createBoatModel } from '../model';
import { BatchSource, ProgressSink, runExperiment, TrainBatch, trainModel } from '../train';
import { linkOrCopy } from '../util';

export interface FeatureExtractorBench {
  /** Images in the subset's train + val (what every epoch of the tutorial's way runs the backbone on). */
  images: number;
  epochs: number;
  cachedSeconds: number;
  recomputeSeconds: number;
  /** Epochs actually run the tutorial's way; recomputeSeconds is extrapolated from them. */
  recomputeEpochsMeasured: number;
}

const SILENT: ProgressSink = { batch: () => undefined, phase: () => undefined };

/** Batches of backbone features computed from images on every pass: the tutorial's frozen-backbone run. */
class RecomputedFeatures implements BatchSource {
  constructor(
    readonly loader: DataLoader,
    readonly model: BoatModel,
  ) {}

  get size(): number {
    return this.loader.dataset.length;
  }

  async *batches(epoch: number): AsyncGenerator<TrainBatch> {
    for await (const { x, y } of this.loader.batches(epoch)) {
      const features = this.model.features(x);
      x.dispose();
      yield { x: features, y };
    }
  }
}

export async function benchFeatureExtractor(
  data: string,
  perClass: number,
  recomputeEpochs: number,
  epochs = 24,
): Promise<FeatureExtractorBench> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'boat-bench-fe-'));
  try {
    // A stratified subset: the first `perClass` files of the 5 largest classes, split 60/20/20.
    const scanned = scanImageFolder(data);
    const byClass = new Map<string, string[]>();
    for (const f of scanned.files) byClass.set(f.label, [...(byClass.get(f.label) ?? []), f.file]);
    const top = [...byClass.entries()].sort((a, b) => b[1].length - a[1].length).slice(0, 5);
    for (const [label, files] of top) {
      fs.mkdirSync(path.join(work, 'subset', label), { recursive: true });
      files
        .slice(0, perClass)
        .forEach((file, i) => linkOrCopy(file, path.join(work, 'subset', label, `${i}${path.extname(file)}`)));
    }
    const split = path.join(work, 'split');
    await splitDataset({ data: path.join(work, 'subset'), out: split, seed: 38 });

    const cached = await runExperiment({
      mode: 'feature-extractor',
      data: split,
      out: path.join(work, 'model'),
      epochs,
      cacheDir: path.join(work, 'cache'),
      progress: SILENT,
      log: () => undefined,
    });
    cached.model.dispose();
    const cachedSeconds = cached.timing.extractSeconds + cached.timing.trainSeconds;

    const model = await createBoatModel({ classes: cached.model.classes, mode: 'feature-extractor' });
    const source = (subset: string, shuffle: boolean): RecomputedFeatures =>
      new RecomputedFeatures(
        new DataLoader(
          new ImageFolder(path.join(split, subset), evalTransforms(model.info.preprocessing, model.info.inputSize)),
          { batchSize: 32, shuffle, seed: 38 },
        ),
        model,
      );
    const train = source('train', true);
    const val = source('val', false);
    const recompute = await trainModel(model, { train, val }, { epochs: recomputeEpochs });
    model.dispose();
    return {
      images: train.size + val.size,
      epochs,
      cachedSeconds,
      recomputeSeconds: (recompute.seconds / recomputeEpochs) * epochs,
      recomputeEpochsMeasured: recomputeEpochs,
    };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
