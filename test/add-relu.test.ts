/**
 * The residual add and its ReLU as one native kernel while training (lib/engine/add-relu.ts): on a small
 * residual block, the same outputs and gradients bit for bit as tfjs' Add and Relu, one kernel instead
 * of two, tfjs' values on ±0, NaN and infinities, layers left alone where the pattern does not hold,
 * and numTensors flat.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../lib/engine/tf';

import {
  createBoatModel,
  nativeKernelsInUse,
  nllLoss,
  selectBackend,
  setAddReluFusion,
  setNativeKernels,
  setSummedGradients,
} from '../lib';
import { timeKernels } from '../lib/bench/profile';
import { ADD_RELU, useFusedAddRelu } from '../lib/engine/add-relu';
import { RELU_GRAD_SUM } from '../lib/engine/relu-gradient';
import { randomArray } from './conv-cases';
import { skipWithoutNativeAddon } from './native-skips';

let nativeOn = false;

before(async () => {
  assert.equal((await selectBackend(undefined, 'fp32')).name, 'wasm');
  nativeOn = nativeKernelsInUse() !== null;
});

/** input → conv → BatchNorm → add(input) → ReLU, and a second add whose output is the model's (not fused). */
function block(): tf.LayersModel {
  const input = tf.input({ shape: [5, 6, 8] });
  const conv = tf.layers
    .conv2d({ filters: 8, kernelSize: 3, padding: 'same', kernelInitializer: 'glorotNormal' })
    .apply(input) as tf.SymbolicTensor;
  const bn = tf.layers.batchNormalization().apply(conv) as tf.SymbolicTensor;
  const sum = tf.layers.add().apply([bn, input]) as tf.SymbolicTensor;
  const relu = tf.layers.activation({ activation: 'relu' }).apply(sum) as tf.SymbolicTensor;
  const out = tf.layers.add().apply([relu, input]) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

/**
 * The loss and the gradients of `variables` with `switchTo(on)` in effect, and the calls of each kernel
 * that ran; `switchTo` returns what it switched from.
 */
function gradientsWith(
  switchTo: (on: boolean) => boolean,
  on: boolean,
  loss: () => tf.Scalar,
  variables: tf.Variable[],
): { values: number[][]; calls: (name: string) => number } {
  const was = switchTo(on);
  const timing = timeKernels(tf.getBackend());
  try {
    const { value, grads } = tf.variableGrads(loss, variables);
    const values = [value, ...Object.values(grads)].map((g) => Array.from(g.dataSync()));
    tf.dispose([value, ...Object.values(grads)]);
    return { values, calls: (name: string) => timing.stats.get(name)?.calls ?? 0 };
  } finally {
    timing.restore();
    switchTo(was);
  }
}

/**
 * The output's weighted sum and `model`'s weight gradients on a random batch (`seed`), with the fused add +
 * ReLU off and on: the same bit for bit, numTensors flat.
 */
function fusedAndPlain(model: tf.LayersModel, seed: number) {
  useFusedAddRelu(model);
  const x = tf.tensor4d(randomArray([3, 5, 6, 8], seed), [3, 5, 6, 8]);
  const probe = tf.tensor4d(randomArray([3, 5, 6, 8], seed + 1), [3, 5, 6, 8]);
  const run = (fused: boolean) =>
    gradientsWith(
      setAddReluFusion,
      fused,
      () => tf.sum<tf.Scalar>(tf.mul(model.apply(x, { training: true }) as tf.Tensor, probe)),
      model.trainableWeights.map((w) => w.read() as tf.Variable),
    );
  const plain = run(false);
  const before = tf.memory().numTensors;
  const fused = run(true);
  assert.equal(tf.memory().numTensors, before, 'numTensors');
  assert.deepEqual(fused.values, plain.values);
  return { plain, fused, x, dispose: () => tf.dispose([x, probe]) };
}

test('a residual add and its ReLU run as one kernel while training: the same outputs and gradients as Add + Relu, bit for bit', async (t) => {
  if (skipWithoutNativeAddon(t, nativeOn)) return;
  const model = block();
  const { plain, fused, x, dispose } = fusedAndPlain(model, 5);
  assert.equal(fused.calls(ADD_RELU), 1);
  assert.equal(plain.calls(ADD_RELU), 0);
  // The fused add's Add and Relu are gone; the model's last add, which no ReLU reads, stays tfjs'.
  assert.deepEqual([fused.calls('Add'), fused.calls('Relu')], [plain.calls('Add') - 1, plain.calls('Relu') - 1]);
  // Without a tape (inference) the layers are tfjs'.
  const timing = timeKernels(tf.getBackend());
  tf.dispose(model.predict(x));
  timing.restore();
  assert.equal(timing.stats.get(ADD_RELU)?.calls ?? 0, 0);
  dispose();
  model.dispose();
});

/** A residual junction as in ResNet50: relu(bn(conv(input)) + input) feeds another convolution and the next add. */
function junction(): tf.LayersModel {
  const input = tf.input({ shape: [5, 6, 8] });
  const conv = (x: tf.SymbolicTensor) =>
    tf.layers
      .conv2d({ filters: 8, kernelSize: 3, padding: 'same', kernelInitializer: 'glorotNormal' })
      .apply(x) as tf.SymbolicTensor;
  const bn = tf.layers.batchNormalization().apply(conv(input)) as tf.SymbolicTensor;
  const sum = tf.layers.add().apply([bn, input]) as tf.SymbolicTensor;
  const y = tf.layers.activation({ activation: 'relu' }).apply(sum) as tf.SymbolicTensor;
  const out = tf.layers.add().apply([conv(y), y]) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

test("a fused add + ReLU whose output two layers read takes their gradients unsummed: the add and ReLU's gradient are one kernel, the gradients the same bit for bit", async (t) => {
  if (skipWithoutNativeAddon(t, nativeOn)) return;
  const model = junction();
  const { plain, fused, dispose } = fusedAndPlain(model, 7);
  assert.equal(fused.calls(RELU_GRAD_SUM), 1, "the junction's gradient");
  assert.equal(plain.calls(RELU_GRAD_SUM), 0);
  // Gone with it: the fused add's forward Add, and the Add that summed the junction's two gradients
  assert.equal(fused.calls('Add'), plain.calls('Add') - 2);
  dispose();
  model.dispose();
});

test("a ResNet50 step sums each block output's two gradients inside ReLU's gradient: 15 kernels instead of 15 Adds, the same loss and gradients bit for bit, numTensors flat", async (t) => {
  if (skipWithoutNativeAddon(t, nativeOn)) return;
  const model = await createBoatModel({ classes: ['a', 'b', 'c'], mode: 'finetune', inputSize: 64 });
  const x = tf.tensor4d(
    randomArray([2, 64, 64, 3], 9).map((v) => v * 100),
    [2, 64, 64, 3],
  );
  const y = tf.tensor1d([0, 2], 'int32');
  const run = (summed: boolean) =>
    gradientsWith(setSummedGradients, summed, () => nllLoss(model.forward(x, true), y), model.trainableVariables());
  try {
    const apart = run(false);
    const before = tf.memory().numTensors;
    const summed = run(true);
    assert.equal(tf.memory().numTensors, before, 'numTensors');
    // Every block output but the last (the pooling alone reads that) feeds the next block twice
    assert.equal(summed.calls(RELU_GRAD_SUM), 15);
    assert.equal(apart.calls(RELU_GRAD_SUM), 0);
    assert.equal(summed.calls('Add'), apart.calls('Add') - 15);
    assert.ok(
      summed.values.every((v, i) => v.every((u, k) => Object.is(u, apart.values[i][k]))),
      'the loss and every gradient the same',
    );
  } finally {
    tf.dispose([x, y]);
    model.dispose();
  }
});

test('the fused add + ReLU gives tfjs Add + Relu values on ±0, NaN and infinities', async (t) => {
  if (skipWithoutNativeAddon(t, nativeOn)) return;
  const special = [0, -0, 1, -1, NaN, Infinity, -Infinity, 3.5, -2.25, 1e-40, -1e-40];
  const a = tf.tensor1d(special.flatMap((p) => special.map(() => p)));
  const b = tf.tensor1d(special.flatMap(() => special));
  const fused = tf.engine().runKernel<tf.Tensor>(ADD_RELU, { a, b }, {});
  const bits = (v: tf.Tensor) => Array.from(new Uint32Array(Float32Array.from(v.dataSync()).buffer));
  const native = bits(fused);
  const wasNative = setNativeKernels(false);
  try {
    const expected = tf.relu(tf.add(a, b));
    assert.deepEqual(native, bits(expected));
    expected.dispose();
  } finally {
    setNativeKernels(wasNative);
  }
  tf.dispose([a, b, fused]);
});
