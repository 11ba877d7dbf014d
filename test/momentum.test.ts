/**
 * SGD with momentum in one native kernel per variable (lib/engine/momentum.ts) against tfjs' own
 * MomentumOptimizer: the same weights and slots bit for bit, through a change of learning rate and a
 * missing gradient, the slots saved under tfjs' names, numTensors flat, and tfjs' arithmetic wherever
 * the kernel is not registered.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../lib/engine/tf';

import { disposeOptimizer, momentumOptimizer, nativeKernelsInUse, selectBackend, setNativeKernels } from '../lib';
import { timeKernels } from '../lib/bench/profile';
import { MOMENTUM_STEP } from '../lib/engine/momentum';
import { randomArray } from './conv-cases';
import { skipWithoutNativeAddon } from './native-skips';

let nativeOn = false;

before(async () => {
  assert.equal((await selectBackend(undefined, 'fp32')).name, 'wasm');
  nativeOn = nativeKernelsInUse() !== null;
});

const SHAPES = [[3, 3, 4, 5], [70_000], [7]];

test("the fused momentum step gives tfjs' MomentumOptimizer's weights bit for bit, one kernel per variable, numTensors flat", async (t) => {
  if (skipWithoutNativeAddon(t, nativeOn)) return;
  assert.ok(tf.getKernel(MOMENTUM_STEP, 'wasm'), 'the addon registers the step');
  const reference = tf.train.momentum(0.05, 0.9);
  const fused = momentumOptimizer(0.05, 0.9);
  // Once before counting, so that both optimizers' slots exist.
  const expected = await stepped('tfjs', reference);
  const before = tf.memory().numTensors;
  const actual = await stepped('fused', fused);
  assert.equal(actual.calls, 4 * SHAPES.length - 1, 'MOMENTUM_STEP calls');
  assert.equal(expected.calls, 0);
  assert.deepEqual(actual.values, expected.values);
  assert.deepEqual(actual.slots, expected.slots);
  assert.ok(
    actual.values[0].some((v, i) => v !== expected.start[0][i]),
    'the weights moved',
  );
  disposeOptimizer(reference);
  disposeOptimizer(fused);
  tf.dispose(actual.variables.concat(expected.variables));
  assert.ok(tf.memory().numTensors <= before, `numTensors ${before} → ${tf.memory().numTensors}`);
});

test("without the kernel (wasm kernels only) the optimizer is tfjs' own", async () => {
  const wasNative = setNativeKernels(false);
  try {
    assert.equal(tf.getKernel(MOMENTUM_STEP, 'wasm'), undefined);
    const reference = tf.train.momentum(0.05, 0.9);
    const fused = momentumOptimizer(0.05, 0.9);
    const expected = await stepped('tfjs2', reference);
    const actual = await stepped('fused2', fused);
    assert.equal(actual.calls, 0);
    assert.deepEqual(actual.values, expected.values);
    disposeOptimizer(reference);
    disposeOptimizer(fused);
    tf.dispose(actual.variables.concat(expected.variables));
  } finally {
    setNativeKernels(wasNative);
  }
});

interface Stepped {
  values: number[][];
  start: number[][];
  slots: string[];
  calls: number;
  variables: tf.Variable[];
}

/** SHAPES as variables named `prefix`0… stepped 4 times by `optimizer` (see the test names). */
async function stepped(prefix: string, optimizer: tf.MomentumOptimizer): Promise<Stepped> {
  const variables = SHAPES.map((shape, i) =>
    tf.variable(tf.tensor(randomArray(shape, 1 + i), shape), true, `${prefix}${i}`),
  );
  const start = variables.map((v) => Array.from(v.dataSync()));
  const values: number[][] = [];
  const timing = timeKernels(tf.getBackend());
  try {
    for (let step = 0; step < 4; step++) {
      if (step === 2) optimizer.setLearningRate(0.37);
      const grads = variables.map((v, i) => ({
        name: v.name,
        tensor: tf.tensor(randomArray(SHAPES[i], 10 * step + i, 3), SHAPES[i]),
      }));
      // The last variable has no gradient at step 1: it keeps its value and its slot.
      optimizer.applyGradients(step === 1 ? grads.slice(0, 2) : grads);
      tf.dispose(grads.map((g) => g.tensor));
      values.push(...variables.map((v) => Array.from(v.dataSync())));
    }
  } finally {
    timing.restore();
  }
  const weights = await optimizer.getWeights();
  const slots = weights.map((w) => w.name.replace(prefix, 'v'));
  tf.dispose(weights.map((w) => w.tensor));
  return { values, start, slots, calls: timing.stats.get(MOMENTUM_STEP)?.calls ?? 0, variables };
}
