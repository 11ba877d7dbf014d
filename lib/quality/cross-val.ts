/**
 * Out-of-sample class probabilities: stratified K-fold cross-validation of the tutorial's head on
 * cached backbone features. Every photo's probabilities come from a head that never saw it, which is
 * what confident learning needs (a model scoring its own training labels agrees with them, errors included).
 */
import * as tf from '../engine/tf';

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
    Random.derive(seed, 'folds', label)
      .shuffled(members)
      .forEach((i, k) => (out[i] = (offset + k) % folds));
    offset += members.length;
  }
  return out;
}

/**
 * a·b whose gradient transposes explicitly. The engine's transposed matMul kernels, which autodiff of a
 * plain matMul uses, run far slower on wasm: x^T·g at 64×2048×256 took 378 ms, transpose then matMul 19 ms
 * (measured on the shared 2-core machine; the forward matMul takes 11 ms either way).
 */
const matMulTransposing = tf.customGrad((...inputs: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [a, b, save] = inputs as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
      tf.matMul(dy, tf.transpose(saved[1])),
      tf.matMul(tf.transpose(saved[0]), dy),
    ],
  };
}) as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/**
 * The head of buildHead (Dense → ReLU → Dropout → Dense → log-softmax), computed from its own weights with
 * matMulTransposing, so that training it costs what its arithmetic costs.
 */
class FastHead {
  readonly variables: tf.Variable[];
  readonly rate: number;

  constructor(readonly head: tf.LayersModel) {
    this.variables = ['fc1', 'fc2'].flatMap((name) =>
      head.getLayer(name).trainableWeights.map((w) => w.read() as tf.Variable),
    );
    this.rate = head.layers.find((l): l is StepDropout => l instanceof StepDropout)?.rate ?? 0;
  }

  apply(x: tf.Tensor2D, dropoutSeed?: number): tf.Tensor2D {
    const [k1, b1, k2, b2] = this.variables;
    let h = tf.relu(tf.add(matMulTransposing(x, k1 as tf.Tensor2D), b1)) as tf.Tensor2D;
    if (dropoutSeed !== undefined && this.rate > 0) h = tf.dropout(h, this.rate, undefined, dropoutSeed) as tf.Tensor2D;
    return tf.logSoftmax(tf.add(matMulTransposing(h, k2 as tf.Tensor2D), b2)) as tf.Tensor2D;
  }
}

/** Trains one head per fold on the other folds' features and predicts the held-out fold. */
export async function crossValidatedProbabilities(
  features: Float32Array,
  dim: number,
  labels: Int32Array,
  classes: number,
  options: CrossValOptions = {},
): Promise<CrossValResult> {
  const n = labels.length;
  const folds = options.folds ?? 5;
  const seed = options.seed ?? 0;
  const epochs = options.epochs ?? 10;
  const batchSize = options.batchSize ?? 128;
  if (!Number.isInteger(folds) || folds < 2)
    throw new UserError(`--folds must be an integer of at least 2, got ${folds}`);
  if (folds > n) throw new UserError(`--folds ${folds} is more than the ${n} images`);
  const foldOf = stratifiedFolds(labels, folds, seed);
  const probabilities = new Array<number[]>(n);
  const all = tf.tensor2d(features, [n, dim]);
  const allLabels = tf.tensor1d(labels, 'int32');
  try {
    for (let fold = 0; fold < folds; fold++) {
      options.onFold?.(fold, folds);
      const train = Array.from({ length: n }, (_, i) => i).filter((i) => foldOf[i] !== fold);
      const held = Array.from({ length: n }, (_, i) => i).filter((i) => foldOf[i] === fold);
      const head = buildHead(classes, { features: dim, seed: seed + 101 * fold });
      const fast = new FastHead(head);
      const optimizer = tf.train.adam(options.lr ?? 2e-3);
      try {
        let step = 0;
        for (let epoch = 0; epoch < epochs; epoch++) {
          const order = Random.derive(seed, 'cv-order', fold, epoch).shuffled(train);
          for (let start = 0; start < order.length; start += batchSize) {
            const dropoutSeed = Random.derive(seed, 'cv-dropout', fold, step++).int(0, 2 ** 31 - 1);
            const idx = tf.tensor1d(order.slice(start, start + batchSize), 'int32');
            const cost = optimizer.minimize(
              () => nllLoss(fast.apply(tf.gather<tf.Tensor2D>(all, idx), dropoutSeed), tf.gather(allLabels, idx)),
              false,
              fast.variables,
            );
            tf.dispose(cost ? [idx, cost] : [idx]);
          }
          // Let the event loop breathe between epochs (progress output, Ctrl-C).
          await new Promise((resolve) => setImmediate(resolve));
        }
        const heldProbabilities = tf.tidy(() =>
          tf.exp(fast.apply(tf.gather<tf.Tensor2D>(all, tf.tensor1d(held, 'int32')))),
        );
        const rows = await heldProbabilities.array();
        heldProbabilities.dispose();
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
