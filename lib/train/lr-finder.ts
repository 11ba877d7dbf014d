/**
 * Learning-rate finder (Smith, 2017; fastai's lr_find): train with a learning rate that grows
 * exponentially from `startLr` to `endLr`, record the smoothed loss at every step, stop once it
 * diverges, and put the weights back as they were. The suggestion is the rate at the smoothed loss's
 * minimum divided by 10, fastai's classic rule: still in the steep descent, well before divergence.
 */
import * as tf from '../engine/tf';
import { momentumOptimizer } from '../engine/momentum';

import { BoatModel, nllLoss } from '../model';
import { disposeOptimizer, forwardAny, type BatchSource } from './train';

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

export async function findLearningRate(
  model: BoatModel,
  source: BatchSource,
  options: LrFinderOptions = {},
): Promise<LrFinderResult> {
  const { startLr = 1e-7, endLr = 10, steps = 100, momentum = 0.9, beta = 0.98, divergeFactor = 4 } = options;
  const variables = model.trainableVariables();
  const saved = variables.map((v) => v.clone());
  const optimizer = momentumOptimizer(startLr, momentum); // the trainer's SGD; its rate changes every step
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
        optimizer.setLearningRate(lr);
        model.setDropoutSeed(points.length);
        const { value, grads } = tf.variableGrads(() => nllLoss(forwardAny(model, x, true), y), variables);
        optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
        const loss = (await value.data())[0];
        tf.dispose([value, x, y, ...Object.values(grads)]);
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
    disposeOptimizer(optimizer);
  }
  const finite = points.filter((p) => Number.isFinite(p.smoothed));
  const minimum = finite.reduce(
    (a, b) => (b.smoothed < a.smoothed ? b : a),
    finite[0] ?? { lr: startLr, loss: NaN, smoothed: NaN },
  );
  return { points, minLossLr: minimum.lr, suggestedLr: minimum.lr / 10, diverged };
}
