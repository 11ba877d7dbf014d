/**
 * BatchNorm folded into the convolutions for inference (lib/model/folded.ts, lib/engine/fused-conv.ts):
 * the real ResNet50 gives the unfolded network's logits, features and Grad-CAM maps within 1e-4
 * relative (max |folded − unfolded| / max |unfolded|), with the native kernels and with wasm's alone;
 * the native conv + bias + residual + ReLU kernel against the cpu backend; numTensors flat; feature
 * extraction, evaluation and predict run folded; fine-tuning runs the unfolded BatchNorm; bf16.
 *
 * Tolerance: folding changes only the order of float32 operations (w·s then the convolution, instead
 * of the convolution then ·s), so the two differ by accumulated rounding: measured about 1e-6 through
 * ResNet50's 53 convolutions, well under 1e-4; a wrong fold (a missing ε, the bias left out, a ReLU in
 * the wrong place) is off by far more.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { before, test, type TestContext } from 'node:test';
import * as tf from '../lib/engine/tf';

import {
  BoatModel,
  buildHead,
  createBoatModel,
  DEMO_CLASSES,
  evalTransforms,
  evaluateModel,
  extractFeatures,
  gradCamTensor,
  makeDemoDataset,
  nativeKernelsInUse,
  nllLoss,
  predictImage,
  selectBackend,
  setNativeKernels,
} from '../lib';
import { convBiasAddRelu } from '../lib/engine/fused-conv';
import {
  CONV2D_ADD,
  FILTER_CACHE_BYTES,
  nativeBf16Support,
  nativeConvAddsInPlace,
  nativeFilterCache,
} from '../lib/engine/native-kernels';
import { convCases, maxRelativeError, randomArray } from './conv-cases';
import { REPO_ROOT, tempDir } from './helpers';
import { skipWithoutNativeAddon, skipWithoutNativeBf16 } from './native-skips';
import { tidyValues } from './tidy-values';
import { tinyModel } from './tiny-model';

const FOLD_TOLERANCE = 1e-4;
const SIZE = 64;

let nativeOn = false;

before(async () => {
  const backend = await selectBackend(undefined, 'fp32');
  assert.equal(backend.name, 'wasm');
  nativeOn = nativeKernelsInUse() !== null;
});

const skipWithoutAddon = (t: TestContext): boolean => skipWithoutNativeAddon(t, nativeOn);

/** Inputs in the range of caffe-preprocessed pixels (about ±128). */
function images(n: number, seed: number, size = SIZE): tf.Tensor4D {
  return tf.tensor4d(
    randomArray([n, size, size, 3], seed).map((v) => v * 250),
    [n, size, size, 3],
  );
}

/** `f` with folding on and off; each result as one flat array. */
function foldedAndNot(model: BoatModel, f: () => tf.Tensor): [Float32Array, Float32Array] {
  const run = (fold: boolean): Float32Array => {
    model.foldBatchNorm = fold;
    try {
      return tf.tidy(() => f().dataSync() as Float32Array);
    } finally {
      model.foldBatchNorm = true;
    }
  };
  return [run(true), run(false)];
}

/** How many times each kernel ran in `f` (the tensors it returns are disposed). */
async function kernelCounts(f: () => tf.TensorContainer | Promise<tf.TensorContainer>): Promise<Map<string, number>> {
  const info = await tf.profile(f);
  tf.dispose(info.result);
  const counts = new Map<string, number>();
  for (const k of info.kernels) counts.set(k.name, (counts.get(k.name) ?? 0) + 1);
  return counts;
}

const count = (counts: Map<string, number>, name: string): number => counts.get(name) ?? 0;

test('the native conv + bias + residual + ReLU kernel matches the cpu backend (24 geometries, with and without ReLU)', async (t) => {
  if (skipWithoutAddon(t)) return;
  assert.ok(tf.getKernel(CONV2D_ADD, 'wasm'), `${CONV2D_ADD} is registered with the native kernels`);
  let worst = 0;
  for (const c of convCases().filter((c) => typeof c.pad === 'string')) {
    const geometry = {
      strides: [c.s, c.s] as [number, number],
      pad: c.pad as 'same' | 'valid',
      dilations: [c.dilation, c.dilation] as [number, number],
    };
    const outShape = tf.backend_util.computeConv2DInfo(
      c.xShape,
      c.wShape,
      geometry.strides,
      geometry.dilations,
      geometry.pad,
    ).outShape;
    const x = randomArray(c.xShape, c.index);
    const w = randomArray(c.wShape, c.index + 100);
    const b = randomArray([5], c.index + 200);
    const add = randomArray(outShape, c.index + 300);
    for (const relu of [false, true]) {
      const fused = (): tf.Tensor4D =>
        convBiasAddRelu(
          tf.tensor4d(x, c.xShape),
          tf.tensor4d(w, c.wShape),
          tf.tensor1d(b),
          geometry,
          relu,
          tf.tensor4d(add, outShape),
        );
      const compute = async (backend: string): Promise<Float32Array> => {
        await tf.setBackend(backend);
        return tidyValues(() => [fused()], backend)[0];
      };
      const expected = await compute('cpu');
      const native = await compute('wasm');
      const profiled = await kernelCounts(fused);
      assert.equal(count(profiled, CONV2D_ADD), 1, 'the native kernel ran');
      const err = maxRelativeError(expected, native);
      worst = Math.max(worst, err);
      assert.ok(err < 1e-5, `${c.where}${relu ? ' + ReLU' : ''}: relative error ${err}`);
      if (relu) assert.ok(Math.min(...native) === 0, 'the ReLU clipped something');
    }
  }
  t.diagnostic(`largest relative error ${worst.toExponential(2)}`);
});

test("a residual tail whose residual nothing else reads writes into the residual's buffer: the same values bit for bit, never over a tensor that shares the data, 16 of them in a ResNet50 forward", async (t) => {
  if (skipWithoutAddon(t)) return;
  await tf.setBackend('wasm');
  const geometry = { strides: [1, 1] as [number, number], pad: 'same' as const, dilations: [1, 1] as [number, number] };
  const [xShape, wShape, outShape] = [
    [2, 7, 7, 16],
    [3, 3, 16, 32],
    [2, 7, 7, 32],
  ] as const;
  const x = tf.tensor4d(randomArray([...xShape], 1), [...xShape]);
  const w = tf.tensor4d(randomArray([...wShape], 2), [...wShape]);
  const b = tf.tensor1d(randomArray([32], 3));
  const residual = () => tf.tensor4d(randomArray([...outShape], 4), [...outShape]);
  const copied = convBiasAddRelu(x, w, b, geometry, true, residual());
  const before = nativeConvAddsInPlace();
  const add = residual();
  const inPlace = convBiasAddRelu(x, w, b, geometry, true, add, false);
  assert.equal(nativeConvAddsInPlace() - before, 1, 'written in place');
  assert.equal(inPlace.dataId, add.dataId, "the output took over the residual's buffer");
  add.dispose(); // what the caller does next: the output keeps the data
  assert.deepEqual(Array.from(inPlace.dataSync()), Array.from(copied.dataSync()), 'the same values');
  // A residual another tensor shares is copied, and that tensor keeps its values.
  const shared = residual();
  const clone = tf.clone(shared);
  const out = convBiasAddRelu(x, w, b, geometry, true, shared, false);
  assert.notEqual(out.dataId, shared.dataId, 'not in place over shared data');
  assert.deepEqual(
    Array.from(clone.dataSync()),
    Array.from(randomArray([...outShape], 4)),
    'the clone keeps its values',
  );
  assert.deepEqual(Array.from(out.dataSync()), Array.from(copied.dataSync()));
  tf.dispose([x, w, b, copied, inPlace, shared, clone, out]);

  // In ResNet50's folded forward every block's tail is its residual's last reader.
  const model = await createBoatModel({ classes: ['a', 'b'], mode: 'feature-extractor', inputSize: 64 });
  const input = images(1, 5);
  tf.dispose(model.forward(input)); // folds
  const tensors = tf.memory().numTensors;
  const counted = nativeConvAddsInPlace();
  const [folded, unfolded] = foldedAndNot(model, () => model.features(input));
  assert.equal(nativeConvAddsInPlace() - counted, 16, 'all 16 block tails in place');
  assert.ok(maxRelativeError(unfolded, folded) < FOLD_TOLERANCE, 'features as unfolded');
  assert.equal(tf.memory().numTensors, tensors, 'numTensors flat');
  input.dispose();
  model.dispose();
});

test('folded ResNet50 gives the unfolded logits and features within 1e-4 relative, with the native kernels and with wasm alone', async (t) => {
  const model = await createBoatModel({ classes: ['a', 'b', 'c'], mode: 'feature-extractor', inputSize: SIZE });
  const x = images(2, 9);
  try {
    assert.equal(model.folding, true);
    const kernelSets = nativeOn ? [true, false] : [false];
    const featureErrors: number[] = [];
    const unfoldedFeatures: Float32Array[] = [];
    for (const native of kernelSets) {
      const was = setNativeKernels(native);
      try {
        const label = native ? 'native kernels' : "wasm's kernels";
        for (const [what, f] of [
          ['logits', () => model.forward(x)],
          ['features', () => model.features(x)],
        ] as const) {
          const [folded, unfolded] = foldedAndNot(model, f);
          const err = maxRelativeError(unfolded, folded);
          assert.ok(err < FOLD_TOLERANCE, `${label}, ${what}: relative error ${err}`);
          assert.ok(err > 0, `${label}, ${what}: identical to the last bit, so foldBatchNorm switched nothing`);
          t.diagnostic(`${label}, ${what}: folded against unfolded ${err.toExponential(2)}`);
          if (what === 'features') {
            featureErrors.push(err);
            unfoldedFeatures.push(unfolded);
          }
        }
        const folded = await kernelCounts(() => model.forward(x));
        model.foldBatchNorm = false;
        const unfolded = await kernelCounts(() => model.forward(x));
        model.foldBatchNorm = true;
        assert.equal(count(unfolded, 'FusedBatchNorm'), 53, `${label}: the unfolded network runs 53 BatchNorms`);
        assert.equal(count(folded, 'FusedBatchNorm'), 0, `${label}: the folded one none`);
        // 53 convolutions: 16 with their residual add (one kernel where native), the rest with bias (+ ReLU).
        assert.equal(count(folded, 'FusedConv2D') + count(folded, CONV2D_ADD), 53, label);
        assert.equal(count(folded, CONV2D_ADD), native ? 16 : 0, label);
        assert.equal(count(folded, 'Add'), native ? 0 : 16, `${label}: residual adds`);
      } finally {
        setNativeKernels(was);
      }
    }
    if (unfoldedFeatures.length === 2) {
      // The feature cache leaves the kernel set out of its key, and folding out too (features.ts): folding
      // must not move the features more than switching kernel sets does.
      const kernelSets = maxRelativeError(unfoldedFeatures[0], unfoldedFeatures[1]);
      t.diagnostic(
        `features: folding moves them by ${featureErrors.map((e) => e.toExponential(2)).join(' / ')} (native / wasm kernels), switching kernel sets by ${kernelSets.toExponential(2)}`,
      );
      for (const e of featureErrors) assert.ok(e < 10 * kernelSets, `folding ${e} against kernel sets ${kernelSets}`);
    }
  } finally {
    x.dispose();
    model.dispose();
  }
});

test('numTensors stays flat over folded forwards and a refold, and disposing the model frees the folded weights', async () => {
  const start = tf.memory().numTensors;
  const model = await createBoatModel({ classes: ['a', 'b'], mode: 'feature-extractor', inputSize: SIZE });
  const created = tf.memory().numTensors;
  const x = images(1, 4);
  const counts: number[] = [];
  for (let i = 0; i < 3; i++) {
    tf.dispose([model.forward(x), model.features(x), model.featureMaps(x)]);
    counts.push(tf.memory().numTensors);
  }
  assert.deepEqual(counts, [created + 1, created + 1, created + 1], 'only the input is left after each round');
  // A changed BatchNorm (what a fine-tune's step does) is folded again at the next inference, in place.
  const layer = model.backbone.getLayer('bn5c_branch2c');
  const before = tf.tidy(() => model.features(x).dataSync() as Float32Array);
  const weights = layer.getWeights();
  const doubled = tf.mul(weights[0], 2);
  layer.setWeights([doubled, ...weights.slice(1)]);
  doubled.dispose(); // the variable holds its data now
  // The refold runs inside foldedAndNot's tidy, as it does inside evaluation's: what it keeps must survive it.
  const [folded, unfolded] = foldedAndNot(model, () => model.features(x));
  tf.dispose(model.forward(x));
  assert.ok(maxRelativeError(before, folded) > 1e-2, 'the new gamma took effect in the folded network');
  assert.ok(maxRelativeError(unfolded, folded) < FOLD_TOLERANCE, 'and it agrees with the unfolded one');
  assert.equal(tf.memory().numTensors, created + 1, 'refolding replaced the folded tensors one for one');
  x.dispose();
  model.dispose();
  assert.equal(tf.memory().numTensors, start, 'the model and its folded weights are gone');
});

test("inference keeps each filter's reordered copy (the native filter cache): the same logits as reordering per call, training adds no copy, changed weights get new ones", async (t) => {
  if (skipWithoutAddon(t)) return;
  const model = await createBoatModel({ classes: ['a', 'b'], mode: 'finetune', inputSize: SIZE });
  const x = images(2, 8);
  const y = tf.tensor1d([0, 1], 'int32');
  const logits = (): Float32Array => tf.tidy(() => model.forward(x).dataSync() as Float32Array);
  const exact = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);
  try {
    for (const precision of ['fp32', 'bf16'] as const) {
      if (precision === 'bf16' && !nativeBf16Support().ok) {
        t.diagnostic('bf16 not checked: no native bf16');
        continue;
      }
      await selectBackend(undefined, precision);
      nativeFilterCache(0);
      const reordered = logits();
      nativeFilterCache(FILTER_CACHE_BYTES);
      const first = logits();
      const afterFirst = nativeFilterCache()!;
      const second = logits();
      const afterSecond = nativeFilterCache()!;
      assert.equal(afterFirst.copies, 53, `${precision}: one copy per convolution`);
      assert.equal(afterSecond.hits - afterFirst.hits, 53, `${precision}: the second pass reorders nothing`);
      assert.equal(afterSecond.misses, afterFirst.misses);
      assert.ok(exact(first, reordered) && exact(second, reordered), `${precision}: the same logits, bit for bit`);

      // A train step: its forward pass is taped, so it passes no key and leaves the cache as it was.
      const optimizer = tf.train.sgd(0.01);
      tf.dispose(optimizer.minimize(() => nllLoss(model.forward(x, true), y), true, model.trainableVariables()) ?? []);
      optimizer.dispose();
      const afterStep = nativeFilterCache()!;
      assert.deepEqual([afterStep.copies, afterStep.misses], [afterSecond.copies, afterSecond.misses]);
      // Every filter changed, so the next inference folds again and its new filters get copies of their own.
      const trained = logits();
      assert.equal(nativeFilterCache()!.misses - afterStep.misses, 53, `${precision}: new weights, new copies`);
      nativeFilterCache(0);
      assert.ok(exact(trained, logits()), `${precision}: no stale copy used after the weights changed`);
      // A capacity below one pass's filters evicts the least recently used; the logits stay the same.
      nativeFilterCache(2 ** 20);
      assert.ok(exact(logits(), trained));
      assert.ok(nativeFilterCache()!.bytes <= 2 ** 20 + 2 ** 22, 'within the capacity, plus the largest copy');
      nativeFilterCache(FILTER_CACHE_BYTES);
    }
  } finally {
    nativeFilterCache(FILTER_CACHE_BYTES);
    await selectBackend(undefined, 'fp32');
    tf.dispose([x, y]);
    model.dispose();
  }
});

test('fine-tuning runs the unfolded BatchNorm (batch statistics, and moving ones under --freeze-bn); evaluation then folds the trained weights', async (t) => {
  const model = await createBoatModel({ classes: ['a', 'b', 'c'], mode: 'finetune', inputSize: SIZE });
  const x = images(2, 5);
  const y = tf.tensor1d([0, 2], 'int32');
  try {
    const training = await kernelCounts(() => model.forward(x, true));
    assert.equal(count(training, CONV2D_ADD), 0, 'no folded convolution in a training pass');
    // (33 of them with the ReLU after them in the same kernel: engine/batchnorm.ts)
    if (nativeOn)
      assert.equal(
        count(training, 'BoatBatchNormTrain') + count(training, 'BoatBatchNormTrainRelu'),
        53,
        'every BatchNorm normalises with its batch',
      );
    // With batch statistics, one image's output depends on the rest of the batch; folded it cannot.
    const first = (batch: tf.Tensor4D): Float32Array =>
      tf.tidy(() => model.forward(batch, true).slice([0, 0], [1, 3]).dataSync() as Float32Array);
    const other = tf.concat([x.slice([0], [1]), images(1, 77)]);
    assert.ok(maxRelativeError(first(x), first(other)) > 1e-3, 'training BatchNorm sees the batch');
    other.dispose();

    const optimizer = tf.train.sgd(0.01);
    tf.dispose(optimizer.minimize(() => nllLoss(model.forward(x, true), y), true, model.trainableVariables()) ?? []);
    optimizer.dispose();
    const [folded, unfolded] = foldedAndNot(model, () => model.forward(x));
    const err = maxRelativeError(unfolded, folded);
    assert.ok(err < FOLD_TOLERANCE, `after a train step, folded and unfolded agree: ${err}`);

    model.batchNormFrozen = true;
    const frozen = await kernelCounts(() => model.forward(x, true));
    assert.equal(count(frozen, CONV2D_ADD), 0, '--freeze-bn: no folded convolution either');
    assert.equal(
      count(frozen, 'FusedBatchNorm') + count(frozen, 'BoatBatchNormRelu'),
      53,
      '--freeze-bn: each BatchNorm is its own op, gamma and beta train',
    );
    t.diagnostic(`folded vs unfolded after a train step: ${err.toExponential(2)}`);
  } finally {
    tf.dispose([x, y]);
    model.dispose();
  }
});

test("Grad-CAM's feature maps and heatmap from the folded backbone equal the unfolded ones", async () => {
  const model = await createBoatModel({ classes: ['a', 'b', 'c'], mode: 'feature-extractor', inputSize: SIZE });
  const x = images(1, 12);
  try {
    const [folded, unfolded] = foldedAndNot(model, () => model.featureMaps(x));
    assert.equal(folded.length, 2 * 2 * 2048, 'the last stage at 64 px is 2×2');
    assert.ok(maxRelativeError(unfolded, folded) < FOLD_TOLERANCE);
    const cams = [];
    for (const fold of [true, false]) {
      model.foldBatchNorm = fold;
      cams.push(await gradCamTensor(model, x, 1));
    }
    model.foldBatchNorm = true;
    assert.ok(maxRelativeError(cams[1].heatmap, cams[0].heatmap) < 1e-3, 'the heatmaps agree');
    assert.ok(maxRelativeError(cams[1].probs, cams[0].probs) < FOLD_TOLERANCE, 'so do the probabilities');
  } finally {
    x.dispose();
    model.dispose();
  }
});

test('feature extraction, evaluation and predict run the folded network: no BatchNorm op runs, and no padding (the stem convolution and max pool pad by themselves)', async () => {
  const dir = tempDir();
  const data = path.join(dir, 'demo');
  await makeDemoDataset({ out: data, perClass: 1, seed: 5, minWidth: 40, maxWidth: 60 });
  const model = await createBoatModel({ classes: [...DEMO_CLASSES].sort(), mode: 'feature-extractor', inputSize: 32 });
  try {
    const runs: Array<[string, () => Promise<unknown>]> = [
      [
        'extractFeatures',
        () =>
          extractFeatures(model, data, {
            cacheDir: path.join(dir, 'cache'),
            transform: evalTransforms(model.info.preprocessing, 32),
          }),
      ],
      ['evaluateModel', () => evaluateModel(model, data)],
      ['predictImage', () => predictImage(model, path.join(REPO_ROOT, 'test', 'fixtures', 'photos', 'coffee.jpg'))],
    ];
    for (const [name, run] of runs) {
      const counts = await kernelCounts(async () => {
        await run();
        return [];
      });
      assert.equal(count(counts, 'FusedBatchNorm'), 0, `${name} runs no BatchNorm`);
      assert.equal(count(counts, 'PadV2'), 0, `${name} pads nothing`);
      assert.equal(count(counts, 'MaxPool'), 1, `${name} runs the stem's max pool`);
      assert.ok(count(counts, 'FusedConv2D') >= 37, `${name} runs the folded convolutions`);
    }
  } finally {
    model.dispose();
  }
});

test('bf16: the folded convolutions compute in bf16 and agree with the unfolded network in bf16', async (t) => {
  if (skipWithoutNativeBf16(t, nativeOn)) return;
  const model = await createBoatModel({ classes: ['a', 'b'], mode: 'feature-extractor', inputSize: SIZE });
  const x = images(2, 21);
  try {
    const fp32 = tf.tidy(() => model.features(x).dataSync() as Float32Array);
    assert.equal((await selectBackend(undefined, 'bf16')).precision, 'bf16');
    const [folded, unfolded] = foldedAndNot(model, () => model.features(x));
    const vsFp32 = maxRelativeError(fp32, folded);
    // The tolerances of test/bf16.test.ts for ResNet50 features: within 5e-2, and above fp32's agreement.
    assert.ok(vsFp32 > 1e-5 && vsFp32 < 5e-2, `folded bf16 against folded fp32: ${vsFp32}`);
    const vsUnfolded = maxRelativeError(unfolded, folded);
    assert.ok(vsUnfolded < 5e-2, `folded against unfolded, both bf16: ${vsUnfolded}`);
    t.diagnostic(`bf16 folded vs fp32 ${vsFp32.toExponential(2)}, vs unfolded bf16 ${vsUnfolded.toExponential(2)}`);
  } finally {
    await selectBackend(undefined, 'fp32');
    x.dispose();
    model.dispose();
  }
});

test('a small conv + BatchNorm + ReLU layer folds too; a backbone with a layer used twice stays unfolded and still runs', () => {
  const tiny = tinyModel({ mode: 'feature-extractor' });
  const x = images(3, 31, 8);
  try {
    assert.equal(tiny.folding, true);
    // Statistics far from the initial ones (mean 0, variance 1, γ 1, β 0), so that the fold does something.
    const bn = tiny.backbone.layers.find((l) => l.getClassName() === 'BatchNormalization')!;
    const stats = [randomArray([4], 1, 1), randomArray([4], 2), randomArray([4], 3, 3), randomArray([4], 4, 1)];
    const values = stats.map((v) => tf.tensor1d(v));
    bn.setWeights(values); // gamma, beta, moving mean, moving variance
    tf.dispose(values);
    const [folded, unfolded] = foldedAndNot(tiny, () => tiny.features(x));
    assert.ok(maxRelativeError(unfolded, folded) < FOLD_TOLERANCE, 'folded tiny network');
  } finally {
    tiny.dispose();
  }

  const input = tf.input({ shape: [8, 8, 3] });
  const shared = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same' });
  let y = shared.apply(shared.apply(input)) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization().apply(y) as tf.SymbolicTensor;
  y = tf.layers.globalAveragePooling2d({}).apply(y) as tf.SymbolicTensor;
  const backbone = tf.model({ inputs: input, outputs: y });
  const info = {
    classes: ['a', 'b'],
    preprocessing: 'caffe' as const,
    inputSize: 8,
    weightsId: 't',
    weightsChecksum: 'x',
  };
  const model = new BoatModel(backbone, buildHead(2, { features: 3 }), info, 'feature-extractor');
  try {
    assert.equal(model.folding, false, 'a layer used twice is not folded');
    const out = tf.tidy(() => model.features(x).dataSync());
    const expected = tf.tidy(() => (backbone.apply(x, { training: false }) as tf.Tensor).dataSync());
    assert.deepEqual(out, expected);
  } finally {
    x.dispose();
    model.dispose();
  }
});
