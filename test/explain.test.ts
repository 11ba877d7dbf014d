/**
 * Beyond the tutorial: Grad-CAM (planted-evidence test on the real ResNet50), top losses and most
 * confused, test-time augmentation views, the learning-rate finder, and class-weighted loss.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '../lib/engine/tf';

import {
  balancedClassWeights,
  BoatModel,
  createBoatModel,
  evalInput,
  evalTransforms,
  EvaluationResult,
  FeatureSet,
  FeatureSource,
  findLearningRate,
  gradCamTensor,
  heatmapPeak,
  loadImage,
  mostConfused,
  nllLoss,
  Random,
  selectBackend,
  topLosses,
  trainModel,
  ttaViews,
} from '../lib';
import { REPO_ROOT } from './helpers';

let model: BoatModel;

before(async () => {
  await selectBackend();
  model = await createBoatModel({ classes: ['mark', 'plain'], mode: 'feature-extractor', seed: 1 });
});

/** A 224 px caffe-range image: a smooth random background, plus a 64 px checkerboard at (top, left) when given. */
function syntheticImage(seed: number, mark?: { top: number; left: number }): Float32Array {
  const data = new Float32Array(224 * 224 * 3);
  let s = seed * 9301 + 49297;
  const base = [0, 1, 2].map(() => ((s = (s * 1103515245 + 12345) & 0x7fffffff), (s % 120) - 60));
  for (let y = 0; y < 224; y++) {
    for (let x = 0; x < 224; x++) {
      for (let c = 0; c < 3; c++) {
        let v = base[c] + 20 * Math.sin((x + seed * 13) / 37 + c) + 20 * Math.cos((y + seed * 7) / 29);
        if (mark && y >= mark.top && y < mark.top + 64 && x >= mark.left && x < mark.left + 64) {
          v = ((Math.floor((y - mark.top) / 8) + Math.floor((x - mark.left) / 8)) % 2 === 0) === (c === 2) ? 130 : -110;
        }
        data[(y * 224 + x) * 3 + c] = v;
      }
    }
  }
  return data;
}

test('Grad-CAM puts the heatmap peak where the planted class evidence is', async () => {
  // Train the head to tell "a checkerboard somewhere" from "no checkerboard".
  const n = 24;
  const features = new Float32Array(n * 2048);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const mark = i % 2 === 0 ? { top: (i * 37) % 160, left: (i * 61) % 160 } : undefined;
    const x = tf.tensor4d(syntheticImage(i, mark), [1, 224, 224, 3]);
    const f = model.features(x);
    features.set(await f.data(), i * 2048);
    labels[i] = mark ? 0 : 1;
    tf.dispose([x, f]);
  }
  const set: FeatureSet = { features, labels, files: [], dim: 2048, computed: n, unreadable: 0, seconds: 0 };
  const run = await trainModel(
    model,
    { train: new FeatureSource([set], 8, true, 1), val: new FeatureSource([set], 8, false, 1) },
    { epochs: 15, lr: 0.01 },
  );
  assert.ok(run.bestValAcc >= 0.9, `the head should learn the planted class (val acc ${run.bestValAcc})`);

  const numTensors = tf.memory().numTensors;
  for (const [where, mark, inCorner] of [
    ['top-left', { top: 0, left: 0 }, (r: number, c: number) => r <= 2 && c <= 2],
    ['bottom-right', { top: 160, left: 160 }, (r: number, c: number) => r >= 4 && c >= 4],
  ] as const) {
    const x = tf.tensor4d(syntheticImage(101, mark), [1, 224, 224, 3]);
    const cam = await gradCamTensor(model, x, 0);
    x.dispose();
    assert.equal(cam.size, 7);
    assert.ok(cam.probs[0] > 0.5, `the model should see the mark (${where}): p=${cam.probs[0]}`);
    const peak = heatmapPeak(cam);
    assert.ok(inCorner(peak.row, peak.column), `${where}: heatmap peak at row ${peak.row}, column ${peak.column}`);
    assert.equal(Math.max(...cam.heatmap), 1);
    assert.ok(Math.min(...cam.heatmap) >= 0);
  }
  assert.equal(tf.memory().numTensors, numTensors, 'Grad-CAM leaks no tensors');
});

test('evalInput decodes a photo once for both the figure view and the model input, equal to the eval transforms', async () => {
  const file = path.join(REPO_ROOT, 'test', 'fixtures', 'photos', 'chelsea.jpg');
  const { view, x } = await evalInput(model, file);
  const expected = await loadImage(file, evalTransforms(model.info.preprocessing), new Random(0));
  assert.deepEqual(x.shape, [1, 224, 224, 3]);
  assert.deepEqual(x.dataSync(), expected.data);
  assert.deepEqual([view.width, view.height], [224, 224]);
  // caffe: BGR minus the mean, so the view's red channel is the input's third channel plus 123.68
  assert.ok(Math.abs(view.data[0] - (expected.data[2] + 123.68)) < 1e-3);
  x.dispose();
});

test('Grad-CAM pools the same feature maps the classifier uses (mean of the last stage = backbone features)', async () => {
  const x = tf.tensor4d(syntheticImage(7), [1, 224, 224, 3]);
  const cam = await gradCamTensor(model, x);
  const probs = tf.tidy(() => tf.exp(model.forward(x)).dataSync());
  x.dispose();
  probs.forEach((p, i) => assert.ok(Math.abs(p - cam.probs[i]) < 1e-4, `class ${i}: ${p} vs ${cam.probs[i]}`));
});

function evaluation(rows: Array<[number, number[]]>, classes: string[]): EvaluationResult {
  const predicted = rows.map(([, p]) => p.indexOf(Math.max(...p)));
  const confusion = classes.map((_, a) =>
    classes.map((__, q) => rows.filter(([act], i) => act === a && predicted[i] === q).length),
  );
  return {
    accuracy: 0,
    samples: rows.length,
    classes,
    perClass: [],
    confusion,
    confusionNormalized: confusion,
    files: rows.map((_, i) => `img${i}.jpg`),
    actual: rows.map(([a]) => a),
    predicted,
    probabilities: rows.map(([, p]) => p),
    skipped: [],
    views: 1,
  };
}

test('top losses rank by the loss of the actual class; most confused lists off-diagonal pairs', () => {
  const classes = ['a', 'b', 'c'];
  const e = evaluation(
    [
      [0, [0.9, 0.05, 0.05]],
      [0, [0.1, 0.8, 0.1]],
      [1, [0.02, 0.08, 0.9]],
      [1, [0.3, 0.6, 0.1]],
      [2, [0.05, 0.9, 0.05]],
      [2, [0.1, 0.1, 0.8]],
    ],
    classes,
  );
  const top = topLosses(e, classes, 3);
  assert.deepEqual(
    top.map((t) => t.file),
    ['img4.jpg', 'img2.jpg', 'img1.jpg'],
  );
  assert.ok(Math.abs(top[0].loss + Math.log(0.05)) < 1e-9);
  assert.deepEqual([top[0].actual, top[0].predicted, top[0].probability], ['c', 'b', 0.9]);
  assert.deepEqual(mostConfused(e), [
    { actual: 'a', predicted: 'b', count: 1 },
    { actual: 'b', predicted: 'c', count: 1 },
    { actual: 'c', predicted: 'b', count: 1 },
  ]);
});

test('TTA views: centre crop, its mirror, and the four corners', () => {
  const x = tf.tensor4d(
    Float32Array.from({ length: 1 * 6 * 8 * 3 }, (_, i) => i),
    [1, 6, 8, 3],
  );
  const v = ttaViews(x, 4);
  assert.deepEqual(v.shape, [6, 4, 4, 3]);
  const views = v.arraySync();
  const image = x.arraySync()[0];
  const crop = (top: number, left: number): number[][][] =>
    image.slice(top, top + 4).map((row) => row.slice(left, left + 4));
  assert.deepEqual(views[0], crop(1, 2));
  assert.deepEqual(
    views[1],
    crop(1, 2).map((row) => [...row].reverse()),
  );
  assert.deepEqual(views.slice(2), [crop(0, 0), crop(0, 4), crop(2, 0), crop(2, 4)]);
  tf.dispose([x, v]);
});

test('learning-rate finder: loss recorded over an exponential sweep, divergence detected, weights restored', async () => {
  const n = 64;
  const features = new Float32Array(n * 2048);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    for (let j = 0; j < 2048; j++) features[i * 2048 + j] = Math.sin(i * 31 + j) + (j % 2 === labels[i] ? 1 : 0);
  }
  const set: FeatureSet = { features, labels, files: [], dim: 2048, computed: n, unreadable: 0, seconds: 0 };
  const before = model.trainableVariables().map((v) => v.dataSync().slice());
  const numTensors = tf.memory().numTensors;
  const result = await findLearningRate(model, new FeatureSource([set], 16, true, 3), {
    steps: 80,
    startLr: 1e-6,
    endLr: 100,
  });
  assert.ok(result.points.length > 10);
  for (let i = 1; i < result.points.length; i++) assert.ok(result.points[i].lr > result.points[i - 1].lr);
  assert.equal(result.points[0].lr, 1e-6);
  assert.equal(result.diverged, true, 'lr 100 on a linear head must diverge');
  assert.ok(result.suggestedLr > 1e-6 && result.suggestedLr < 100);
  assert.equal(result.suggestedLr, result.minLossLr / 10);
  const minimum = Math.min(...result.points.map((p) => p.smoothed).filter(Number.isFinite));
  assert.ok(minimum < result.points[0].smoothed, 'the loss falls somewhere in the sweep');
  model.trainableVariables().forEach((v, i) => assert.deepEqual(v.dataSync(), before[i]));
  assert.equal(tf.memory().numTensors, numTensors);
});

test("class-weighted NLL is PyTorch's weighted mean; balanced weights equalise class totals", () => {
  const logProbs = tf.log(
    tf.tensor2d([
      [0.7, 0.3],
      [0.2, 0.8],
      [0.6, 0.4],
    ]),
  );
  const y = tf.tensor1d([0, 1, 1], 'int32');
  const w = [1, 3];
  const expected = -(1 * Math.log(0.7) + 3 * Math.log(0.8) + 3 * Math.log(0.4)) / (1 + 3 + 3);
  const loss = nllLoss(logProbs, y, w);
  assert.ok(Math.abs(loss.dataSync()[0] - expected) < 1e-6);
  const plain = nllLoss(logProbs, y);
  assert.ok(Math.abs(plain.dataSync()[0] + (Math.log(0.7) + Math.log(0.8) + Math.log(0.4)) / 3) < 1e-6);
  tf.dispose([logProbs, y, loss, plain]);
  const weights = balancedClassWeights([0, 0, 0, 1, 2, 2], 3);
  assert.deepEqual(weights, [6 / 9, 6 / 3, 6 / 6]);
  assert.deepEqual([3 * weights[0], 1 * weights[1], 2 * weights[2]], [2, 2, 2]);
});
