/**
 * Convolution layers that compute an input gradient only when something reads it
 * (lib/engine/conv-layer-gradients.ts): the weights' gradients are those of tfjs' own fused convolution to
 * the bit, on both kernel sets; the first convolution's input gradient is not computed (one Conv2DBackpropInput
 * fewer per step), nor that of a convolution whose input comes from frozen layers; an input gradient
 * asked for is still computed, and equal; no tensor is kept.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../lib/engine/tf';

import { selectBackend } from '../lib';
import { timeKernels } from '../lib/bench/profile';
import { fineTuneStepper } from '../lib/bench/model';
import { useLazyConvGradients } from '../lib/engine/conv-layer-gradients';
import { withEachKernelSet } from './native-skips';
import { tinyModel } from './tiny-model';

before(async () => {
  const backend = await selectBackend(undefined, 'fp32');
  assert.equal(backend.name, 'wasm');
});

/**
 * A stem on RGB (5×5, stride 2, bias: fewer than 16 input channels, as ResNet50's), BatchNorm, ReLU, a 3×3
 * convolution with bias, ReLU, a strided 1×1 one without bias, pooling and a dense layer. The same seeds
 * give two networks the same weights.
 */
function network(lazy: boolean): tf.LayersModel {
  const input = tf.input({ shape: [12, 12, 3] });
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  let x = tf.layers
    .conv2d({ filters: 8, kernelSize: 5, strides: 2, padding: 'same', kernelInitializer: init(1), name: 'stem' })
    .apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'stem_bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU().apply(x) as tf.SymbolicTensor;
  x = tf.layers
    .conv2d({ filters: 16, kernelSize: 3, padding: 'same', kernelInitializer: init(2), biasInitializer: init(3) })
    .apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU().apply(x) as tf.SymbolicTensor;
  x = tf.layers
    .conv2d({ filters: 8, kernelSize: 1, strides: 2, useBias: false, kernelInitializer: init(4) })
    .apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dense({ units: 3, kernelInitializer: init(5) }).apply(x) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: x });
  if (lazy) useLazyConvGradients(model);
  return model;
}

const image = (): tf.Tensor4D => tf.randomNormal([2, 12, 12, 3], 0, 1, 'float32', 7);

/** The gradients of a squared-output loss with respect to `wrt`, and the calls of each kernel that ran. */
function gradients(
  model: tf.LayersModel,
  x: tf.Tensor4D,
  wrt: (model: tf.LayersModel, x: tf.Tensor4D) => tf.Tensor[],
): { grads: Float32Array[]; calls: (kernel: string) => number } {
  const timing = timeKernels(tf.getBackend());
  try {
    const { grads, value } = tf
      .engine()
      .gradients(
        () => tf.sum(tf.square(model.apply(x, { training: true }) as tf.Tensor)),
        wrt(model, x),
        undefined,
        true,
      );
    const values = grads.map((g) => g.dataSync() as Float32Array);
    tf.dispose([value, ...grads]);
    return { grads: values, calls: (kernel) => timing.stats.get(kernel)?.calls ?? 0 };
  } finally {
    timing.restore();
  }
}

const weights = (model: tf.LayersModel): tf.Tensor[] => model.trainableWeights.map((w) => w.read());

/** The same ops on the same inputs: the gradients are equal to the bit, and none is all zeros. */
function assertSameGradients(expected: Float32Array[], actual: Float32Array[], label: string): void {
  assert.equal(actual.length, expected.length, label);
  expected.forEach((g, i) => {
    assert.ok(
      g.some((v) => v !== 0),
      `${label}: gradient ${i} is not all zeros`,
    );
    assert.deepEqual(actual[i], g, `${label}: gradient ${i}`);
  });
}

test("the weights' gradients are tfjs' own, and the stem's input gradient is not computed", async () => {
  const [eager, lazy] = [network(false), network(true)];
  const x = image();
  try {
    await withEachKernelSet((label) => {
      const tensors = tf.memory().numTensors;
      const before = gradients(eager, x, weights);
      const after = gradients(lazy, x, weights);
      assert.equal(tf.memory().numTensors, tensors, `${label}: no tensor kept`);
      assert.equal(after.grads.length, 9, `${label}: 3 kernels, 2 biases, γ and β, the dense kernel and bias`);
      assertSameGradients(before.grads, after.grads, label);
      // Three convolutions: tfjs' fused gradient runs three input gradients, the lazy one two.
      assert.equal(before.calls('Conv2DBackpropInput'), 3, label);
      assert.equal(after.calls('Conv2DBackpropInput'), 2, label);
      for (const kernel of ['Conv2DBackpropFilter', 'FusedConv2D'])
        assert.equal(after.calls(kernel), before.calls(kernel), `${label}: ${kernel}`);
      assert.equal(after.calls('Conv2DBackpropFilter'), 3, label);
    });
  } finally {
    x.dispose();
    eager.dispose();
    lazy.dispose();
  }
});

test('an input gradient that is asked for is computed, the same as before', async () => {
  const [eager, lazy] = [network(false), network(true)];
  const x = image();
  try {
    await withEachKernelSet((label) => {
      const wrtImage = (_: tf.LayersModel, input: tf.Tensor4D) => [input];
      const before = gradients(eager, x, wrtImage);
      const after = gradients(lazy, x, wrtImage);
      assertSameGradients(before.grads, after.grads, label);
      assert.equal(after.calls('Conv2DBackpropInput'), 3, `${label}: every convolution's input gradient`);
      assert.equal(after.calls('Conv2DBackpropFilter'), 0, `${label}: no filter gradient is asked for`);
      assert.equal(before.calls('Conv2DBackpropFilter'), 3, `${label}: tfjs' fused gradient computes them anyway`);
    });
  } finally {
    x.dispose();
    eager.dispose();
    lazy.dispose();
  }
});

test('a convolution whose input comes from frozen layers computes no input gradient', async () => {
  const [eager, lazy] = [network(false), network(true)];
  for (const model of [eager, lazy]) for (const name of ['stem', 'stem_bn']) model.getLayer(name).trainable = false;
  const x = image();
  try {
    await withEachKernelSet((label) => {
      const before = gradients(eager, x, weights);
      const after = gradients(lazy, x, weights);
      assert.equal(after.grads.length, 5, label);
      assertSameGradients(before.grads, after.grads, label);
      // The frozen stem is not differentiated at all; the next convolution's input needs no gradient.
      assert.equal(before.calls('Conv2DBackpropInput'), 2, label);
      assert.equal(after.calls('Conv2DBackpropInput'), 1, label);
    });
  } finally {
    x.dispose();
    eager.dispose();
    lazy.dispose();
  }
});

test('a BoatModel fine-tune step: one input gradient fewer than convolutions, numTensors flat', async () => {
  const model = tinyModel({ convs: 3 });
  const stepper = fineTuneStepper(model, 2, 8);
  try {
    stepper.step(); // the optimizer's slots are made here
    const tensors = tf.memory().numTensors;
    const timing = timeKernels(tf.getBackend());
    try {
      for (let i = 0; i < 3; i++) stepper.step();
    } finally {
      timing.restore();
    }
    assert.equal(tf.memory().numTensors, tensors, 'no tensor kept by the steps');
    assert.equal(timing.stats.get('Conv2DBackpropFilter')?.calls, 9, 'three filter gradients per step');
    assert.equal(timing.stats.get('Conv2DBackpropInput')?.calls, 6, 'two input gradients per step');
  } finally {
    stepper.dispose();
    model.dispose();
  }
});

test('inference, where nothing is taped, runs as before', () => {
  const [eager, lazy] = [network(false), network(true)];
  const x = image();
  try {
    const tensors = tf.memory().numTensors;
    const a = eager.predict(x) as tf.Tensor;
    const b = lazy.predict(x) as tf.Tensor;
    assert.deepEqual(Array.from(b.dataSync()), Array.from(a.dataSync()));
    tf.dispose([a, b]);
    assert.equal(tf.memory().numTensors, tensors);
  } finally {
    x.dispose();
    eager.dispose();
    lazy.dispose();
  }
});
