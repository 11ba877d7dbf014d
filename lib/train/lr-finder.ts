/**
 * Learning-rate finder (Smith, 2017; fastai's lr_find): train with a learning rate that grows
 * exponentially from `startLr` to `endLr`, record the smoothed loss at every step, stop once it
 * diverges, and put the weights back as they were. The suggestion is the rate at the smoothed loss's
 * minimum divided by 10, fastai's classic rule: still in the steep descent, well before divergence.
 */
import * as tf from '@tensorflow/tfjs';

import { BoatModel, nllLoss } from '../model';
import type { BatchSource } from './train';

export interface LrFinderOptions {
  startLr?: number;
  endLr?: number;
  steps?: number;
  momentum?: number;
  /** Exponential smoothing of the loss (fastai: 0.98). */
  beta?: number;
  /** Stop when the smoothed loss exceeds this many times its minimum. */
  divergeFactor?: number;
}

export interface LrPoint {
  lr: number;
  loss: number;
  smoothed: number;
}

export interface LrFinderResult {
  points: LrPoint[];
  /** The rate at the smoothed loss's minimum, and the suggestion (that / 10). */
  minLossLr: number;
  suggestedLr: number;
  /** True when the sweep stopped early because the loss diverged. */
  diverged: boolean;
}

export async function findLearningRate(model: BoatModel, source: BatchSource, options: LrFinderOptions = {}): Promise<LrFinderResult> {
  const { startLr = 1e-7, endLr = 10, steps = 100, momentum = 0.9, beta = 0.98, divergeFactor = 4 } = options;
  const variables = model.trainableVariables();
  const saved = variables.map((v) => v.clone());
  // SGD with momentum written out (PyTorch's form: v = m·v + g; w -= lr·v), the same update as
  // tf.train.momentum, whose dispose leaks its rate scalar (see disposeOptimizer in train.ts).
  let velocity: tf.Tensor[] = variables.map((v) => tf.zerosLike(v));
  const points: LrPoint[] = [];
  let average = 0;
  let best = Infinity;
  let diverged = false;
  try {
    for (let epoch = 0; points.length < steps && !diverged; epoch++) {
      for await (const { x, y } of source.batches(epoch)) {
        if (points.length >= steps || diverged) {
          tf.dispose([x, y]);
          continue;
        }
        const lr = startLr * (endLr / startLr) ** (points.length / Math.max(1, steps - 1));
        model.setDropoutSeed(points.length);
        const { value, grads } = tf.variableGrads(() => nllLoss(x.rank === 2 ? model.forwardHead(x as tf.Tensor2D, true) : model.forward(x as tf.Tensor4D, true), y), variables);
        const next = tf.tidy(() =>
          variables.map((v, i) => {
            const nv = tf.add(tf.mul(velocity[i], momentum), grads[v.name]);
            v.assign(tf.sub(v, tf.mul(nv, lr)));
            return nv;
          }),
        );
        tf.dispose(velocity);
        velocity = next;
        const loss = (await value.data())[0];
        tf.dispose([value, x, y]);
        tf.dispose(Object.values(grads));
        average = beta * average + (1 - beta) * loss;
        const smoothed = average / (1 - beta ** (points.length + 1));
        points.push({ lr, loss, smoothed });
        if (!Number.isFinite(smoothed) || smoothed > divergeFactor * best) diverged = true;
        else best = Math.min(best, smoothed);
      }
    }
  } finally {
    variables.forEach((v, i) => v.assign(saved[i]));
    tf.dispose(saved);
    tf.dispose(velocity);
  }
  const finite = points.filter((p) => Number.isFinite(p.smoothed));
  const minimum = finite.reduce((a, b) => (b.smoothed < a.smoothed ? b : a), finite[0] ?? { lr: startLr, loss: NaN, smoothed: NaN });
  return { points, minLossLr: minimum.lr, suggestedLr: minimum.lr / 10, diverged };
}
