/**
 * ReLU's gradient as one native kernel (lib/engine/relu-gradient.ts, BoatReluGrad in native/boat_native.cc):
 * the same values as tfjs' mul(dy, cast(step(x))) to the bit (zeros of dy's sign, NaN and infinities
 * included), one kernel instead of Step, Cast and Multiply, tfjs' own gradient without the native kernels,
 * a fine-tune step's weight gradients unchanged, and no tensor kept.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../lib/engine/tf';

import { batchNormReluFused, nativeKernelsInUse, nllLoss, selectBackend, setNativeKernels } from '../lib';
import { timeKernels } from '../lib/bench/profile';
import { RELU_GRAD, RELU_GRAD_SUM, reluGradientOfSum } from '../lib/engine/relu-gradient';
import { skipWithoutNativeAddon } from './native-skips';
import { tinyModel } from './tiny-model';

let nativeOn = false;

before(async () => {
  const backend = await selectBackend(undefined, 'fp32');
  assert.equal(backend.name, 'wasm');
  nativeOn = nativeKernelsInUse() !== null;
});

const SHAPE = [2, 9, 7, 5]; // 630 values: no multiple of a vector width

/** x and dy with every case ReLU's gradient distinguishes: signs, zeros of both signs, NaN, infinities. */
function inputs(): { x: tf.Tensor4D; dy: tf.Tensor4D } {
  const special = [0, -0, NaN, Infinity, -Infinity, 1e-30, -1e-30];
  const size = SHAPE.reduce((a, b) => a * b, 1);
  const x = tf.tidy(() => {
    const values = tf.randomNormal([size], 0, 1, 'float32', 3).arraySync() as number[];
    special.forEach((v, i) => (values[i * 17] = v));
    return tf.tensor4d(values, SHAPE as [number, number, number, number]);
  });
  const dy = tf.tidy(() => {
    const values = tf.randomNormal([size], 0, 1, 'float32', 4).arraySync() as number[];
    // Against each special x a negative dy (a zero gradient must be -0), and infinities and NaN elsewhere.
    special.forEach((_, i) => (values[i * 17] = -1.5));
    [Infinity, -Infinity, NaN].forEach((v, i) => (values[i * 17 + 3] = v));
    return tf.tensor4d(values, SHAPE as [number, number, number, number]);
  });
  return { x, dy };
}

/** Each value as a string that tells -0 from 0 (and NaN equals NaN). */
const exact = (t: tf.Tensor): string[] => Array.from(t.dataSync(), (v) => (Object.is(v, -0) ? '-0' : String(v)));

/** ReLU's gradient through tf.grad, its values, and the calls of each kernel that ran. */
function reluGradient(x: tf.Tensor, dy: tf.Tensor): { values: string[]; calls: (kernel: string) => number } {
  const timing = timeKernels(tf.getBackend());
  try {
    const dx = tf.grad((a: tf.Tensor) => tf.relu(a))(x, dy);
    const values = exact(dx);
    dx.dispose();
    return { values, calls: (kernel) => timing.stats.get(kernel)?.calls ?? 0 };
  } finally {
    timing.restore();
  }
}

test("with the native kernels, ReLU's gradient is one kernel with tfjs' values to the bit", (t) => {
  if (skipWithoutNativeAddon(t, nativeOn)) return;
  assert.ok(tf.getKernel(RELU_GRAD, 'wasm'), `${RELU_GRAD} registered (an older addon lacks it: npm run build:native)`);
  const { x, dy } = inputs();
  try {
    const expected = tf.tidy(() => exact(tf.mul(dy, tf.cast(tf.step(x), 'float32'))));
    assert.ok(expected.includes('-0') && expected.includes('NaN') && expected.includes('Infinity'));
    const tensors = tf.memory().numTensors;
    const got = reluGradient(x, dy);
    assert.equal(tf.memory().numTensors, tensors, 'no tensor kept');
    assert.deepEqual(got.values, expected);
    assert.equal(got.calls(RELU_GRAD), 1);
    for (const kernel of ['Step', 'Cast', 'Multiply']) assert.equal(got.calls(kernel), 0, kernel);
  } finally {
    tf.dispose([x, dy]);
  }
});

test("a gradient summed from two parts and ReLU's gradient are one kernel with the add's and the gradient's values to the bit, with tfjs' formula without the native kernels", (t) => {
  if (skipWithoutNativeAddon(t, nativeOn)) return;
  assert.ok(tf.getKernel(RELU_GRAD_SUM, 'wasm'), `${RELU_GRAD_SUM} registered (an older addon lacks it)`);
  const { x, dy } = inputs();
  // A second part with its own specials: one that cancels dy, infinities of the other sign, NaN
  const dy2 = tf.tidy(() => {
    const values = tf.randomNormal([dy.size], 0, 1, 'float32', 5).arraySync() as number[];
    const first = dy.dataSync();
    [0, 17, 34].forEach((i) => (values[i] = -first[i]));
    [-Infinity, Infinity].forEach((v, i) => (values[i * 17 + 3] = v));
    values[5] = NaN;
    return tf.tensor4d(values, SHAPE as [number, number, number, number]);
  });
  try {
    const expected = tf.tidy(() => exact(tf.mul(tf.add(dy, dy2), tf.cast(tf.step(x), 'float32'))));
    assert.ok(expected.includes('NaN'));
    const tensors = tf.memory().numTensors;
    const timing = timeKernels(tf.getBackend());
    let got: string[];
    try {
      got = tf.tidy(() => exact(reluGradientOfSum([dy, dy2], x)));
    } finally {
      timing.restore();
    }
    assert.equal(tf.memory().numTensors, tensors, 'no tensor kept');
    assert.deepEqual(got, expected);
    assert.equal(timing.stats.get(RELU_GRAD_SUM)?.calls, 1);
    assert.equal(timing.stats.get('Add')?.calls ?? 0, 0, 'no Add');
    const was = setNativeKernels(false);
    try {
      assert.deepEqual(
        tf.tidy(() => exact(reluGradientOfSum([dy, dy2], x))),
        expected,
        'without the native kernels',
      );
    } finally {
      setNativeKernels(was);
    }
  } finally {
    tf.dispose([x, dy, dy2]);
  }
});

test("without the native kernels, tfjs' own gradient: the same values", () => {
  const { x, dy } = inputs();
  const wasNative = setNativeKernels(false);
  try {
    assert.equal(tf.getKernel(RELU_GRAD, 'wasm'), undefined, 'not registered while the native kernels are off');
    const expected = tf.tidy(() => exact(tf.mul(dy, tf.cast(tf.step(x), 'float32'))));
    const tensors = tf.memory().numTensors;
    const got = reluGradient(x, dy);
    assert.equal(tf.memory().numTensors, tensors, 'no tensor kept');
    assert.deepEqual(got.values, expected);
    assert.equal(got.calls('Step'), 1);
    assert.equal(got.calls(RELU_GRAD), 0);
  } finally {
    setNativeKernels(wasNative);
    tf.dispose([x, dy]);
  }
});

test("a fine-tune step's weight gradients are the same with the native ReLU gradient, numTensors flat", (t) => {
  if (skipWithoutNativeAddon(t, nativeOn)) return;
  const config = tf.getKernel(RELU_GRAD, 'wasm');
  assert.ok(config, `${RELU_GRAD} registered`);
  const model = tinyModel({ convs: 2 });
  const x = tf.randomNormal<tf.Rank.R4>([4, 8, 8, 3], 0, 50, 'float32', 5);
  const y = tf.tensor1d([0, 1, 2, 0], 'int32');
  const step = () => {
    const timing = timeKernels(tf.getBackend());
    try {
      const { value, grads } = tf.variableGrads(() => nllLoss(model.forward(x, true), y), model.trainableVariables());
      const values = Object.keys(grads)
        .sort()
        .map((name) => exact(grads[name]));
      tf.dispose([value, ...Object.values(grads)]);
      return { values, calls: (kernel: string) => timing.stats.get(kernel)?.calls ?? 0 };
    } finally {
      timing.restore();
    }
  };
  try {
    const tensors = tf.memory().numTensors;
    const native = step();
    assert.equal(tf.memory().numTensors, tensors, 'no tensor kept');
    tf.unregisterKernel(RELU_GRAD, 'wasm');
    let composed;
    try {
      composed = step();
    } finally {
      tf.registerKernel(config);
    }
    assert.ok(native.values.length >= 8, `${native.values.length} gradients`);
    assert.deepEqual(native.values, composed.values);
    // The head's ReLU, and the backbone's unless it runs in its BatchNorm's kernel: each gradient one
    // kernel, and no Step.
    const relus = batchNormReluFused() ? 1 : 2;
    assert.equal(native.calls('Relu'), relus);
    assert.equal(native.calls(RELU_GRAD), relus);
    assert.equal(native.calls('Step'), 0);
    assert.equal(composed.calls('Step'), relus);
  } finally {
    tf.dispose([x, y]);
    model.dispose();
  }
});
