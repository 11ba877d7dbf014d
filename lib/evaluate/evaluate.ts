/** Evaluation of a model on an ImageFolder (e.g. data/test). */
import * as tf from '@tensorflow/tfjs';

import { DataLoader, evalTransforms, ImageFolder } from '../images';
import type { Skipped } from '../data/scan';
import { checkClassesMatch } from '../model';
import type { BoatModel } from '../model';
import { computeMetrics, Metrics } from './metrics';

export interface EvaluationResult extends Metrics {
  files: string[];
  actual: number[];
  predicted: number[];
  skipped: Skipped[];
}

export async function evaluateModel(model: BoatModel, root: string, options: { batchSize?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<EvaluationResult> {
  const dataset = new ImageFolder(root, evalTransforms(model.info.preprocessing));
  checkClassesMatch(model.classes, dataset.classes, root);
  const loader = new DataLoader(dataset, { batchSize: options.batchSize ?? 16 });
  const files: string[] = [];
  const actual: number[] = [];
  const predicted: number[] = [];
  for await (const batch of loader.batches(0)) {
    const pred = tf.tidy(() => tf.argMax(model.forward(batch.x as tf.Tensor4D), 1).dataSync());
    actual.push(...(await batch.y.data()));
    predicted.push(...pred);
    files.push(...batch.files);
    tf.dispose([batch.x, batch.y]);
    options.onProgress?.(files.length, dataset.length);
  }
  return { ...computeMetrics(actual, predicted, model.classes), files, actual, predicted, skipped: dataset.skipped };
}
