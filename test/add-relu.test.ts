/**
 * The residual add and its ReLU as one native kernel while training (lib/engine/add-relu.ts): on a small
 * residual block, the same outputs and gradients bit for bit as tfjs' Add and Relu, one kernel instead
 * of two, tfjs' values on ±0, NaN and infinities, layers left alone where the pattern does not hold,
 * and numTensors flat.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../lib/engine/tf';

import { nativeKernelsInUse, selectBackend, setAddReluFusion, setNativeKernels } from '../lib';
import { timeKernels } from '../lib/bench/profile';
import { ADD_RELU, useFusedAddRelu } from '../lib/engine/add-relu';
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

test('a residual add and its ReLU run as one kernel while training: the same outputs and gradients as Add + Relu, bit for bit', async (t) => {
  if (skipWithoutNativeAddon(t, nativeOn)) return;
  const model = block();
  useFusedAddRelu(model);
  const x = tf.tensor4d(randomArray([3, 5, 6, 8], 5), [3, 5, 6, 8]);
  const probe = tf.tensor4d(randomArray([3, 5, 6, 8], 6), [3, 5, 6, 8]);
  const run = (fused: boolean) => {
    const was = setAddReluFusion(fused);
    const timing = timeKernels(tf.getBackend());
    try {
      const { value, grads } = tf.variableGrads(
        () => tf.sum<tf.Scalar>(tf.mul(model.apply(x, { training: true }) as tf.Tensor, probe)),
        model.trainableWeights.map((w) => w.read() as tf.Variable),
      );
      const values = [value, ...Object.values(grads)].map((g) => Array.from(g.dataSync()));
      tf.dispose([value, ...Object.values(grads)]);
      return { values, calls: (name: string) => timing.stats.get(name)?.calls ?? 0 };
    } finally {
      timing.restore();
      setAddReluFusion(was);
    }
  };
  const plain = run(false);
  const before = tf.memory().numTensors;
  const fused = run(true);
  assert.equal(tf.memory().numTensors, before, 'numTensors');
  assert.deepEqual(fused.values, plain.values);
  assert.equal(fused.calls(ADD_RELU), 1);
  assert.equal(plain.calls(ADD_RELU), 0);
  // The fused add's Add and Relu are gone; the model's last add, which no ReLU reads, stays tfjs'.
  assert.deepEqual([fused.calls('Add'), fused.calls('Relu')], [plain.calls('Add') - 1, plain.calls('Relu') - 1]);
  // Without a tape (inference) the layers are tfjs'.
  const timing = timeKernels(tf.getBackend());
  tf.dispose(model.predict(x));
  timing.restore();
  assert.equal(timing.stats.get(ADD_RELU)?.calls ?? 0, 0);
  tf.dispose([x, probe]);
  model.dispose();
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
