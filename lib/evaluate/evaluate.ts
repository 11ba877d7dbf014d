/** Evaluation of a model on an ImageFolder (e.g. data/test), optionally with test-time augmentation. */
import * as path from 'node:path';

import * as tf from '../engine/tf';

import { DataLoader, evalTransforms, ImageFolder, ttaTransforms } from '../images';
import type { Skipped } from '../data/scan';
import { checkClassesMatch } from '../model';
import type { BoatModel } from '../model';
import { computeMetrics, Metrics } from './metrics';

export interface EvaluationResult extends Metrics {
  files: string[];
  actual: number[];
  predicted: number[];
  /** Per image: the probability of each class (averaged over the views with TTA). */
  probabilities: number[][];
  skipped: Skipped[];
  /** Views averaged per image: 1, or 6 with test-time augmentation. */
  views: number;
}

export interface EvaluateOptions {
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
  /** Test-time augmentation: average the centre crop, its mirror image and the four corner crops. */
  tta?: boolean;
}

/**
 * The TTA views of one image [1, H, W, 3] (H, W ≥ size): centre crop, its horizontal mirror, and the
 * four corner crops, as [6, size, size, 3].
 */
export function ttaViews(x: tf.Tensor4D, size = 224): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    const crop = (top: number, left: number): tf.Tensor4D => tf.slice(x, [0, top, left, 0], [1, size, size, 3]);
    const centre = crop(Math.round((h - size) / 2), Math.round((w - size) / 2));
    return tf.concat<tf.Tensor4D>([
      centre,
      tf.reverse(centre, 2),
      crop(0, 0),
      crop(0, w - size),
      crop(h - size, 0),
      crop(h - size, w - size),
    ]);
  });
}

export async function evaluateModel(
  model: BoatModel,
  root: string,
  options: EvaluateOptions = {},
): Promise<EvaluationResult> {
  const { preprocessing: pre, inputSize } = model.info;
  const dataset = new ImageFolder(root, options.tta ? ttaTransforms(pre, inputSize) : evalTransforms(pre, inputSize));
  checkClassesMatch(model.classes, dataset.classes, root);
  // TTA images keep their own aspect ratio, so they cannot share a batch.
  const loader = new DataLoader(dataset, { batchSize: options.tta ? 1 : (options.batchSize ?? 16) });
  const files: string[] = [];
  const actual: number[] = [];
  const probabilities: number[][] = [];
  for await (const batch of loader.batches(0)) {
    const probs = tf.tidy(() => {
      if (!options.tta) return tf.exp(model.forward(batch.x));
      return tf.mean(tf.exp(model.forward(ttaViews(batch.x, inputSize))), 0, true);
    });
    const rows = (await probs.array()) as number[][];
    probabilities.push(...rows);
    actual.push(...(await batch.y.data()));
    files.push(...batch.files);
    tf.dispose([probs, batch.x, batch.y]);
    options.onProgress?.(files.length, dataset.length);
  }
  const predicted = probabilities.map((p) => p.indexOf(Math.max(...p)));
  return {
    ...computeMetrics(actual, predicted, model.classes),
    files,
    actual,
    predicted,
    probabilities,
    skipped: dataset.skipped,
    views: options.tta ? 6 : 1,
  };
}

/** A photo the model got wrong. */
export interface Misclassified {
  /** Relative to the data folder, with forward slashes: the same photo has the same name in every run. */
  file: string;
  actual: string;
  predicted: string;
  /** The probability the model gave its prediction. */
  probability: number;
}

/** The photos an evaluation got wrong, named relative to `root` (for metrics.json, and for boat repeat). */
export function misclassifiedOf(evaluation: EvaluationResult, root: string): Misclassified[] {
  return evaluation.files.flatMap((file, i) => {
    const [actual, predicted] = [evaluation.actual[i], evaluation.predicted[i]];
    if (actual === predicted) return [];
    return [
      {
        file: path.relative(root, file).split(path.sep).join('/'),
        actual: evaluation.classes[actual],
        predicted: evaluation.classes[predicted],
        probability: Number(evaluation.probabilities[i][predicted].toFixed(4)),
      },
    ];
  });
}

/** The summary metrics of an evaluation, without the per-image rows (for metrics.json). */
export function metricsOf(evaluation: EvaluationResult): Metrics & { views: number } {
  const {
    files: _files,
    actual: _actual,
    predicted: _predicted,
    probabilities: _probabilities,
    skipped: _skipped,
    ...metrics
  } = evaluation;
  return metrics;
}
