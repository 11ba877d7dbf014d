/**
 * The wasm training engine: convolution gradient kernels against the cpu backend, a finite-difference
 * check, the fused BatchNorm backward, the lean backward pass, zero-copy Identity both ways, stage freezing
 * and threads. Shapes are small so the file runs in seconds.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../lib/engine/tf';

import {
  batchNormFrozen,
  batchNormTraining,
  createBoatModel,
  nllLoss,
  resnetStage,
  selectBackend,
  setNativeKernels,
  wasmThreadsWanted,
} from '../lib';
import { gpuDevicePresent, startWebgpu } from '../lib/engine/webgpu';
import { timeKernels } from '../lib/bench/profile';
import { MOVING_STATS, movingStats } from '../lib/engine/moving-stats';
import { convCases, type Pad } from './conv-cases';
import { withEachKernelSet } from './native-skips';
import { REPO_ROOT, runCli, tempDir } from './helpers';

before(async () => {
  const backend = await selectBackend();
  assert.equal(backend.name, 'wasm');
});

function randomArray(shape: number[], seed: number): number[] {
  let s = seed * 9973 + 7;
  return Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff - 0.5;
  });
}

/** Gradients of sum(conv2d(x, w)²) with respect to x and w, on the named backend. */
async function convGrads(
  backend: string,
  x: number[],
  xShape: number[],
  w: number[],
  wShape: number[],
  stride: number,
  pad: Pad,
): Promise<[Float32Array, Float32Array]> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const f = (X: tf.Tensor, W: tf.Tensor): tf.Tensor =>
      tf
        .conv2d(X as tf.Tensor4D, W as tf.Tensor4D, stride, pad)
        .square()
        .sum();
    const [gx, gw] = tf.grads(f)([tf.tensor(x, xShape), tf.tensor(w, wShape)]);
    return [gx.dataSync() as Float32Array, gw.dataSync() as Float32Array] as [Float32Array, Float32Array];
  });
}

function maxRelativeError(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  let err = 0;
  for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(a[i]));
  for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
  return err / scale;
}

test('wasm has Conv2DBackpropFilter and Conv2DBackpropInput, and they match the cpu backend (without the native kernels)', async () => {
  assert.ok(tf.getKernel('Conv2DBackpropFilter', 'wasm'));
  const wasNative = setNativeKernels(false); // this file tests conv-gradients.ts; native-kernels.test.ts the addon
  try {
    await compareConvGradients();
  } finally {
    setNativeKernels(wasNative);
  }
});

async function compareConvGradients(): Promise<void> {
  const cases = convCases();
  let worst = 0;
  for (const c of cases) {
    const x = randomArray(c.xShape, c.index);
    const w = randomArray(c.wShape, c.index + 100);
    const [cx, cw] = await convGrads('cpu', x, c.xShape, w, c.wShape, c.s, c.pad);
    const before = tf.memory().numTensors;
    const [wx, ww] = await convGrads('wasm', x, c.xShape, w, c.wShape, c.s, c.pad);
    assert.equal(tf.memory().numTensors, before, `tensors leaked for ${c.where}`);
    const err = Math.max(maxRelativeError(cx, wx), maxRelativeError(cw, ww));
    assert.ok(err < 1e-5, `${c.where}: relative error ${err}`);
    worst = Math.max(worst, err);
  }
  await tf.setBackend('wasm');
  assert.ok(worst > 0, 'the two backends computed independently');
}

/**
 * The gradients of `candidate` with respect to each input equal those of `reference` (relative error
 * < 1e-4), and computing them leaves only the gradients behind.
 */
function assertSameGradients(
  label: string,
  reference: (...a: tf.Tensor[]) => tf.Tensor,
  candidate: (...a: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
): void {
  type Grads = (xs: tf.Tensor[]) => tf.Tensor[];
  const expected = (tf.grads(reference) as Grads)(inputs);
  const before = tf.memory().numTensors;
  const actual = (tf.grads(candidate) as Grads)(inputs);
  assert.equal(tf.memory().numTensors, before + inputs.length, `${label}: only the gradients are left`);
  for (let i = 0; i < inputs.length; i++) {
    const err = maxRelativeError(expected[i].dataSync() as Float32Array, actual[i].dataSync() as Float32Array);
    assert.ok(err < 1e-4, `${label}: input ${i}: relative error ${err}`);
  }
  tf.dispose([...expected, ...actual]);
}

test('gradients of a small conv + BatchNorm + tanh net agree with finite differences on wasm', () =>
  withEachKernelSet(async (label) => {
    await tf.setBackend('wasm');
    const x = tf.tensor4d(randomArray([2, 6, 6, 3], 1), [2, 6, 6, 3]);
    const w1 = tf.variable(tf.tensor4d(randomArray([3, 3, 3, 4], 2), [3, 3, 3, 4]));
    const w2 = tf.variable(tf.tensor4d(randomArray([1, 1, 4, 2], 3), [1, 1, 4, 2]));
    const gamma = tf.variable(tf.tensor1d([1.2, 0.8, 1, 0.5]));
    const beta = tf.variable(tf.tensor1d([0.1, -0.2, 0, 0.3]));
    const loss = (): tf.Scalar =>
      tf.tidy(() => {
        const h = tf.conv2d(x, w1, 2, 'same');
        const { y, mean, variance } = batchNormTraining(h, gamma, beta, 1e-3);
        tf.dispose([mean, variance]);
        return tf
          .conv2d(tf.tanh(y as tf.Tensor4D), w2, 1, 'valid')
          .sin()
          .sum<tf.Scalar>(); // smooth: finite differences and ReLU kinks do not mix
      });
    const { grads } = tf.variableGrads(loss, [w1, w2, gamma, beta]);
    const eps = 1e-2;
    for (const v of [w1, w2, gamma, beta] as tf.Variable[]) {
      const analytic = grads[v.name].dataSync();
      const values = v.dataSync().slice();
      for (const i of [0, Math.floor(values.length / 2), values.length - 1]) {
        const at = (delta: number): number => {
          const shifted = values.slice();
          shifted[i] += delta;
          v.assign(tf.tensor(shifted, v.shape));
          return loss().arraySync();
        };
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        v.assign(tf.tensor(values, v.shape));
        // Relative: these gradients run from 0.066 to 6.9. Measured: a relative error of at most 4.5e-4 (float32
        // central differences, eps 1e-2), on both kernel sets; the 1e-5 floor is for a gradient near zero.
        const error = Math.abs(numeric - analytic[i]);
        assert.ok(
          error <= 2e-3 * Math.abs(numeric) + 1e-5,
          `${label}: ${v.name}[${i}]: analytic ${analytic[i]}, numeric ${numeric}, relative error ${error / Math.abs(numeric)}`,
        );
      }
    }
    tf.dispose([x, w1, w2, gamma, beta, ...Object.values(grads)]);
  }));

test('the fused BatchNorm backward equals the gradient of the composed ops (moments + batchNorm)', () =>
  withEachKernelSet((label) => {
    const x = tf.tensor4d(randomArray([3, 4, 5, 6], 5), [3, 4, 5, 6]);
    const gamma = tf.tensor1d(randomArray([6], 6).map((v) => v + 1));
    const beta = tf.tensor1d(randomArray([6], 7));
    const probe = tf.tensor4d(randomArray([3, 4, 5, 6], 8), [3, 4, 5, 6]); // makes every output matter differently
    const composed = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor => {
      const { mean, variance } = tf.moments(a, [0, 1, 2]);
      return tf
        .batchNorm(a, mean, variance, b as tf.Tensor1D, g as tf.Tensor1D, 1e-3)
        .mul(probe)
        .sum();
    };
    const fused = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor => {
      const { y, mean, variance } = batchNormTraining(a, g as tf.Tensor1D, b as tf.Tensor1D, 1e-3);
      tf.dispose([mean, variance]);
      return y.mul(probe).sum();
    };
    assertSameGradients(label, composed, fused, [x, gamma, beta]);
    tf.dispose([x, gamma, beta, probe]);
  }));

test("the frozen BatchNorm backward equals tfjs' gradient of batchNorm with constant statistics", () =>
  withEachKernelSet((label) => {
    const x = tf.tensor4d(
      randomArray([3, 4, 5, 6], 15).map((v) => v * 3 + 2),
      [3, 4, 5, 6],
    );
    const gamma = tf.tensor1d(randomArray([6], 16).map((v) => v + 1));
    const beta = tf.tensor1d(randomArray([6], 17));
    const mean = tf.tensor1d(randomArray([6], 18).map((v) => v + 2));
    const variance = tf.tensor1d(randomArray([6], 19).map((v) => v + 4));
    const probe = tf.tensor4d(randomArray([3, 4, 5, 6], 20), [3, 4, 5, 6]);
    const composed = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor =>
      tf
        .batchNorm(a, mean, variance, b as tf.Tensor1D, g as tf.Tensor1D, 1e-3)
        .mul(probe)
        .sum();
    const frozen = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor =>
      batchNormFrozen(a, g as tf.Tensor1D, b as tf.Tensor1D, mean, variance, 1e-3)
        .mul(probe)
        .sum();
    assert.ok(
      Math.abs((composed(x, gamma, beta).arraySync() as number) - (frozen(x, gamma, beta).arraySync() as number)) <
        1e-4,
      `${label}: forward`,
    );
    assertSameGradients(label, composed, frozen, [x, gamma, beta]);
    tf.dispose([x, gamma, beta, mean, variance, probe]);
  }));

test('clone shares the buffer on wasm (no copy per saved tensor) and stays valid after the original is disposed', () => {
  const a = tf.tensor1d([1, 2, 3]);
  const before = tf.memory().numBytes;
  const b = a.clone();
  assert.equal(b.dataId, a.dataId);
  a.dispose();
  assert.deepEqual(Array.from(b.dataSync()), [1, 2, 3]);
  b.dispose();
  assert.ok(tf.memory().numBytes <= before);
});

test("the backward pass hands an Identity's gradient on rather than copying it: the same gradients, no Cast, numTensors flat", () => {
  const x = tf.variable(tf.tensor1d([1, -2, 3]));
  // Three clones, one ending at y and one beside another path into x: the gradient is 4 everywhere. The
  // ops are ones whose own gradients cast nothing (Square's and Multiply's do), so any Cast is a clone's.
  const f = () => tf.sum<tf.Scalar>(tf.clone(tf.clone(x.add(x)).add(x).add(tf.clone(x))));
  const gradient = () => {
    const { value, grads } = tf.variableGrads(f, [x]);
    const g = Array.from(grads[x.name].dataSync());
    tf.dispose([value, grads[x.name]]);
    return g;
  };
  const casts = (): number => {
    const timing = timeKernels(tf.getBackend());
    try {
      assert.deepEqual(gradient(), [4, 4, 4]);
    } finally {
      timing.restore();
    }
    return timing.stats.get('Cast')?.calls ?? 0;
  };
  gradient();
  const before = tf.memory().numTensors;
  assert.equal(casts(), 0, 'Cast ran in the backward pass');
  assert.equal(tf.memory().numTensors, before);
  x.dispose();
});

test('a ResNet50 fine-tune step on wasm: loss falls, numTensors is flat across steps, and --unfreeze trains only the last stages', async () => {
  assert.equal(resnetStage('conv1/kernel'), 1);
  assert.equal(resnetStage('bn_conv1/gamma'), 1);
  assert.equal(resnetStage('res4b_branch2a/kernel'), 4);
  assert.equal(resnetStage('bn5c_branch2c/beta'), 5);
  assert.equal(resnetStage('conv5_block3_3_bn/gamma'), 5);
  assert.equal(resnetStage('avg_pool'), null);

  const model = await createBoatModel({ classes: ['a', 'b'], mode: 'finetune', inputSize: 64 });
  const all = model.paramCounts().trainable;
  model.unfrozenStages = 1;
  const lastStage = model.paramCounts().trainable;
  assert.ok(lastStage < all && lastStage > 525_829 - 1, `last stage + head ${lastStage} of ${all}`);
  assert.ok(model.trainableVariables().every((v) => resnetStage(v.name) === 5 || resnetStage(v.name) === null));
  const frozen = model.backbone.getLayer('res4f_branch2c').getWeights()[0].dataSync().slice(0, 16);

  const x = tf.randomNormal<tf.Rank.R4>([2, 64, 64, 3], 0, 50, 'float32', 3);
  const y = tf.tensor1d([0, 1], 'int32');
  const opt = tf.train.momentum(0.01, 0.9);
  const losses: number[] = [];
  const counts: number[] = [];
  for (let i = 0; i < 4; i++) {
    const loss = opt.minimize(() => nllLoss(model.forward(x, true), y), true, model.trainableVariables())!;
    losses.push(loss.dataSync()[0]);
    loss.dispose();
    counts.push(tf.memory().numTensors);
  }
  assert.ok(losses[3] < losses[0], `loss ${losses.join(' → ')}`);
  assert.deepEqual(
    counts.slice(1),
    [counts[1], counts[1], counts[1]],
    `numTensors after each step: ${counts.join(', ')}`,
  );
  assert.deepEqual(
    Array.from(model.backbone.getLayer('res4f_branch2c').getWeights()[0].dataSync().slice(0, 16)),
    Array.from(frozen),
    'a frozen stage kept its weights',
  );
  tf.dispose([x, y]);
  opt.dispose();
  model.dispose();
});

test('threads: BOAT_THREADS is validated with a one-line error, and the wasm backend reports its thread count', async () => {
  assert.equal(wasmThreadsWanted('3'), 3);
  assert.throws(() => wasmThreadsWanted('0'), /BOAT_THREADS must be a whole number from 1 to 8, got "0"/);
  const backend = await selectBackend();
  const n = wasmThreadsWanted();
  const native =
    backend.native && 'description' in backend.native ? `; native kernels: ${backend.native.description}` : '';
  assert.equal(backend.line, `Using wasm backend (SIMD, ${n} thread${n === 1 ? '' : 's'}${native})`);
});

test('webgpu: without a GPU it is skipped for wasm, and forcing it is a one-line error that says what is missing', async (t) => {
  const dir = tempDir();
  const node = path.join(dir, 'renderD128');
  assert.equal(gpuDevicePresent([node]), false);
  fs.writeFileSync(node, '');
  assert.equal(gpuDevicePresent([node]), true);
  if (gpuDevicePresent()) {
    t.skip(
      'a GPU device node is present, so the no-GPU path cannot be checked here (scripts/gpu-check.sh covers GPU machines)',
    );
    return;
  }
  assert.deepEqual(await startWebgpu({ forced: false }), { reason: 'no GPU device node' });
  // Forced: a fresh process, since a backend is chosen once per process.
  const r = runCli(['bench', '--quick'], REPO_ROOT, { BOAT_BACKEND: 'webgpu' });
  assert.equal(r.status, 2);
  const errorLines = r.stderr.split('\n').filter((line) => line.startsWith('boat: error:'));
  assert.equal(errorLines.length, 1, r.stderr);
  assert.match(
    errorLines[0],
    /^boat: error: backend "webgpu" is not available on this machine: (no Vulkan loader|no WebGPU adapter|the optional npm package "webgpu")/,
  );
  assert.doesNotMatch(r.stderr, /\n\s+at .*\.js:\d+/, 'no JavaScript stack trace (Dawn may log its own C++ locations)');
});

test("the moving-statistics kernel equals Keras' composed update bit for bit, and a train step runs it once per BatchNorm instead of the composed ops", async () => {
  assert.ok(tf.getKernel(MOVING_STATS, 'wasm'), 'registered for wasm');
  for (const [channels, momentum, scale] of [
    [5, 0.99, 1],
    [2048, 0.9, 300],
    [64, 0.1, 1e-3],
  ]) {
    const stat = (seed: number) => tf.tensor1d(randomArray([channels], seed).map((v) => v * scale));
    const [movingMean, movingVariance, mean, variance] = [1, 2, 3, 4].map(stat);
    const before = tf.memory().numTensors;
    const fused = movingStats(movingMean, movingVariance, mean, variance, momentum);
    assert.equal(tf.memory().numTensors, before + 2, 'two new tensors, nothing else');
    const composed = [
      [movingMean, mean],
      [movingVariance, variance],
    ].map(([old, batch]) => tf.sub(old, tf.mul(tf.sub(old, batch), 1 - momentum)));
    for (let i = 0; i < 2; i++) {
      const [a, b] = [fused[i], composed[i]].map((t) => Array.from(t.dataSync()));
      assert.deepEqual(a, b, `statistic ${i}, ${channels} channels, momentum ${momentum}`);
      assert.ok(
        a.some((v, k) => v !== movingMean.dataSync()[k]),
        'the statistic moved',
      );
    }
    tf.dispose([movingMean, movingVariance, mean, variance, ...fused, ...composed]);
  }

  const model = await createBoatModel({ classes: ['a', 'b'], mode: 'finetune', inputSize: 32 });
  const layers = model.backbone.layers.filter((l) => l.getClassName() === 'BatchNormalization').length;
  const x = tf.tensor4d(randomArray([1, 32, 32, 3], 5), [1, 32, 32, 3]);
  const y = tf.tensor1d([1], 'int32');
  const opt = tf.train.sgd(0.01);
  const step = () =>
    tf.dispose(opt.minimize(() => nllLoss(model.forward(x, true), y), true, model.trainableVariables()) ?? undefined);
  step();
  const timing = timeKernels(tf.getBackend());
  try {
    step();
  } finally {
    timing.restore();
  }
  assert.equal(timing.stats.get(MOVING_STATS)?.calls, layers, 'one call per BatchNorm layer');
  // What is left of Sub is the loss's and SGD's (one per variable), none per BatchNorm statistic.
  assert.ok((timing.stats.get('Sub')?.calls ?? 0) <= model.trainableVariables().length + 2, 'no composed update');
  tf.dispose([x, y]);
  opt.dispose();
  model.dispose();
});

test("batchNormFrozen: fine-tuning keeps BatchNorm's moving statistics (gamma and beta still train); unfrozen, they move", () => {
  return (async () => {
    const model = await createBoatModel({ classes: ['a', 'b'], mode: 'finetune', inputSize: 64 });
    const bn = model.backbone.getLayer('bn2a_branch2a');
    const [gamma, , movingMean] = bn.getWeights();
    const x = tf.tensor4d(
      randomArray([2, 64, 64, 3], 21).map((v) => v * 200),
      [2, 64, 64, 3],
    );
    const y = tf.tensor1d([0, 1], 'int32');
    const step = (): void => {
      const opt = tf.train.sgd(0.1);
      tf.dispose(opt.minimize(() => nllLoss(model.forward(x, true), y), true, model.trainableVariables()) ?? undefined);
      opt.dispose();
    };
    const values = (i: number): Float32Array => bn.getWeights()[i].dataSync() as Float32Array;
    const before = { gamma: gamma.dataSync().slice(), mean: movingMean.dataSync().slice() };
    model.batchNormFrozen = true;
    step();
    assert.deepEqual(Array.from(values(2)), Array.from(before.mean), 'moving mean kept');
    assert.notDeepEqual(Array.from(values(0)), Array.from(before.gamma), 'gamma trained');
    model.batchNormFrozen = false;
    step();
    assert.notDeepEqual(Array.from(values(2)), Array.from(before.mean), 'moving mean updated from batch statistics');
    tf.dispose([x, y]);
    model.dispose();
  })();
});
