/**
 * The training loop on a tiny network (cpu backend): convolutions small enough that fine-tuning a
 * whole backbone takes milliseconds, so accumulation, resume and leak checks run in every test run.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '../lib/engine/tf';

import {
  computeMetrics,
  FeatureSet,
  FeatureSource,
  nllLoss,
  selectBackend,
  stepLr,
  trainModel,
  UserError,
} from '../lib';
import { minutesAndSeconds } from '../lib/util';
import { tempDir } from './helpers';
import { ColourSource, tinyModel, weightsOf } from './tiny-model';

before(async () => {
  await selectBackend('cpu');
});

test("the run's duration line: whole minutes and seconds, never a rounded-up minute or a 60th second", () => {
  assert.equal(minutesAndSeconds(2275.4), '37m 55s');
  assert.equal(minutesAndSeconds(30), '0m 30s');
  assert.equal(minutesAndSeconds(119.6), '2m 0s');
  assert.equal(minutesAndSeconds(59.4), '0m 59s');
});

test('StepLR follows the tutorial schedule', () => {
  assert.deepEqual(
    [0, 6, 7, 13, 14, 23].map((e) => +stepLr(0.001, e, 7, 0.1).toExponential(3)),
    [0.001, 0.001, 0.0001, 0.0001, 0.00001, 0.000001],
  );
});

test('StepLR really changes the SGD step: with gamma 0 the weights freeze after the first step size', async () => {
  for (const optimizer of ['sgd', 'adam'] as const) {
    const model = tinyModel({ mode: 'feature-extractor' });
    const set = featureSet(24);
    const before = tf.memory().numTensors;
    const result = await trainModel(
      model,
      { train: new FeatureSource([set], 8, true, 1), val: new FeatureSource([set], 8, false, 1) },
      { epochs: 3, lr: 0.05, stepSize: 1, gamma: 0, optimizer },
    );
    const valLoss = result.history.filter((r) => r.phase === 'val').map((r) => r.loss);
    assert.deepEqual(
      result.history.filter((r) => r.phase === 'val').map((r) => r.lr),
      [0.05, 0, 0],
    );
    assert.equal(
      valLoss[1],
      valLoss[0],
      `${optimizer}: lr 0 in epoch 2 must leave the weights alone (val loss ${valLoss})`,
    );
    assert.equal(valLoss[2], valLoss[0], optimizer);
    assert.equal(tf.memory().numTensors, before, `${optimizer}: the optimizer is disposed completely`);
    model.dispose();
  }
});

test('fine-tuning learns, records history rows, restores the best epoch and leaks no tensors', async () => {
  const model = tinyModel({ mode: 'finetune', dropout: 0.4 });
  const counts: number[] = [];
  const result = await trainModel(
    model,
    { train: new ColourSource(6), val: new ColourSource(6) },
    { epochs: 5, lr: 0.05, stepSize: 3, onPhase: (r) => r.phase === 'val' && counts.push(tf.memory().numTensors) },
  );
  assert.equal(result.history.length, 10);
  assert.deepEqual(
    result.history.slice(0, 2).map((r) => [r.epoch, r.phase, r.lr]),
    [
      [0, 'train', 0.05],
      [0, 'val', 0.05],
    ],
  );
  assert.ok(Math.abs(result.history[7].lr - 0.005) < 1e-12);
  const valAcc = result.history.filter((r) => r.phase === 'val').map((r) => r.acc);
  assert.equal(result.bestValAcc, Math.max(...valAcc));
  assert.ok(result.bestValAcc > 0.6, `val acc ${valAcc}`);
  assert.equal(new Set(counts).size, 1, `numTensors after each epoch: ${counts}`);
  model.dispose();
});

function featureSet(n: number): FeatureSet {
  const features = new Float32Array(n * 4).map((_, i) => ((i * 7919) % 13) / 13);
  return {
    features,
    labels: Int32Array.from({ length: n }, (_, i) => i % 3),
    files: [],
    dim: 4,
    computed: 0,
    unreadable: 0,
    seconds: 0,
  };
}

test('gradient accumulation: 2 micro-batches of 6 step exactly like one batch of 12', async () => {
  // On the head (no BatchNorm, dropout off): with BatchNorm, micro-batches see their own batch statistics.
  const a = tinyModel({ mode: 'feature-extractor' });
  const b = tinyModel({ mode: 'feature-extractor' });
  const set = featureSet(24);
  await trainModel(
    a,
    { train: new FeatureSource([set], 12, true, 5), val: new FeatureSource([set], 12, false, 5) },
    { epochs: 2, lr: 0.05 },
  );
  await trainModel(
    b,
    { train: new FeatureSource([set], 6, true, 5), val: new FeatureSource([set], 12, false, 5) },
    { epochs: 2, lr: 0.05, accumulate: 2 },
  );
  const wa = await weightsOf(a);
  const wb = await weightsOf(b);
  assert.equal(wa.length, wb.length);
  for (let i = 0; i < wa.length; i++) assert.ok(Math.abs(wa[i] - wb[i]) < 1e-5, `weight ${i}: ${wa[i]} vs ${wb[i]}`);
  const c = tinyModel({ mode: 'feature-extractor' });
  await trainModel(
    c,
    { train: new FeatureSource([set], 6, true, 5), val: new FeatureSource([set], 12, false, 5) },
    { epochs: 2, lr: 0.05 },
  );
  assert.notDeepEqual(await weightsOf(c), wa, 'without accumulation, batches of 6 take twice the steps');
  a.dispose();
  b.dispose();
  c.dispose();
});

test("label smoothing is PyTorch's CrossEntropyLoss(label_smoothing): hand-computed values with and without class weights, 0 the plain loss, no tensor left", () => {
  const before = tf.memory().numTensors;
  const p = [
    [0.7, 0.2, 0.1],
    [0.1, 0.6, 0.3],
    [0.25, 0.25, 0.5],
  ];
  const logProbs = tf.tidy(() => tf.log<tf.Tensor2D>(tf.tensor2d(p)));
  const y = tf.tensor1d([0, 1, 2], 'int32');
  const w = [0.5, 2, 1];
  const read = (t: tf.Scalar): number => {
    const v = t.dataSync()[0];
    t.dispose();
    return v;
  };
  const close = (got: number, want: number, what: string): void =>
    assert.ok(Math.abs(got - want) < 1e-6, `${what}: ${got}, expected ${want}`);
  // By hand from p, x = 0.3, C = 3: (1 − x)·mean(−log p_y) + (x/3)·mean(Σ_c −log p_c).
  close(read(nllLoss(logProbs, y, undefined, 0.3)), 0.7558783870368417, 'unweighted');
  // Weighted, PyTorch's definition: (1 − x)·Σ w_y(−log p_y)/Σ w_y + (x/3)·Σ_i Σ_c w_c(−log p_ic)/Σ w_y. (Weighting
  // each sample's smoothed loss by its true class' weight instead would give 0.7681943777166902.)
  close(read(nllLoss(logProbs, y, w, 0.3)), 0.7567871249135792, 'weighted');
  // x = 0 is the plain loss, bit for bit, with or without weights.
  assert.equal(read(nllLoss(logProbs, y, undefined, 0)), read(nllLoss(logProbs, y)));
  assert.equal(read(nllLoss(logProbs, y, w, 0)), read(nllLoss(logProbs, y, w)));
  close(read(nllLoss(logProbs, y, undefined, 0)), 0.5202159160882228, 'plain');
  close(read(nllLoss(logProbs, y, w, 0)), 0.5408959714460837, 'plain weighted');
  // Unweighted it is TF.js' softmaxCrossEntropy with labelSmoothing (log-softmax leaves log-probabilities as they are).
  const tfjs = tf.tidy(() =>
    tf.losses.softmaxCrossEntropy<tf.Tensor, tf.Scalar>(tf.oneHot(y, 3), logProbs, undefined, 0.3),
  );
  close(read(tfjs), 0.7558783870368417, 'tf.losses.softmaxCrossEntropy');
  // Through the log-softmax, the gradient on the logits is (softmax − target) / n, target (1 − x)·one-hot + x/C.
  const z = tf.tensor2d([
    [1, -2, 0.5],
    [0, 3, -1],
  ]);
  const labels = tf.tensor1d([2, 0], 'int32');
  const grad = tf.grad((logits: tf.Tensor) => nllLoss(tf.logSoftmax(logits) as tf.Tensor2D, labels, undefined, 0.3))(z);
  const expected = tf.tidy(() => tf.div(tf.sub(tf.softmax(z), tf.add(tf.mul(tf.oneHot(labels, 3), 0.7), 0.1)), 2));
  const [g, e] = [grad.dataSync(), expected.dataSync()];
  g.forEach((v, i) => close(v, e[i], `gradient ${i}`));
  tf.dispose([logProbs, y, z, labels, grad, expected]);
  assert.equal(tf.memory().numTensors, before);
});

test('the loop trains on the smoothed loss (val loss stays plain), smoothing 0 is the old run exactly, and bad values are refused', async () => {
  const set = featureSet(24);
  const data = { train: new FeatureSource([set], 8, true, 1), val: new FeatureSource([set], 8, false, 1) };
  const model = tinyModel({ mode: 'feature-extractor' });
  const [features, labels] = [tf.tensor2d(set.features, [24, 4]), tf.tensor1d(set.labels, 'int32')];
  const lossAt = (x: number): number =>
    tf.tidy(() => nllLoss(model.forwardHead(features, false), labels, undefined, x).dataSync()[0]);
  const [smoothed, plain] = [lossAt(0.2), lossAt(0)];
  // A vanishing rate: epoch 0's train loss is the loss of the initial head, over all 24 samples.
  const r = await trainModel(model, data, { epochs: 1, lr: 1e-30, labelSmoothing: 0.2 });
  assert.ok(smoothed > plain + 0.01);
  assert.ok(Math.abs(r.history[0].loss - smoothed) < 1e-5, `train loss ${r.history[0].loss} vs ${smoothed}`);
  assert.ok(Math.abs(r.history[1].loss - plain) < 1e-5, `val loss ${r.history[1].loss} vs ${plain}`);
  tf.dispose([features, labels]);
  model.dispose();

  const runs: number[][] = [];
  for (const options of [{}, { labelSmoothing: 0 }, { labelSmoothing: 0.1 }]) {
    const m = tinyModel({ mode: 'feature-extractor' });
    const result = await trainModel(m, data, { epochs: 2, lr: 0.1, ...options });
    runs.push([...result.history.map((row) => row.loss), ...(await weightsOf(m))]);
    m.dispose();
  }
  assert.deepEqual(runs[1], runs[0], 'smoothing 0 trains exactly as before');
  assert.notDeepEqual(runs[2], runs[0], 'smoothing 0.1 trains otherwise');

  const unused = tinyModel({ mode: 'feature-extractor' });
  for (const bad of [-0.1, 1, 1.5, NaN])
    await assert.rejects(trainModel(unused, data, { epochs: 1, labelSmoothing: bad }), (err: Error) => {
      assert.ok(err instanceof UserError);
      assert.match(err.message, /^label smoothing must be a number from 0 up to \(not including\) 1, got /);
      return true;
    });
  unused.dispose();
});

test('fine-tuning with label smoothing leaks no tensors, and a resume with another smoothing is refused in one line', async () => {
  const dir = path.join(tempDir(), 'checkpoint');
  const data = { train: new ColourSource(6), val: new ColourSource(6) };
  const model = tinyModel({ mode: 'finetune', dropout: 0.4 });
  const counts: number[] = [];
  await trainModel(model, data, {
    epochs: 3,
    lr: 0.05,
    labelSmoothing: 0.1,
    checkpointDir: dir,
    onPhase: (r) => r.phase === 'val' && counts.push(tf.memory().numTensors),
  });
  assert.equal(new Set(counts).size, 1, `numTensors after each epoch: ${counts}`);
  const options = { epochs: 4, lr: 0.05, checkpointDir: dir, resume: true };
  await assert.rejects(trainModel(model, data, { ...options, labelSmoothing: 0.2 }), {
    message: /^cannot resume from .*: label-smoothing 0\.2 \(checkpoint: 0\.1\); resume with the checkpoint's settings/,
  });
  await assert.rejects(trainModel(model, data, options), { message: /: label-smoothing 0 \(checkpoint: 0\.1\)/ });
  const resumed = await trainModel(model, data, { ...options, labelSmoothing: 0.1 });
  assert.equal(resumed.history.length, 8);
  // A checkpoint written before the setting existed trained without smoothing: it resumes with 0 only.
  const stateFile = path.join(dir, 'state.json');
  const state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { settings: Record<string, unknown> };
  delete state.settings['label-smoothing'];
  fs.writeFileSync(stateFile, JSON.stringify(state));
  await assert.rejects(trainModel(model, data, { ...options, epochs: 5, labelSmoothing: 0.1 }), {
    message: /: label-smoothing 0\.1 \(checkpoint: 0\)/,
  });
  assert.equal((await trainModel(model, data, { ...options, epochs: 5 })).history.length, 10);
  model.dispose();
});

test('feature-extractor training changes only the head', async () => {
  const model = tinyModel({ mode: 'feature-extractor', dropout: 0.4 });
  const backboneBefore = await Promise.all(model.backbone.weights.map((w) => w.read().data()));
  const set = featureSet(30);
  await trainModel(
    model,
    { train: new FeatureSource([set], 8, true, 1), val: new FeatureSource([set], 8, false, 1) },
    { epochs: 3, lr: 0.1 },
  );
  const backboneAfter = await Promise.all(model.backbone.weights.map((w) => w.read().data()));
  assert.deepEqual(backboneAfter, backboneBefore);
  model.dispose();
});

test('a run interrupted after an epoch resumes to exactly the uninterrupted result', async () => {
  const dir = tempDir();
  const reference = tinyModel({ mode: 'finetune', dropout: 0.4 });
  const full = await trainModel(
    reference,
    { train: new ColourSource(6), val: new ColourSource(6) },
    { epochs: 4, lr: 0.05, seed: 3, checkpointDir: path.join(dir, 'a') },
  );

  const first = tinyModel({ mode: 'finetune', dropout: 0.4 });
  const part = await trainModel(
    first,
    { train: new ColourSource(6), val: new ColourSource(6) },
    { epochs: 4, lr: 0.05, seed: 3, checkpointDir: path.join(dir, 'b'), shouldStop: () => true },
  );
  assert.equal(part.stopped, true);
  assert.equal(part.history.length, 2);
  first.dispose();
  const resumed = tinyModel({ mode: 'finetune', dropout: 0.4 }); // fresh weights: everything must come from the checkpoint
  const rest = await trainModel(
    resumed,
    { train: new ColourSource(6), val: new ColourSource(6) },
    { epochs: 4, lr: 0.05, seed: 3, checkpointDir: path.join(dir, 'b'), resume: true },
  );
  const strip = (rows: typeof full.history): unknown[] => rows.map(({ seconds: _s, imagesPerSecond: _i, ...r }) => r);
  assert.deepEqual(strip(rest.history), strip(full.history));
  assert.deepEqual(await weightsOf(resumed), await weightsOf(reference));
  // The resumed run knows how long the interrupted one trained, so reported times cover all epochs.
  assert.equal(part.secondsBefore, 0);
  assert.ok(rest.secondsBefore > 0 && rest.secondsBefore <= part.seconds, `${rest.secondsBefore} vs ${part.seconds}`); // as of its last checkpoint
  assert.ok(rest.seconds >= rest.secondsBefore);
  assert.ok(fs.existsSync(path.join(dir, 'b', 'state.json')));
  reference.dispose();
  resumed.dispose();
});

test('a batch of another image size than the model takes is a clear error, not a silent run', () => {
  const model = tinyModel({ mode: 'finetune', dropout: 0.4 });
  const wrong = tf.zeros<tf.Rank.R4>([1, 16, 16, 3]);
  assert.throws(() => model.forward(wrong), /the model takes 8×8×3 images, got 16×16×3/);
  assert.throws(() => model.features(wrong), /the model takes 8×8×3 images/);
  wrong.dispose();
  model.dispose();
});

test('metrics: accuracy, per-class precision/recall/F1, confusion raw and normalised', () => {
  const m = computeMetrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], ['a', 'b', 'c']);
  assert.equal(m.accuracy, 4 / 6);
  assert.deepEqual(m.confusion, [
    [1, 1, 0],
    [0, 2, 0],
    [1, 0, 1],
  ]);
  assert.deepEqual(m.confusionNormalized[0], [0.5, 0.5, 0]);
  assert.deepEqual(
    m.perClass.map((c) => [c.class, c.precision, c.recall, c.support]),
    [
      ['a', 0.5, 0.5, 2],
      ['b', 2 / 3, 1, 2],
      ['c', 1, 0.5, 2],
    ],
  );
  assert.ok(Math.abs(m.perClass[1].f1 - 0.8) < 1e-12);
});

test('a resume whose micro-batches the engine now plans otherwise is refused with the --accumulate that resumes it', async () => {
  const dir = path.join(tempDir(), 'checkpoint');
  const data = { train: new ColourSource(4), val: new ColourSource(4) };
  const model = tinyModel({ mode: 'finetune' });
  await trainModel(model, data, { epochs: 1, lr: 0.05, accumulate: 2, checkpointDir: dir });
  const options = { epochs: 2, lr: 0.05, checkpointDir: dir, resume: true };
  await assert.rejects(trainModel(model, data, options), {
    message:
      /^cannot resume from .*: accumulate 1 \(checkpoint: 2\); resume with the checkpoint's settings \(--accumulate 2\), or start again without --resume$/,
  });
  const resumed = await trainModel(model, data, { ...options, accumulate: 2 });
  assert.equal(resumed.history.length, 4);
  model.dispose();
});
