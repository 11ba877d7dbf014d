/**
 * bf16 precision (native/boat_native.cc's bf16 primitives, lib/engine/precision.ts) against fp32 on the
 * same native kernels: convolutions and both gradients on the native-kernel tests' 36 geometries, the
 * matrix product, a small network's loss curve over 20 training steps, and what records the precision
 * (metadata.json, the feature cache). Then the refusals: bf16 where the CPU has none is a one-line error.
 *
 * Tolerance: bf16 keeps 8 bits of mantissa (a relative rounding of 2^-9 ≈ 0.002 per input), and oneDNN
 * accumulates in fp32, so an output differs from fp32's by about 1e-2 of the output's scale at most:
 * max |bf16 − fp32| / max |fp32| < 1e-2. It must also be above 1e-5, or bf16 was not computed at all.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import * as tf from '../lib/engine/tf';

import {
  createBoatModel,
  DEFAULT_PRECISION,
  evalTransforms,
  extractFeatures,
  makeDemoDataset,
  nativeBf16Support,
  nativeGradientInputs,
  nativeGradientLayout,
  nativeKernelsInUse,
  readModelMetadata,
  requestedPrecision,
  requestPrecision,
  saveBoatModel,
  selectBackend,
  UserError,
} from '../lib';
import { convCases, convOutputs, CONV_OUTPUTS, maxRelativeError, randomArray } from './conv-cases';
import { runCli, tempDir } from './helpers';
import { skipWithoutNativeBf16 } from './native-skips';
import { valuesInPrecision } from './precisions';

const BF16_TOLERANCE = 1e-2;
/** Below this the two runs agree as fp32 runs do: bf16 was not used. */
const FP32_AGREEMENT = 1e-5;

let nativeOn = false;

before(async () => {
  const backend = await selectBackend(undefined, 'fp32');
  assert.equal(backend.name, 'wasm');
  nativeOn = nativeKernelsInUse() !== null;
});

after(async () => {
  await selectBackend(undefined, 'fp32');
});

const skipWithoutBf16 = (t: TestContext): boolean => skipWithoutNativeBf16(t, nativeOn);

/** Runs `f` in fp32 and in bf16 on the native kernels; returns both results, checking that no tensor leaked. */
async function inBothPrecisions(f: () => tf.Tensor[]): Promise<[Float32Array[], Float32Array[]]> {
  const fp32 = await valuesInPrecision('fp32', f);
  const bf16 = await valuesInPrecision('bf16', f);
  await selectBackend(undefined, 'fp32');
  return [fp32, bf16];
}

test('bf16 convolutions (plain, biased, biased + ReLU) and both gradients match fp32 within 1e-2 on 54 geometries', async (t) => {
  if (skipWithoutBf16(t)) return;
  let worst = 0;
  let least = Infinity;
  // 5 output channels take oneDNN's blocked layouts; 16 in and out, the NHWC gradients that read the
  // forward pass's kept input.
  const cases = [...convCases(), ...convCases(16).filter((c) => c.ci === 16)];
  for (const c of cases) {
    const [fp32, bf16] = await inBothPrecisions(convOutputs(c));
    for (let i = 0; i < fp32.length; i++) {
      const err = maxRelativeError(fp32[i], bf16[i]);
      assert.ok(err < BF16_TOLERANCE, `${c.where} ${CONV_OUTPUTS[i]}: relative error ${err}`);
      worst = Math.max(worst, err);
      least = Math.min(least, err);
    }
  }
  assert.equal(cases.length, 54);
  assert.ok(least > FP32_AGREEMENT, `every output was computed in bf16 (smallest difference ${least})`);
  t.diagnostic(`worst relative error ${worst.toExponential(2)}, smallest ${least.toExponential(2)}`);
});

test("bf16 gradients reuse their converted inputs (dy for both gradients, an input two convolutions share): the same gradients bit for bit as converting per call, and a new step's tensors are never mistaken for the last one's", async (t) => {
  if (skipWithoutBf16(t)) return;
  assert.ok(nativeGradientInputs(), 'the addon keeps converted backward inputs');
  // Two convolutions of one input, as in a stage's first block (1×1 and 3×3 at 28×28: both filter
  // gradients run in bf16); the squares make each dy depend on the step's data.
  const x = tf.variable(tf.randomNormal<tf.Rank.R4>([2, 28, 28, 16], 0, 1, 'float32', 1));
  const w1 = tf.variable(tf.randomNormal<tf.Rank.R4>([1, 1, 16, 32], 0, 0.2, 'float32', 2));
  const w3 = tf.variable(tf.randomNormal<tf.Rank.R4>([3, 3, 16, 16], 0, 0.2, 'float32', 3));
  const loss = () =>
    tf.add<tf.Scalar>(tf.sum(tf.square(tf.conv2d(x, w1, 1, 'same'))), tf.sum(tf.square(tf.conv2d(x, w3, 1, 'same'))));
  const steps = (slots: number) => {
    nativeGradientInputs(slots);
    const before = nativeGradientInputs()!;
    const seen: Float32Array[] = [];
    for (let step = 0; step < 3; step++) {
      // New data under the same variables at every step, as an optimizer step gives them.
      // (assign shares the new tensor's data and leaves the tensor itself to its owner)
      const data = tf.randomNormal<tf.Rank.R4>([2, 28, 28, 16], 0, 1, 'float32', 10 + step);
      x.assign(data);
      data.dispose();
      const { value, grads } = tf.variableGrads(loss, [x, w1, w3]);
      for (const v of [x, w1, w3]) seen.push(grads[v.name].dataSync() as Float32Array);
      tf.dispose([value, grads]);
    }
    const now = nativeGradientInputs()!;
    return { seen, hits: now.hits - before.hits, misses: now.misses - before.misses };
  };
  assert.equal((await selectBackend(undefined, 'bf16')).precision, 'bf16');
  const tensors = tf.memory().numTensors;
  const perCall = steps(0);
  const reused = steps(3);
  assert.equal(tf.memory().numTensors, tensors, 'numTensors flat over both runs');
  assert.equal(perCall.hits + perCall.misses, 0, 'with no slots nothing is kept');
  // Per step: each dy converted once for two gradients (2 hits), x once for both filter gradients (1 hit).
  assert.equal(reused.hits, 9, `hits: ${JSON.stringify(reused)}`);
  assert.equal(reused.misses, 9, `misses: ${JSON.stringify(reused)}`);
  for (let i = 0; i < perCall.seen.length; i++) {
    assert.deepEqual(reused.seen[i], perCall.seen[i], `step ${Math.floor(i / 3) + 1}, gradient ${i % 3}: bit for bit`);
  }
  assert.notDeepEqual(reused.seen[0], reused.seen[3], 'the steps had different data');
  // fp32 reads fp32 as it is: nothing is converted, nothing kept.
  await selectBackend(undefined, 'fp32');
  const fp32 = steps(3);
  assert.equal(fp32.hits + fp32.misses, 0, 'fp32 converts no input');
  tf.dispose([x, w1, w3]);
});

test('bf16 gradients on NHWC and on the blocked layouts agree within bf16 tolerance, where 16-channel multiples take NHWC', async (t) => {
  if (skipWithoutBf16(t)) return;
  assert.equal(nativeGradientLayout(), 'nhwc', 'NHWC by default');
  // 16 channels in and out at 28×28 (both gradients in bf16), the 54-geometry test's layout choice aside.
  const x = randomArray([2, 28, 28, 16], 1);
  const w = randomArray([3, 3, 16, 16], 2);
  const f = (): tf.Tensor[] => {
    const X = tf.tensor4d(x, [2, 28, 28, 16]);
    const W = tf.tensor4d(w, [3, 3, 16, 16]);
    return tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf
        .conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same')
        .square()
        .sum(),
    )([X, W]);
  };
  const fp32 = await valuesInPrecision('fp32', f);
  const nhwc = await valuesInPrecision('bf16', f);
  assert.equal(nativeGradientLayout('blocked'), 'blocked');
  let blocked: Float32Array[];
  try {
    blocked = await valuesInPrecision('bf16', f);
  } finally {
    nativeGradientLayout('nhwc');
    await selectBackend(undefined, 'fp32');
  }
  for (const [i, name] of ['input gradient', 'filter gradient'].entries()) {
    for (const [layout, values] of [
      ['NHWC', nhwc],
      ['blocked', blocked],
    ] as const) {
      const err = maxRelativeError(fp32[i], values[i]);
      assert.ok(err < BF16_TOLERANCE && err > FP32_AGREEMENT, `${layout} ${name}: relative error ${err}`);
    }
  }
  assert.throws(() => nativeGradientLayout('nchw' as never), /the gradient layout must be nhwc or blocked/);
});

test('bf16 matrix products (transposed, batched with broadcast, fused bias + ReLU, gradients) match fp32 within 1e-2', async (t) => {
  if (skipWithoutBf16(t)) return;
  const a = randomArray([5, 2048], 1);
  const w = randomArray([2048, 9], 2);
  const bias = randomArray([9], 3);
  const batchA = randomArray([3, 4, 16], 4);
  const batchB = randomArray([1, 16, 6], 5);
  const [fp32, bf16] = await inBothPrecisions(() => {
    const A = tf.tensor2d(a, [5, 2048]);
    const W = tf.tensor2d(w, [2048, 9]);
    const plain = tf.matMul(A, W);
    const transposed = tf.matMul(W, A, true, true); // (A·W)ᵀ, both read transposed
    const fused = tf.fused.matMul({ a: A, b: W, bias: tf.tensor1d(bias), activation: 'relu' });
    const batched = tf.matMul(tf.tensor3d(batchA, [3, 4, 16]), tf.tensor3d(batchB, [1, 16, 6]));
    const [gA, gW] = tf.grads((p: tf.Tensor, q: tf.Tensor) =>
      tf
        .matMul(p as tf.Tensor2D, q as tf.Tensor2D)
        .square()
        .sum(),
    )([A, W]);
    return [plain, transposed, fused, batched, gA, gW];
  });
  const names = ['a·b', 'bᵀ·aᵀ', 'relu(a·b + bias)', 'batched, broadcast', 'gradient of a', 'gradient of b'];
  for (let i = 0; i < fp32.length; i++) {
    const err = maxRelativeError(fp32[i], bf16[i]);
    assert.ok(err < BF16_TOLERANCE, `${names[i]}: relative error ${err}`);
    assert.ok(err > FP32_AGREEMENT, `${names[i]} was computed in bf16 (difference ${err})`);
  }
  // The fused product kept its ReLU: no negative output.
  assert.ok(bf16[2].every((v) => v >= 0));
});

/** 20 SGD steps of conv → BatchNorm → ReLU → strided conv → mean → dense on fixed data; the loss after each step. */
async function tinyTrainingRun(precision: 'fp32' | 'bf16'): Promise<{ losses: number[]; leaked: number }> {
  assert.equal((await selectBackend(undefined, precision)).precision, precision);
  // Image i is noise with one colour channel brighter, the channel numbered by its label i % 3.
  const pixels = randomArray([16, 12, 12, 3], 11);
  for (let i = 0; i < pixels.length; i++) if (i % 3 === Math.floor(i / (12 * 12 * 3)) % 3) pixels[i] += 0.3;
  const x = tf.tensor4d(pixels, [16, 12, 12, 3]);
  const classes = Int32Array.from({ length: 16 }, (_, i) => i % 3);
  const labels = tf.tidy(() => tf.oneHot(tf.tensor1d(classes, 'int32'), 3));
  const vars = tf.tidy(() => ({
    w1: tf.variable(tf.tensor4d(randomArray([3, 3, 3, 8], 12), [3, 3, 3, 8]).mul(0.5)),
    gamma: tf.variable(tf.ones([8])),
    beta: tf.variable(tf.zeros([8])),
    w2: tf.variable(tf.tensor4d(randomArray([3, 3, 8, 8], 13), [3, 3, 8, 8]).mul(0.3)),
    dense: tf.variable(tf.tensor2d(randomArray([8, 3], 14), [8, 3])),
    bias: tf.variable(tf.zeros([3])),
  }));
  const optimizer = tf.train.sgd(0.2);
  const loss = (): tf.Scalar => {
    const h = tf.conv2d(x, vars.w1 as tf.Variable<tf.Rank.R4>, 1, 'same');
    const { mean, variance } = tf.moments(h, [0, 1, 2]);
    const normed = tf.batchNorm(h, mean, variance, vars.beta, vars.gamma, 1e-3).relu();
    const h2 = tf.conv2d(normed as tf.Tensor4D, vars.w2 as tf.Variable<tf.Rank.R4>, 2, 'same').relu();
    const logits = tf.matMul(h2.mean<tf.Tensor2D>([1, 2]), vars.dense).add(vars.bias);
    return tf.losses.softmaxCrossEntropy(labels, logits);
  };
  const losses: number[] = [];
  let afterFirst = 0;
  for (let step = 0; step < 20; step++) {
    const value = optimizer.minimize(loss, true) as tf.Scalar;
    losses.push(value.dataSync()[0]);
    value.dispose();
    if (step === 0) afterFirst = tf.memory().numTensors;
  }
  const leaked = tf.memory().numTensors - afterFirst;
  optimizer.dispose();
  tf.dispose([x, labels, ...Object.values(vars)]);
  await selectBackend(undefined, 'fp32');
  return { losses, leaked };
}

test('a small network trained 20 steps in bf16 follows the fp32 loss curve within 3% of the loss, with numTensors flat', async (t) => {
  if (skipWithoutBf16(t)) return;
  const before = tf.memory().numTensors;
  const fp32 = await tinyTrainingRun('fp32');
  const bf16 = await tinyTrainingRun('bf16');
  assert.equal(tf.memory().numTensors, before, 'every tensor of both runs was disposed');
  assert.equal(fp32.leaked, 0, 'numTensors flat over the fp32 steps');
  assert.equal(bf16.leaked, 0, 'numTensors flat over the bf16 steps');
  assert.ok(fp32.losses[19] < 0.7 * fp32.losses[0], `the fp32 loss falls: ${fp32.losses[0]} → ${fp32.losses[19]}`);
  let worst = 0;
  let differs = false;
  for (let i = 0; i < 20; i++) {
    const gap = Math.abs(bf16.losses[i] - fp32.losses[i]) / fp32.losses[i];
    assert.ok(gap < 0.03, `step ${i + 1}: bf16 loss ${bf16.losses[i]} vs fp32 ${fp32.losses[i]}`);
    worst = Math.max(worst, gap);
    if (bf16.losses[i] !== fp32.losses[i]) differs = true;
  }
  assert.ok(differs, 'the bf16 run computed in bf16');
  t.diagnostic(
    `fp32 loss ${fp32.losses[0].toFixed(4)} → ${fp32.losses[19].toFixed(4)}; largest gap ${worst.toFixed(4)}`,
  );
});

test('the precision is recorded in metadata.json and keys the feature cache (fp32 keeps its old keys)', async (t) => {
  if (skipWithoutBf16(t)) return;
  const dir = tempDir();
  const data = path.join(dir, 'demo');
  await makeDemoDataset({ out: data, perClass: 1, seed: 3, minWidth: 40, maxWidth: 60 });
  const model = await createBoatModel({ classes: ['a', 'b'], mode: 'feature-extractor', inputSize: 32 });
  try {
    const cacheDir = path.join(dir, 'cache');
    const extract = async (precision: 'fp32' | 'bf16') => {
      await selectBackend(undefined, precision);
      const set = await extractFeatures(model, data, {
        cacheDir,
        transform: evalTransforms(model.info.preprocessing, 32),
      });
      return set;
    };
    const first = await extract('fp32');
    assert.equal(first.computed, first.labels.length);
    const bf16 = await extract('bf16');
    assert.equal(bf16.computed, bf16.labels.length, 'bf16 features are not read from the fp32 cache');
    // Through ResNet50's 53 convolutions the rounding adds up: the whole network's tolerance is 5e-2.
    const err = maxRelativeError(first.features, bf16.features);
    assert.ok(err < 5e-2 && err > FP32_AGREEMENT, `bf16 features differ from fp32 by ${err}`);
    assert.equal((await extract('bf16')).computed, 0, 'bf16 features come from their own cache');
    assert.equal((await extract('fp32')).computed, 0, 'fp32 features still come from theirs');

    for (const precision of ['bf16', 'fp32'] as const) {
      await selectBackend(undefined, precision);
      const out = path.join(dir, `model-${precision}`);
      await saveBoatModel(model, out);
      assert.equal(readModelMetadata(out).precision, precision);
      assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'metadata.json'), 'utf8')).precision, precision);
    }
  } finally {
    model.dispose();
    await selectBackend(undefined, 'fp32');
  }
});

test('bf16 where the CPU has no native bf16 is a one-line error; auto then runs fp32 and says so', async () => {
  // Runs everywhere: the hook makes the CPU look like one without bf16 (and without the addon the reason differs).
  process.env.BOAT_TEST_NO_NATIVE_BF16 = '1';
  try {
    await assert.rejects(
      selectBackend(undefined, 'bf16'),
      (err: Error) =>
        err instanceof UserError && /^precision bf16 is not available: .+; use fp32 or auto$/.test(err.message),
    );
    const auto = await selectBackend(undefined, 'auto');
    assert.equal(auto.precision, 'fp32');
    assert.match(auto.line, /; precision auto: fp32, as .+\)$/);
    const plain = await selectBackend(undefined, 'fp32');
    assert.equal(plain.precision, 'fp32');
    assert.doesNotMatch(plain.line, /precision/, 'plain fp32 keeps the backend line it always had');
  } finally {
    delete process.env.BOAT_TEST_NO_NATIVE_BF16;
  }
  if (nativeOn && nativeBf16Support().ok) {
    const auto = await selectBackend(undefined, 'auto');
    assert.equal(auto.precision, 'bf16');
    assert.match(auto.line, /; precision auto: bf16 convolutions and matrix products\)$/);
    await selectBackend(undefined, 'fp32');
  }
});

test('the default is auto: bf16 where the CPU has native bf16, else fp32', async () => {
  requestPrecision(undefined);
  assert.equal(DEFAULT_PRECISION, 'auto');
  assert.equal(requestedPrecision({}), 'auto');
  assert.equal(requestedPrecision({ BOAT_PRECISION: 'fp32' }), 'fp32');
  const pinned = process.env.BOAT_PRECISION;
  delete process.env.BOAT_PRECISION;
  try {
    const chosen = await selectBackend();
    assert.equal(chosen.precision, nativeOn && nativeBf16Support().ok ? 'bf16' : 'fp32');
    // Left to the default, a fallback to fp32 keeps the plain line (no CPU without bf16 was ever told otherwise).
    process.env.BOAT_TEST_NO_NATIVE_BF16 = '1';
    const fallback = await selectBackend();
    assert.equal(fallback.precision, 'fp32');
    assert.doesNotMatch(fallback.line, /precision/);
  } finally {
    delete process.env.BOAT_TEST_NO_NATIVE_BF16;
    if (pinned === undefined) delete process.env.BOAT_PRECISION;
    else process.env.BOAT_PRECISION = pinned;
    await selectBackend(undefined, 'fp32');
  }
});

test('the CLI: --precision bf16 without native bf16, a bad --precision and a bad BOAT_PRECISION are one-line errors', () => {
  const dir = tempDir();
  const args = ['predict', '--model', path.join(dir, 'no-model'), path.join(dir, 'x.jpg')];
  const refused = runCli([...args, '--precision', 'bf16'], dir, { BOAT_TEST_NO_NATIVE_BF16: '1' });
  assert.equal(refused.status, 2, refused.stderr);
  assert.match(refused.stderr, /^boat: error: precision bf16 is not available: .+; use fp32 or auto\n$/);
  const bad = runCli([...args, '--precision', 'fp16'], dir);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /argument 'fp16' is invalid\. Allowed choices are fp32, bf16, auto\./);
  const badEnv = runCli(args, dir, { BOAT_PRECISION: 'half' });
  assert.equal(badEnv.status, 2);
  assert.match(badEnv.stderr, /^boat: error: BOAT_PRECISION must be one of fp32, bf16, auto, got "half"\n$/);
});
