/**
 * `boat train --recipe two-stage` on the demo set at 32 px with the real ResNet50 (wasm): both stages
 * run and record what they chose, a SIGKILL in stage 2 resumes to the same bytes, stage 1's model is
 * kept when stage 2 has nothing better, tensors stay flat; and the pieces: warm-up schedules and
 * per-stage rate multipliers, checked on the optimizer itself.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '../lib/engine/tf';

import { selectBackend } from '../lib/engine';
import { webModelArtifacts } from '../lib/export';
import { createBoatModel, loadBoatModel, readModelMetadata, saveBoatModel } from '../lib/model';
import {
  applyScaledGradients,
  groupMultipliers,
  hasTwoStageCheckpoint,
  runTwoStage,
  scheduledLr,
  stageRateMultipliers,
  trainModel,
  TWO_STAGE_DEFAULTS,
  type BatchSource,
  type LrSchedule,
} from '../lib/train';
import { parseCsv } from '../lib/util';
import { REPO_ROOT, runCli, tempDir } from './helpers';

const work = tempDir();
const data = path.join(work, 'data');
const cache = path.join(work, 'cache');
const models = path.join(work, 'models');
const BOAT = path.join(REPO_ROOT, 'bin', 'boat.js');
const silent = { batch: (): void => {}, phase: (): void => {} };

const RECIPE = [
  'train',
  '--recipe',
  'two-stage',
  '--data',
  data,
  '--input-size',
  '32',
  '--batch-size',
  '4',
  '--head-epochs',
  '3',
  '--epochs',
  '2',
  '--seed',
  '5',
  '--cache',
  cache,
];

before(async () => {
  assert.equal(
    runCli(['data', 'demo', '--out', path.join(data, 'boats'), '--per-class', '4', '--seed', '1']).status,
    0,
  );
  assert.equal(runCli(['data', 'split', '--data', path.join(data, 'boats'), '--out', data]).status, 0);
  fs.mkdirSync(models);
  await selectBackend();
});

const readJson = (file: string): Record<string, unknown> =>
  JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
const historyWithoutTimes = (dir: string): string[][] =>
  parseCsv(fs.readFileSync(path.join(dir, 'history.csv'), 'utf8')).map((r) => r.slice(0, 6));

test('warm-up schedules: one-cycle and cosine start at lr/div, peak at pct-start, end at lr/div-final', () => {
  const lr = 0.01;
  for (const kind of ['one-cycle', 'cosine'] as const) {
    const s: LrSchedule = { kind, pctStart: 0.3, div: 5, divFinal: 1e5 };
    assert.ok(Math.abs(scheduledLr(s, lr, 0) - lr / 5) < 1e-15, kind);
    assert.ok(Math.abs(scheduledLr(s, lr, 0.3) - lr) < 1e-15, kind);
    assert.ok(Math.abs(scheduledLr(s, lr, 1) - lr / 1e5) < 1e-15, kind);
    const rising = [0, 0.1, 0.2, 0.29].map((p) => scheduledLr(s, lr, p));
    const falling = [0.3, 0.5, 0.8, 1].map((p) => scheduledLr(s, lr, p));
    rising.slice(1).forEach((v, i) => assert.ok(v > rising[i], `${kind} rises during warm-up`));
    falling.slice(1).forEach((v, i) => assert.ok(v < falling[i], `${kind} falls after warm-up`));
  }
  // Half-way through warm-up: linear for cosine, the cosine's mid-point for one-cycle (both (lr/div + lr)/2).
  const mid = (lr / 5 + lr) / 2;
  assert.ok(Math.abs(scheduledLr({ kind: 'cosine', pctStart: 0.3, div: 5, divFinal: 1e5 }, lr, 0.15) - mid) < 1e-15);
  assert.ok(Math.abs(scheduledLr({ kind: 'one-cycle', pctStart: 0.3, div: 5, divFinal: 1e5 }, lr, 0.15) - mid) < 1e-15);
  // The shapes differ elsewhere: one-cycle warms up slowly at first.
  assert.ok(
    scheduledLr({ kind: 'one-cycle', pctStart: 0.3, div: 5, divFinal: 1e5 }, lr, 0.05) <
      scheduledLr({ kind: 'cosine', pctStart: 0.3, div: 5, divFinal: 1e5 }, lr, 0.05),
  );
});

test('discriminative rates: stage 1 at lr/lr-mult, the head at lr, geometric in between; on the optimizer, stage-1 weights move lr-mult times less for the same gradient', async () => {
  const k = groupMultipliers(100);
  assert.ok(Math.abs(k.stage1 - 0.01) < 1e-12 && k.head === 1);
  const order = [k.stage1, k.stage2, k.stage3, k.stage4, k.stage5, k.head];
  order.slice(1).forEach((v, i) => assert.ok(Math.abs(v / order[i] - 100 ** 0.2) < 1e-9, 'a constant ratio per stage'));

  const model = await createBoatModel({ classes: ['a', 'b'], mode: 'finetune', inputSize: 32 });
  const multipliers = stageRateMultipliers(model, 100);
  const variables = model.trainableVariables();
  assert.equal(Object.keys(multipliers).length, variables.length, 'every trainable variable has a rate');
  const kernelOf = (layer: string): tf.Variable =>
    variables.find((v) => v === (model.backbone.getLayer(layer).trainableWeights[0].read() as tf.Variable))!;
  const stage1 = kernelOf('conv1');
  const stage5 = kernelOf('res5c_branch2c');
  const head = variables.find((v) => !model.backbone.trainableWeights.some((w) => w.read() === v))!;
  assert.ok(Math.abs(multipliers[stage1.name] - 0.01) < 1e-12);
  assert.ok(Math.abs(multipliers[stage5.name] - 100 ** -0.2) < 1e-12);
  assert.equal(multipliers[head.name], 1);

  // The same gradient (all ones) for the three, two SGD steps with momentum: each moves by its rate.
  const optimizer = tf.train.momentum(0.1, 0.9);
  const chosen = [stage1, stage5, head];
  const before = chosen.map((v) => v.clone());
  const tensorsBefore = tf.memory().numTensors;
  for (let step = 0; step < 2; step++) {
    const grads = Object.fromEntries(chosen.map((v) => [v.name, tf.onesLike(v)]));
    applyScaledGradients(optimizer, grads, multipliers);
    tf.dispose(Object.values(grads));
  }
  // Momentum keeps one buffer per variable; nothing else is left behind.
  assert.equal(tf.memory().numTensors, tensorsBefore + chosen.length);
  const moved = await Promise.all(
    chosen.map(async (v, i) => {
      const d = tf.tidy(() => tf.max(tf.abs(tf.sub(v, before[i]))));
      const [x] = await d.data();
      d.dispose();
      return x;
    }),
  );
  // Two steps of SGD with momentum 0.9 on a unit gradient: lr·k·(1 + 1.9).
  assert.ok(Math.abs(moved[2] - 0.1 * 2.9) < 1e-6, `head moved ${moved[2]}`);
  assert.ok(Math.abs(moved[0] / moved[2] - 0.01) < 1e-4, `stage 1 moved ${moved[0] / moved[2]} of the head's`);
  assert.ok(Math.abs(moved[1] / moved[2] - 100 ** -0.2) < 1e-4, `stage 5 moved ${moved[1] / moved[2]} of the head's`);
  optimizer.dispose();
  tf.dispose(before);
  model.dispose();
});

test('--recipe two-stage runs both stages and records the rates it chose, both stages in history.csv, the resolved recipe in metadata.json and config.json', () => {
  const out = path.join(models, 'straight');
  const r = runCli([...RECIPE, '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Stage 1: the head on cached backbone features, 3 epochs/);
  assert.match(r.stdout, /learning-rate finder: loss lowest at \S+, so stage 1 peaks at \S+/);
  assert.match(r.stdout, /Stage 2: the whole network, BatchNorm frozen, 2 epochs, one-cycle schedule/);
  assert.match(
    r.stdout,
    /Two-stage recipe: stage 1 val \d\.\d{4} test \d\.\d{4}; stage 2 val \d\.\d{4} test \d\.\d{4}; kept stage [12]'s model/,
  );
  const metrics = readJson(path.join(out, 'metrics.json'));
  const recipe = metrics.recipe as {
    stage1: { lr: number; lr_finder: { 'suggested-lr': number; 'min-loss-lr': number }; epochs: number };
    stage2: { lr: number; rates: Record<string, number>; epochs: number; lr_mult: number; schedule: LrSchedule };
  };
  assert.ok(recipe.stage1.lr > 0 && recipe.stage1.lr === recipe.stage1.lr_finder['suggested-lr']);
  assert.ok(Math.abs(recipe.stage1.lr_finder['min-loss-lr'] / 10 - recipe.stage1.lr) < 1e-15);
  assert.equal(recipe.stage2.lr, recipe.stage1.lr * TWO_STAGE_DEFAULTS.lrFactor);
  assert.ok(Math.abs(recipe.stage2.rates.stage1 - recipe.stage2.lr / 100) < 1e-15);
  assert.equal(recipe.stage2.rates.head, recipe.stage2.lr);
  assert.deepEqual(recipe.stage2.schedule, { kind: 'one-cycle', pctStart: 0.3, div: 5, divFinal: 1e5 });
  assert.deepEqual([recipe.stage1.epochs, recipe.stage2.epochs, recipe.stage2.lr_mult], [3, 2, 100]);
  // --lr-factor moves stage 2's rates with it (stage 1 and its finder are as before: the same cache, seed, data).
  const scaled = path.join(models, 'lr-factor');
  const r2 = runCli([
    ...RECIPE.map((a, i) => (RECIPE[i - 1] === '--epochs' ? '1' : a)),
    '--lr-factor',
    '0.5',
    '--out',
    scaled,
  ]);
  assert.equal(r2.status, 0, r2.stderr);
  const recipe2 = readJson(path.join(scaled, 'metrics.json')).recipe as typeof recipe;
  assert.equal(recipe2.stage1.lr, recipe.stage1.lr);
  assert.equal(recipe2.stage2.lr, recipe.stage1.lr * 0.5);
  assert.equal(recipe2.stage2.rates.head, recipe.stage1.lr * 0.5);
  const stages = metrics.stages as Record<string, { val_acc: number; test_acc: number }>;
  assert.equal(metrics.best_val_acc, stages[metrics.kept as string].val_acc);
  assert.ok(Number(metrics.best_val_acc) >= stages.stage1.val_acc, 'never below stage 1 on val');
  assert.deepEqual(readModelMetadata(out).metrics.recipe, metrics.recipe);
  assert.deepEqual(readJson(path.join(out, 'config.json')).recipe, metrics.recipe);
  const rows = historyWithoutTimes(out);
  assert.deepEqual(rows[0], ['stage', 'epoch', 'phase', 'loss', 'acc', 'lr']);
  assert.deepEqual(
    rows.slice(1).map((row) => `${row[0]}:${row[1]}:${row[2]}`),
    [
      '1:0:train',
      '1:0:val',
      '1:1:train',
      '1:1:val',
      '1:2:train',
      '1:2:val',
      '2:0:train',
      '2:0:val',
      '2:1:train',
      '2:1:val',
    ],
  );
  // The warm-up: stage 2's first epoch starts at lr/div.
  assert.ok(Math.abs(Number(rows[7][5]) - recipe.stage2.lr / 5) < 1e-12);
});

test('SIGKILL after stage 2 epoch 1, then --resume: the same weights, metrics and history as the uninterrupted run', () => {
  const out = path.join(models, 'killed');
  const killed = spawnSync(process.execPath, [BOAT, ...RECIPE, '--out', out], {
    encoding: 'utf8',
    // The hook counts epochs across the stages: 3 of stage 1, then stage 2's first.
    env: { ...process.env, BOAT_TEST_KILL_AFTER_EPOCH: '4' },
  });
  assert.equal(killed.signal, 'SIGKILL', killed.stderr);
  assert.match(killed.stdout, /epoch 1\/2 val/);
  assert.ok(!fs.existsSync(out) && fs.existsSync(`${out}.checkpoint/state.json`));
  const resumed = runCli([...RECIPE, '--out', out, '--resume']);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stdout, /found by the learning-rate finder of the run being resumed/);
  assert.match(resumed.stdout, /Resuming stage 2 from/);
  assert.doesNotMatch(resumed.stdout, /epoch 1\/2 train/);
  assert.match(resumed.stdout, /epoch 2\/2 train/);
  const straight = path.join(models, 'straight');
  for (const f of ['head/weights.bin', 'backbone/weights.bin'])
    assert.ok(
      fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(straight, f))),
      `${f} byte-identical`,
    );
  for (const f of ['weights.bin', 'optimizer.bin'])
    assert.ok(
      fs
        .readFileSync(path.join(`${out}.checkpoint`, f))
        .equals(fs.readFileSync(path.join(`${straight}.checkpoint`, f))),
      `stage 2 checkpoint ${f} byte-identical`,
    );
  assert.deepEqual(historyWithoutTimes(out), historyWithoutTimes(straight));
  const strip = (dir: string): unknown => ({ ...readJson(path.join(dir, 'metrics.json')), timing: null, stages: null });
  assert.deepEqual(strip(out), strip(straight));
  // A resume with another recipe setting is refused in one line.
  const other = runCli([...RECIPE, '--out', out, '--resume', '--lr-mult', '10']);
  assert.equal(other.status, 2, other.stdout);
  assert.match(other.stderr, /^boat: error: cannot resume from .*: lr-mult 10 \(checkpoint: 100\)/);
});

test("--epochs 0: stage 2 trains nothing, stage 1's model is kept and saved as a feature extractor, at the recipe's default input size, and the run says so", () => {
  const out = path.join(models, 'stage1-only');
  // Without --input-size: stage 1 alone is cheap enough to run at the recipe's default size.
  const args = RECIPE.map((a, i) => (RECIPE[i - 1] === '--epochs' ? '0' : a)).filter(
    (a, i) => a !== '--input-size' && RECIPE[i - 1] !== '--input-size',
  );
  const r = runCli([...args, '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Stage 2 trained no epochs \(--epochs 0\): keeping stage 1's model/);
  assert.match(r.stdout, /kept stage 1's model/);
  const metrics = readJson(path.join(out, 'metrics.json')) as {
    kept: string;
    test_acc: number;
    stages: { stage1: { test_acc: number; val_acc: number } };
    best_val_acc: number;
  };
  assert.equal(metrics.kept, 'stage1');
  assert.equal(metrics.best_val_acc, metrics.stages.stage1.val_acc);
  // Stage 1's test score from cached features is the saved model's, evaluated through the whole network.
  assert.ok(Math.abs(metrics.test_acc - metrics.stages.stage1.test_acc) < 1e-9);
  const meta = readModelMetadata(out);
  assert.equal(meta.mode, 'feature-extractor');
  assert.equal(meta.backbone, 'pretrained');
  assert.equal(TWO_STAGE_DEFAULTS.inputSize, 320);
  assert.equal(meta.inputSize, TWO_STAGE_DEFAULTS.inputSize);
  const recipe = meta.metrics.recipe as { stage1: { input_size: number } };
  assert.equal(recipe.stage1.input_size, TWO_STAGE_DEFAULTS.inputSize);
});

test('--recipe two-stage --label-smoothing: both stages train with it, metadata.json and config.json record it, a resume with another value is refused', () => {
  const out = path.join(models, 'smoothed');
  const args = [...RECIPE, '--head-epochs', '1', '--epochs', '1', '--label-smoothing', '0.1', '--out', out];
  const r = runCli(args);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /label smoothing 0\.1: training targets 0\.92 for the true class, 0\.02 for each other/);
  const recipe = readModelMetadata(out).metrics.recipe as { label_smoothing: number };
  assert.equal(recipe.label_smoothing, 0.1);
  assert.equal(readJson(path.join(out, 'config.json')).labelSmoothing, 0.1);
  // Each stage's checkpoint holds the settings its training loop ran with.
  for (const dir of [`${out}.stage1.checkpoint`, `${out}.checkpoint`]) {
    const state = readJson(path.join(dir, 'state.json')) as { settings: Record<string, unknown> };
    assert.equal(state.settings['label-smoothing'], 0.1, dir);
  }
  const other = runCli([...args, '--resume', '--label-smoothing', '0.2']);
  assert.equal(other.status, 2, other.stdout);
  assert.match(
    other.stderr,
    /^boat: error: cannot resume from .*stage1\.checkpoint: label-smoothing 0\.2 \(checkpoint: 0\.1\); /,
  );
  const straight = readModelMetadata(path.join(models, 'straight')).metrics.recipe as { label_smoothing: number };
  assert.equal(straight.label_smoothing, 0, 'off by default');
});

test('--recipe two-stage --mixup-alpha --cutmix-alpha --rand-augment: stage 2 alone mixes and augments, the recipe and its checkpoint record it, a resume with another alpha is refused', () => {
  const out = path.join(models, 'mixed');
  const args = [...RECIPE, '--head-epochs', '1', '--epochs', '1', '--mixup-alpha', '0.2', '--cutmix-alpha', '1'];
  args.push('--rand-augment', '2,9');
  const r = runCli([...args, '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stdout,
    /batch mixing: MixUp \(alpha 0\.2\) or CutMix \(alpha 1\), .* \(stage 2 only: stage 1 trained on cached features\)/,
  );
  assert.match(r.stdout, /RandAugment\(num_ops=2, magnitude=9\) on every training crop, .* \(stage 2 only\)/);
  const recipe = readModelMetadata(out).metrics.recipe as {
    stage2: { mixup_alpha: number; cutmix_alpha: number; rand_augment: unknown };
  };
  assert.deepEqual([recipe.stage2.mixup_alpha, recipe.stage2.cutmix_alpha], [0.2, 1]);
  assert.deepEqual(recipe.stage2.rand_augment, { num_ops: 2, magnitude: 9 });
  const config = readJson(path.join(out, 'config.json'));
  assert.deepEqual([config.mixupAlpha, config.cutmixAlpha], [0.2, 1]);
  // Stage 1 trained on cached features, unmixed; stage 2's loop ran with the alphas.
  const settingsOf = (dir: string): Record<string, unknown> =>
    (readJson(path.join(dir, 'state.json')) as { settings: Record<string, unknown> }).settings;
  const [stage1, stage2] = [settingsOf(`${out}.stage1.checkpoint`), settingsOf(`${out}.checkpoint`)];
  assert.deepEqual([stage1['mixup-alpha'], stage1['cutmix-alpha']], [0, 0]);
  assert.deepEqual([stage2['mixup-alpha'], stage2['cutmix-alpha']], [0.2, 1]);
  assert.deepEqual([stage1['rand-augment'], stage2['rand-augment']], [undefined, '2,9']);
  const other = runCli([...args, '--out', out, '--resume', '--mixup-alpha', '0.5']);
  assert.equal(other.status, 2, other.stdout);
  assert.match(
    other.stderr,
    /^boat: error: cannot resume from .*\.checkpoint: mixup-alpha 0\.5 \(checkpoint: 0\.2\); /,
  );
  assert.equal(other.stderr.trim().split('\n').length, 1, other.stderr);
  const straight = readModelMetadata(path.join(models, 'straight')).metrics.recipe as {
    stage2: { mixup_alpha: number; cutmix_alpha: number; rand_augment: unknown };
  };
  assert.deepEqual([straight.stage2.mixup_alpha, straight.stage2.cutmix_alpha], [0, 0], 'off by default');
  assert.equal(straight.stage2.rand_augment, null, 'RandAugment off by default');
});

test("--stage2-sizes: stage 2 trains and validates each epoch at its size, the recipe and checkpoint record them, the saved model takes the kept epoch's size", () => {
  const out = path.join(models, 'progressive');
  const args = [
    ...RECIPE.filter((a, i) => a !== '--epochs' && RECIPE[i - 1] !== '--epochs'),
    '--stage2-sizes',
    '32,48',
  ];
  const r = runCli([...args, '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Stage 2: the whole network, BatchNorm frozen, 2 epochs/);
  assert.match(r.stdout, /Progressive resizing: stage 2's epochs at 32, 48 px/);
  const metrics = readJson(path.join(out, 'metrics.json')) as {
    kept: string;
    recipe: { stage1: { input_size: number }; stage2: { input_sizes: number[]; epochs: number } };
    stages: { stage2: { best_epoch: number } };
  };
  assert.deepEqual(metrics.recipe.stage2.input_sizes, [32, 48]);
  assert.equal(metrics.recipe.stage2.epochs, 2);
  assert.equal(metrics.recipe.stage1.input_size, 32);
  const meta = readModelMetadata(out);
  const kept = metrics.kept === 'stage2' ? [32, 48][metrics.stages.stage2.best_epoch] : 32;
  assert.equal(meta.inputSize, kept);
  if (meta.backbone === 'saved') {
    const topology = readJson(path.join(out, 'backbone', 'model.json')) as {
      modelTopology: { config: { layers: Array<{ class_name: string; config: { batch_input_shape: number[] } }> } };
    };
    const input = topology.modelTopology.config.layers.find((l) => l.class_name === 'InputLayer')!;
    assert.deepEqual(input.config.batch_input_shape, [null, kept, kept, 3]);
  }
  const state = readJson(path.join(`${out}.checkpoint`, 'state.json')) as { settings: Record<string, unknown> };
  assert.equal(state.settings['input-sizes'], '32,48');
  // Without them the recipe records one size per epoch, and its checkpoint no sizes (older ones still resume).
  const straight = readJson(path.join(models, 'straight', 'metrics.json')) as typeof metrics;
  assert.deepEqual(straight.recipe.stage2.input_sizes, [32, 32]);
  const straightState = readJson(path.join(models, 'straight.checkpoint', 'state.json')) as typeof state;
  assert.equal('input-sizes' in straightState.settings, false);
  const other = runCli([...args.slice(0, -1), '32,64', '--out', out, '--resume']);
  assert.equal(other.status, 2, other.stdout);
  assert.match(
    other.stderr,
    /^boat: error: cannot resume from .*\.checkpoint: input-sizes 32,64 \(checkpoint: 32,48\)/,
  );
  assert.equal(other.stderr.trim().split('\n').length, 1, other.stderr);
});

test("trainModel's inputSizes: each epoch runs at its size, the model ends at the kept epoch's, and saves, loads and exports at it", async () => {
  const classes = ['a', 'b'];
  const model = await createBoatModel({ classes, mode: 'finetune', inputSize: 32 });
  model.batchNormFrozen = true;
  const sizes = [32, 48, 32];
  const seen: number[] = [];
  const images = (epoch: number): tf.Tensor4D =>
    tf.randomNormal([2, sizes[epoch], sizes[epoch], 3], 0, 50, 'float32', epoch);
  const train: BatchSource = {
    size: 2,
    async *batches(epoch) {
      seen.push(model.info.inputSize);
      yield { x: images(epoch), y: tf.tensor1d([0, 1], 'int32') };
    },
  };
  // Val labels are the model's own predictions in epoch 1 and wrong in the others, so epoch 1 (48 px) is the best.
  const val: BatchSource = {
    size: 2,
    async *batches(epoch) {
      const x = images(epoch);
      const predicted = tf.tidy(() => tf.argMax(model.forward(x), 1).toInt());
      const y = epoch === 1 ? predicted : tf.tidy(() => tf.sub(1, predicted).toInt());
      if (y !== predicted) predicted.dispose();
      yield { x, y: y as tf.Tensor1D };
    },
  };
  const before = tf.memory().numTensors;
  const result = await trainModel(model, { train, val }, { epochs: 3, lr: 1e-4, inputSizes: sizes });
  assert.equal(tf.memory().numTensors, before);
  assert.deepEqual(seen, sizes, "the model took each epoch's size before its batches");
  assert.equal(result.bestEpoch, 1);
  assert.equal(model.info.inputSize, 48);
  await assert.rejects(
    trainModel(model, { train, val }, { epochs: 3, inputSizes: [32, 48] }),
    /2 input sizes for 3 epochs: give one per epoch/,
  );

  const x = tf.randomNormal<tf.Rank.R4>([1, 48, 48, 3], 0, 50, 'float32', 7);
  const dir = path.join(models, 'resized-48');
  await saveBoatModel(model, dir);
  const loaded = await loadBoatModel(dir);
  assert.equal(loaded.info.inputSize, 48);
  assert.equal(loaded.backbone.inputs[0].shape[1], 48, 'the saved topology takes 48 px');
  const [a, b] = [model.forward(x), loaded.forward(x)];
  const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.exp(a), tf.exp(b)))).dataSync()[0]);
  assert.ok(diff < 1e-4, `probabilities differ by ${diff}`);
  const artifacts = await webModelArtifacts(model);
  const input = artifacts.modelTopology.config.layers.find((l) => l.class_name === 'InputLayer')!;
  assert.deepEqual((input.config as { batch_input_shape: number[] }).batch_input_shape, [null, 48, 48, 3]);
  assert.throws(() => model.setInputSize(16), /input size must be an integer of at least 32, got 16/);
  tf.dispose([x, a, b]);
  loaded.dispose();
  model.dispose();
});

test('bad flags with --recipe are one-line errors', () => {
  for (const [args, message] of [
    [[...RECIPE, '--out', 'x', '--lr', '0.1'], /^boat: error: --recipe two-stage chooses --lr itself; leave it out\n$/],
    [
      [...RECIPE, '--out', 'x', '--mode', 'finetune', '--freeze-bn'],
      /^boat: error: --recipe two-stage chooses --mode, --freeze-bn itself; leave them out\n$/,
    ],
    [
      ['train', '--mode', 'finetune', '--out', 'x', '--lr-mult', '10'],
      /^boat: error: --lr-mult applies to --recipe two-stage only\n$/,
    ],
    [['train', '--out', 'x'], /^boat: error: --mode is required \(feature-extractor or finetune\), unless --recipe/],
    [[...RECIPE, '--out', 'x', '--pct-start', '2'], /argument '2' is invalid\. Expected a number from 0 to 1\.\n$/],
    [
      [...RECIPE, '--out', 'x', '--stage2-sizes', '32,48,64'],
      /^boat: error: --stage2-sizes gives 3 sizes \(one per stage 2 epoch\) but --epochs is 2: leave --epochs out, or give as many sizes\n$/,
    ],
    [
      [...RECIPE, '--out', 'x', '--stage2-sizes', '32,16'],
      /argument '32,16' is invalid\. Expected comma-separated sizes of at least 32/,
    ],
    [
      ['train', '--mode', 'finetune', '--out', 'x', '--stage2-sizes', '224,320'],
      /^boat: error: --stage2-sizes applies to --recipe two-stage only\n$/,
    ],
    [
      [...RECIPE, '--out', 'x', '--label-smoothing', '1'],
      /argument '1' is invalid\. Expected a number from 0 up to \(not including\) 1\.\n$/,
    ],
  ] as const) {
    const r = runCli([...args]);
    assert.equal(r.status, 2, r.stdout);
    assert.match(r.stderr, message);
  }
});

test('an in-process two-stage run leaves no tensor behind; a progress factory gets one sink per stage', async () => {
  const made: string[] = [];
  const run = async (out: string): Promise<void> => {
    assert.equal(hasTwoStageCheckpoint(out), false);
    const result = await runTwoStage({
      data,
      out,
      seed: 2,
      inputSize: 32,
      batchSize: 4,
      headEpochs: 2,
      epochs: 1,
      cacheDir: cache,
      progress: (stage, epochs) => {
        made.push(`${stage}:${epochs}`);
        return silent;
      },
      log: () => {},
    });
    assert.equal(result.stopped, false);
    assert.equal(result.history.length, 2 * 2 + 2);
    assert.ok(result.featureSeconds >= 0);
    assert.equal(hasTwoStageCheckpoint(out), true, 'the checkpoint a notebook resumes');
    result.model.dispose();
  };
  // The first run may create the engine's own lasting tensors; the second must add none.
  await run(path.join(models, 'flat-1'));
  const before = tf.memory().numTensors;
  await run(path.join(models, 'flat-2'));
  assert.equal(tf.memory().numTensors, before);
  assert.deepEqual(made, ['1:2', '2:1', '1:2', '2:1']);
});
