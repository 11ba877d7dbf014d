/**
 * Out-of-sample class probabilities: stratified K-fold cross-validation of the tutorial's head on
 * cached backbone features. Every photo's probabilities come from a head that never saw it, which is
 * what confident learning needs (a model scoring its own training labels agrees with them, errors included).
 */
import * as tf from '@tensorflow/tfjs';

import { buildHead, nllLoss, StepDropout } from '../model';
import { disposeOptimizer } from '../train/train';
import { Random, UserError } from '../util';

export interface CrossValOptions {
  folds?: number;
  seed?: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  onFold?: (fold: number, folds: number) => void;
}

export interface CrossValResult {
  /** [n][classes] out-of-sample probabilities. */
  probabilities: number[][];
  /** The fold each sample was held out in. */
  foldOf: Int32Array;
  folds: number;
  /** Share of samples whose out-of-sample prediction is their given label. */
  accuracy: number;
}

/**
 * Stratified folds: each class's samples, shuffled with a generator derived from (seed, class), are dealt
 * round-robin, starting at a class-dependent fold so that small classes do not all pile into fold 0.
 */
export function stratifiedFolds(labels: ArrayLike<number>, folds: number, seed = 0): Int32Array {
  const out = new Int32Array(labels.length);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) byClass.set(labels[i], [...(byClass.get(labels[i]) ?? []), i]);
  let offset = 0;
  for (const [label, members] of [...byClass.entries()].sort(([a], [b]) => a - b)) {
    Random.derive(seed, 'folds', label).shuffled(members).forEach((i, k) => (out[i] = (offset + k) % folds));
    offset += members.length;
  }
  return out;
}

/** Trains one head per fold on the other folds' features and predicts the held-out fold. */
export async function crossValidatedProbabilities(features: Float32Array, dim: number, labels: Int32Array, classes: number, options: CrossValOptions = {}): Promise<CrossValResult> {
  const n = labels.length;
  const folds = options.folds ?? 5;
  const seed = options.seed ?? 0;
  const epochs = options.epochs ?? 15;
  const batchSize = options.batchSize ?? 64;
  if (!Number.isInteger(folds) || folds < 2) throw new UserError(`--folds must be an integer of at least 2, got ${folds}`);
  if (folds > n) throw new UserError(`--folds ${folds} is more than the ${n} images`);
  const foldOf = stratifiedFolds(labels, folds, seed);
  const probabilities: number[][] = new Array(n);
  const all = tf.tensor2d(features, [n, dim]);
  const allLabels = tf.tensor1d(labels, 'int32');
  try {
    for (let fold = 0; fold < folds; fold++) {
      options.onFold?.(fold, folds);
      const train = Array.from({ length: n }, (_, i) => i).filter((i) => foldOf[i] !== fold);
      const held = Array.from({ length: n }, (_, i) => i).filter((i) => foldOf[i] === fold);
      const head = buildHead(classes, { features: dim, seed: seed + 101 * fold });
      const optimizer = tf.train.adam(options.lr ?? 1e-3);
      try {
        let step = 0;
        for (let epoch = 0; epoch < epochs; epoch++) {
          const order = Random.derive(seed, 'cv-order', fold, epoch).shuffled(train);
          for (let start = 0; start < order.length; start += batchSize) {
            for (const layer of head.layers) if (layer instanceof StepDropout) layer.stepSeed = Random.derive(seed, 'cv-dropout', fold, step).int(0, 2 ** 31 - 1);
            step++;
            const idx = tf.tensor1d(order.slice(start, start + batchSize), 'int32');
            const cost = optimizer.minimize(() => nllLoss(head.apply(tf.gather(all, idx), { training: true }) as tf.Tensor2D, tf.gather(allLabels, idx)), false);
            tf.dispose(cost ? [idx, cost] : [idx]);
          }
          // Let the event loop breathe between epochs (progress output, Ctrl-C).
          await new Promise((resolve) => setImmediate(resolve));
        }
        const rows = tf.tidy(() => tf.exp(head.apply(tf.gather(all, tf.tensor1d(held, 'int32')), { training: false }) as tf.Tensor2D).arraySync() as number[][]);
        held.forEach((i, k) => (probabilities[i] = rows[k]));
      } finally {
        disposeOptimizer(optimizer);
        head.dispose();
      }
    }
  } finally {
    tf.dispose([all, allLabels]);
  }
  let correct = 0;
  probabilities.forEach((p, i) => (correct += argmax(p) === labels[i] ? 1 : 0));
  return { probabilities, foldOf, folds, accuracy: correct / n };
}

export function argmax(values: readonly number[]): number {
  let best = 0;
  for (let j = 1; j < values.length; j++) if (values[j] > values[best]) best = j;
  return best;
}
