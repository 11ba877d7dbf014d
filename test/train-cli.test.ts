/**
 * `boat train`, `evaluate` and `predict` end to end on the synthetic demo set with the real ResNet50
 * (wasm backend), including a crash (SIGKILL) and --resume, and Ctrl-C.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';

import * as tf from '../lib/engine/tf';

import { makeSoup } from '../lib/train';
import { selectBackend } from '../lib/engine';
import { parseCsv } from '../lib/util';
import { REPO_ROOT, runCli, tempDir } from './helpers';

const work = tempDir();
const cache = path.join(work, 'cache');
const TRAIN = [
  'train',
  '--mode',
  'feature-extractor',
  '--data',
  path.join(work, 'data'),
  '--epochs',
  '4',
  '--batch-size',
  '6',
  '--lr',
  '0.01',
  '--seed',
  '7',
  '--cache',
  cache,
];

before(() => {
  assert.equal(
    runCli(['data', 'demo', '--out', path.join(work, 'data', 'boats'), '--per-class', '6', '--seed', '1']).status,
    0,
  );
  assert.equal(
    runCli(['data', 'split', '--data', path.join(work, 'data', 'boats'), '--out', path.join(work, 'data')]).status,
    0,
  );
});

function historyWithoutTimes(dir: string): string[][] {
  return parseCsv(fs.readFileSync(path.join(dir, 'history.csv'), 'utf8')).map((row) => row.slice(0, 5));
}

function sha(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

test('train writes the model, history.csv, metrics.json and config.json', () => {
  const out = path.join(work, 'models', 'fe');
  const r = runCli([...TRAIN, '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Using wasm backend/);
  assert.match(r.stdout, /525,829 trainable/);
  assert.match(r.stdout, /features train: 20 images, 20 computed/);
  assert.match(r.stdout, /epoch 4\/4 val/);
  assert.match(r.stdout, /recomputing the backbone every epoch as the tutorial does would take about \d+ s/);
  for (const f of ['metadata.json', 'head/weights.bin', 'history.csv', 'metrics.json', 'config.json'])
    assert.ok(fs.existsSync(path.join(out, f)), f);
  assert.equal(historyWithoutTimes(out).length, 1 + 8);
  const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
  assert.equal(typeof metrics.test_acc, 'number');
  assert.equal(metrics.test.confusion.length, 5);
  // A second run reuses every cached feature: only the head trains.
  const again = runCli([...TRAIN, '--out', path.join(work, 'models', 'fe2')]);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /features train: 20 images, 0 computed .* 20 from the cache/);
  assert.deepEqual(historyWithoutTimes(path.join(work, 'models', 'fe2')), historyWithoutTimes(out));
  // Eval-transform features do not depend on the seed, so another seed reuses them too.
  const otherSeed = runCli([...TRAIN.map((a) => (a === '7' ? '8' : a)), '--out', path.join(work, 'models', 'fe3')]);
  assert.equal(otherSeed.status, 0, otherSeed.stderr);
  assert.match(otherSeed.stdout, /features train: 20 images, 0 computed .* 20 from the cache/);
});

test('SIGKILL after epoch 2, then --resume: the same final weights and history as an uninterrupted run', () => {
  const out = path.join(work, 'models', 'crashed');
  const crashed = spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin', 'boat.js'), ...TRAIN, '--out', out], {
    encoding: 'utf8',
    env: { ...process.env, BOAT_TEST_KILL_AFTER_EPOCH: '2' },
  });
  assert.equal(crashed.signal, 'SIGKILL');
  assert.ok(!fs.existsSync(out), 'no model is saved by a killed run');
  assert.ok(fs.existsSync(`${out}.checkpoint/state.json`));
  const resumed = runCli([...TRAIN, '--out', out, '--resume']);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.doesNotMatch(resumed.stdout, /epoch [12]\/4/);
  assert.match(resumed.stdout, /epoch 3\/4 train/);
  const reference = path.join(work, 'models', 'fe');
  assert.deepEqual(historyWithoutTimes(out), historyWithoutTimes(reference));
  assert.equal(sha(path.join(out, 'head', 'weights.bin')), sha(path.join(reference, 'head', 'weights.bin')));
});

test('Ctrl-C stops at a clean point, keeps the checkpoint and says how to resume', async () => {
  const out = path.join(work, 'models', 'interrupted');
  const child = spawn(process.execPath, [
    path.join(REPO_ROOT, 'bin', 'boat.js'),
    ...TRAIN.map((a) => (a === '4' ? '500' : a)),
    '--out',
    out,
  ]);
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (/epoch 1\/500 val/.test(stdout) && !child.killed) child.kill('SIGINT');
    });
    child.on('close', resolve);
  });
  assert.equal(code, 0, stderr);
  assert.match(stderr, /Interrupted: stopping after this epoch's checkpoint/);
  assert.match(
    stdout,
    /Stopped after epoch \d+; the checkpoint is in .*interrupted\.checkpoint\. Resume with the same command plus --resume/,
  );
  assert.ok(fs.existsSync(`${out}.checkpoint/state.json`));
});

test('evaluate prints accuracy and the confusion matrix and writes metrics.json', () => {
  const model = path.join(work, 'models', 'fe');
  const r = runCli(['evaluate', '--model', model, '--data', path.join(work, 'data', 'test')]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /accuracy \d\.\d{4} on 5 images/);
  assert.match(r.stdout, /confusion \(rows: actual, columns: predicted\)/);
  const metrics = JSON.parse(fs.readFileSync(path.join(model, 'evaluation', 'metrics.json'), 'utf8'));
  assert.equal(metrics.samples, 5);
  for (const png of ['confusion_matrix.png', 'confusion_matrix_normalized.png']) {
    assert.equal(
      fs
        .readFileSync(path.join(model, 'evaluation', png))
        .subarray(1, 4)
        .toString(),
      'PNG',
      png,
    );
  }
});

test('evaluating on a folder with other classes names the mismatch', () => {
  const other = path.join(work, 'other');
  fs.mkdirSync(path.join(other, 'buoy'), { recursive: true });
  for (const c of fs.readdirSync(path.join(work, 'data', 'test')).filter((n) => !n.startsWith('.'))) {
    fs.cpSync(path.join(work, 'data', 'test', c), path.join(other, c), { recursive: true });
  }
  fs.copyFileSync(
    path.join(other, 'kayak', fs.readdirSync(path.join(other, 'kayak'))[0]),
    path.join(other, 'buoy', 'b.jpg'),
  );
  const r = runCli(['evaluate', '--model', path.join(work, 'models', 'fe'), '--data', other]);
  assert.equal(r.status, 2);
  assert.match(
    r.stderr,
    /^boat: error: the model's 5 classes do not match the 6 classes of .*other \(not in the model: buoy\)\n$/,
  );
});

test('predict gives the top-k as JSON and draws the class on the photo', () => {
  const kayak = path.join(work, 'data', 'test', 'kayak');
  const image = path.join(
    kayak,
    fs.readdirSync(kayak).find((n) => n.endsWith('.jpg'))!,
  );
  const pngDir = path.join(work, 'pred');
  const r = runCli([
    'predict',
    '--model',
    path.join(work, 'models', 'fe'),
    '--json',
    '--top',
    '2',
    '--png',
    pngDir,
    image,
    path.join(work, 'missing.jpg'),
  ]);
  assert.equal(r.status, 0, r.stderr);
  const results = JSON.parse(r.stdout) as Array<{
    file: string;
    top?: Array<{ class: string; probability: number }>;
    error?: string;
  }>;
  assert.equal(results[0].top!.length, 2);
  assert.ok(results[0].top![0].probability >= results[0].top![1].probability);
  assert.deepEqual(results[1], { file: path.join(work, 'missing.jpg'), error: 'file not found' });
  const png = fs.readFileSync(path.join(pngDir, `${path.parse(image).name}.prediction.png`));
  assert.equal(png.subarray(1, 4).toString(), 'PNG');
});

test('explain writes a Grad-CAM PNG per image; an unknown --class is a one-line error', () => {
  const kayak = path.join(work, 'data', 'test', 'kayak');
  const image = path.join(
    kayak,
    fs.readdirSync(kayak).find((n) => n.endsWith('.jpg'))!,
  );
  const out = path.join(work, 'explain');
  const r = runCli(['explain', '--model', path.join(work, 'models', 'fe'), '--out', out, '--class', 'kayak', image]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /predicted \w+ \d+\.\d%; heatmap for kayak → /);
  const png = fs.readFileSync(path.join(out, `${path.parse(image).name}.gradcam.png`));
  assert.equal(png.subarray(1, 4).toString(), 'PNG');
  const bad = runCli(['explain', '--model', path.join(work, 'models', 'fe'), '--class', 'submarine', image]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^boat: error: --class submarine is not one of the model's classes: /);
});

test('evaluate --tta reports the accuracy change, the most confused pairs and the top losses', () => {
  const model = path.join(work, 'models', 'fe');
  const out = path.join(work, 'eval-tta');
  const r = runCli([
    'evaluate',
    '--model',
    model,
    '--data',
    path.join(work, 'data', 'test'),
    '--out',
    out,
    '--tta',
    '--top-losses',
    '4',
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stdout,
    /test-time augmentation \(6 views: centre, mirror, 4 corners\): accuracy \d\.\d{4} vs \d\.\d{4} \([+-]\d\.\d{4}\)/,
  );
  assert.match(r.stdout, /most confused|no misclassified images/);
  assert.match(r.stdout, /top losses \(predicted \/ actual \/ loss \/ probability\)/);
  const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8')) as {
    accuracy: number;
    tta: { accuracy: number; views: number; samples: number };
    top_losses: unknown[];
  };
  assert.equal(metrics.tta.views, 6);
  assert.equal(metrics.tta.samples, 5);
  assert.equal(metrics.top_losses.length, 4);
  assert.equal(fs.readFileSync(path.join(out, 'top_losses.png')).subarray(1, 4).toString(), 'PNG');
});

test("lr-find sweeps the head's learning rate on cached features and suggests one", () => {
  const out = path.join(work, 'lr-find');
  const r = runCli(['lr-find', '--data', path.join(work, 'data'), '--cache', cache, '--out', out, '--steps', '60']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stdout,
    /suggested learning rate for the head: \d\.\d{2}e-\d+ \(boat train --mode feature-extractor --lr [\d.e-]+\)/,
  );
  const rows = parseCsv(fs.readFileSync(path.join(out, 'lr_find.csv'), 'utf8'));
  assert.deepEqual(rows[0], ['lr', 'loss', 'smoothed']);
  assert.ok(rows.length > 10);
  assert.equal(fs.readFileSync(path.join(out, 'lr_find.png')).subarray(1, 4).toString(), 'PNG');
});

test('train --input-size 96 trains and evaluates on 96 px crops (Resize(110) + CenterCrop(96))', () => {
  const out = path.join(work, 'models', 'fe96');
  const r = runCli([
    'train',
    '--mode',
    'feature-extractor',
    '--data',
    path.join(work, 'data'),
    '--out',
    out,
    '--epochs',
    '1',
    '--cache',
    cache,
    '--input-size',
    '96',
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /features train: 20 images, 20 computed/); // not the 224 px features cached by the first test
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'metadata.json'), 'utf8')).inputSize, 96);
  const evaluated = runCli([
    'evaluate',
    '--model',
    out,
    '--data',
    path.join(work, 'data', 'test'),
    '--tta',
    '--out',
    path.join(work, 'eval96'),
  ]);
  assert.equal(evaluated.status, 0, evaluated.stderr);
  assert.match(evaluated.stdout, /accuracy/i);
});

test('train --class-weights balanced weighs the loss by class and records the weights', () => {
  const out = path.join(work, 'models', 'weighted');
  const r = runCli([
    'train',
    '--mode',
    'feature-extractor',
    '--data',
    path.join(work, 'data'),
    '--out',
    out,
    '--epochs',
    '1',
    '--cache',
    cache,
    '--class-weights',
    'balanced',
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /class weights: \w+ \d\.\d{2}, /);
  const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as { classWeights: number[] };
  assert.equal(config.classWeights.length, 5);
  const bad = runCli([
    'train',
    '--mode',
    'feature-extractor',
    '--data',
    path.join(work, 'data'),
    '--out',
    out,
    '--class-weights',
    'heavy',
  ]);
  assert.equal(bad.status, 2);
  assert.match(
    bad.stderr,
    /^boat: error: option '--class-weights <kind>' argument 'heavy' is invalid\. Allowed choices are none, balanced\.\n$/,
  );
});

test('train --label-smoothing: both modes record it in config.json, a resume with another value is refused, bad values are one-line errors', () => {
  const data = path.join(work, 'data');
  const fe = path.join(work, 'models', 'smoothed-fe');
  // Feature extractor on the features the first test cached.
  const r = runCli([...TRAIN, '--epochs', '1', '--label-smoothing', '0.1', '--out', fe]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /label smoothing 0\.1: training targets 0\.92 for the true class, 0\.02 for each other/);
  const configOf = (dir: string): { labelSmoothing: number } =>
    JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { labelSmoothing: number };
  assert.equal(configOf(fe).labelSmoothing, 0.1);
  const ft = path.join(work, 'models', 'smoothed-ft');
  const finetune = ['train', '--mode', 'finetune', '--data', data, '--input-size', '32', '--batch-size', '6'];
  const args = [...finetune, '--unfreeze', '1', '--seed', '7', '--out', ft];
  const tuned = runCli([...args, '--epochs', '1', '--label-smoothing', '0.05']);
  assert.equal(tuned.status, 0, tuned.stderr);
  assert.equal(configOf(ft).labelSmoothing, 0.05);
  const other = runCli([...args, '--epochs', '2', '--resume', '--label-smoothing', '0.2']);
  assert.equal(other.status, 2, other.stdout);
  assert.match(other.stderr, /^boat: error: cannot resume from .*: label-smoothing 0\.2 \(checkpoint: 0\.05\); /);
  assert.equal(other.stderr.trim().split('\n').length, 1, other.stderr);
  // Without the flag (0, the default) it differs too.
  assert.match(runCli([...args, '--epochs', '2', '--resume']).stderr, /label-smoothing 0 \(checkpoint: 0\.05\)/);
  const plain = runCli([...finetune, '--epochs', '1', '--out', path.join(work, 'models', 'plain-ft')]);
  assert.equal(plain.status, 0, plain.stderr);
  assert.equal(configOf(path.join(work, 'models', 'plain-ft')).labelSmoothing, 0, 'the default, recorded');
  const plainConfig = JSON.parse(fs.readFileSync(path.join(work, 'models', 'plain-ft', 'config.json'), 'utf8')) as {
    mixupAlpha: number;
    cutmixAlpha: number;
  };
  assert.deepEqual([plainConfig.mixupAlpha, plainConfig.cutmixAlpha], [0, 0], 'mixing off by default, recorded');
  for (const bad of ['-0.1', '1', 'abc', '']) {
    const refused = runCli([...TRAIN, '--label-smoothing', bad, '--out', path.join(work, 'models', 'never')]);
    assert.equal(refused.status, 2, bad);
    assert.match(
      refused.stderr,
      /^boat: error: option '--label-smoothing <x>' argument '.*' is invalid\. Expected a number from 0 up to \(not including\) 1\.\n$/,
      bad,
    );
  }
  assert.ok(!fs.existsSync(path.join(work, 'models', 'never')));
});

test('train --mixup-alpha / --cutmix-alpha: fine-tuning logs and records them, a resume with another alpha is refused; bad values and a feature extractor are one-line errors', () => {
  const never = path.join(work, 'models', 'never-mixed');
  for (const flag of ['--mixup-alpha', '--cutmix-alpha'])
    for (const bad of ['-1', 'abc', '', 'Infinity']) {
      const refused = runCli([...TRAIN, flag, bad, '--out', never]);
      assert.equal(refused.status, 2, `${flag} ${bad}`);
      assert.match(
        refused.stderr,
        /^boat: error: option '--(mixup|cutmix)-alpha <a>' argument '.*' is invalid\. Expected a number of at least 0\.\n$/,
        `${flag} ${bad}`,
      );
    }
  const cutmixFe = runCli([...TRAIN, '--cutmix-alpha', '1', '--out', never]);
  assert.equal(cutmixFe.status, 2, cutmixFe.stdout);
  assert.equal(
    cutmixFe.stderr,
    'boat: error: --cutmix-alpha mixes images: it applies to --mode finetune (and stage 2 of --recipe two-stage) only, not to cached features\n',
  );
  const bothFe = runCli([...TRAIN, '--mixup-alpha', '0.2', '--cutmix-alpha', '1', '--out', never]);
  assert.match(
    bothFe.stderr,
    /^boat: error: --mixup-alpha and --cutmix-alpha mix images: they apply to --mode finetune .*\n$/,
  );
  assert.ok(!fs.existsSync(never));

  const out = path.join(work, 'models', 'mixed-ft');
  const args = ['train', '--mode', 'finetune', '--data', path.join(work, 'data'), '--input-size', '32'];
  args.push('--batch-size', '6', '--unfreeze', '1', '--seed', '7', '--out', out);
  const r = runCli([...args, '--epochs', '1', '--mixup-alpha', '0.2', '--cutmix-alpha', '1']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /batch mixing: MixUp \(alpha 0\.2\) or CutMix \(alpha 1\), one chosen at random per batch/);
  const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual([config.mixupAlpha, config.cutmixAlpha], [0.2, 1]);
  const other = runCli([...args, '--epochs', '2', '--resume', '--mixup-alpha', '0.2', '--cutmix-alpha', '0.5']);
  assert.equal(other.status, 2, other.stdout);
  assert.match(other.stderr, /^boat: error: cannot resume from .*: cutmix-alpha 0\.5 \(checkpoint: 1\); /);
  assert.equal(other.stderr.trim().split('\n').length, 1, other.stderr);
});

test('train --rand-augment: fine-tuning logs, records and applies it, a resume with another setting is refused; bad values and a feature extractor are one-line errors', () => {
  const never = path.join(work, 'models', 'never-augmented');
  for (const bad of ['2', '0,9', '15,9', '2,31', 'a,b', '2,9,1', '']) {
    const refused = runCli([...TRAIN, '--rand-augment', bad, '--out', never]);
    assert.equal(refused.status, 2, bad);
    assert.match(
      refused.stderr,
      /^boat: error: option '--rand-augment <n,m>' argument '.*' is invalid\. Expected operations \(1-14\) and a magnitude \(0-30\), e\.g\. 2,9 \(torchvision's defaults\)\.\n$/,
      bad,
    );
  }
  const fe = runCli([...TRAIN, '--rand-augment', '2,9', '--out', never]);
  assert.equal(fe.status, 2, fe.stdout);
  assert.equal(
    fe.stderr,
    'boat: error: --rand-augment augments images: it applies to --mode finetune (and stage 2 of --recipe two-stage) only, not to cached features\n',
  );
  assert.ok(!fs.existsSync(never));

  const args = ['train', '--mode', 'finetune', '--data', path.join(work, 'data'), '--input-size', '32'];
  args.push('--batch-size', '6', '--unfreeze', '1', '--seed', '7', '--epochs', '1');
  const plain = path.join(work, 'models', 'plain-ft');
  const augmented = path.join(work, 'models', 'randaugment-ft');
  assert.equal(runCli([...args, '--out', plain]).status, 0);
  const r = runCli([...args, '--rand-augment', '2,9', '--out', augmented]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /RandAugment\(num_ops=2, magnitude=9\) on every training crop/);
  const config = JSON.parse(fs.readFileSync(path.join(augmented, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(config.randAugment, { numOps: 2, magnitude: 9 });
  // Same seed, same everything else: only the training images differ, so the train loss does and val's does not.
  const rows = (dir: string): string[][] => historyWithoutTimes(dir).slice(1);
  const [plainTrain, plainVal] = rows(plain);
  const [augTrain, augVal] = rows(augmented);
  assert.notEqual(augTrain[2], plainTrain[2], 'train loss');
  assert.equal(augVal[1], 'val');
  assert.equal(plainVal[1], 'val');
  const other = runCli([...args, '--epochs', '2', '--resume', '--rand-augment', '1,9', '--out', augmented]);
  assert.equal(other.status, 2, other.stdout);
  assert.match(other.stderr, /^boat: error: cannot resume from .*: rand-augment 1,9 \(checkpoint: 2,9\); /);
  const without = runCli([...args, '--epochs', '2', '--resume', '--out', augmented]);
  assert.match(without.stderr, /rand-augment unset \(checkpoint: 2,9\)/);
});

test('train --init starts from a saved model (two-stage fine-tuning); a missing or mismatched one is a one-line error', () => {
  const fe = path.join(work, 'models', 'fe'); // trained by the first test
  const data = path.join(work, 'data');
  const out = path.join(work, 'models', 'ft-from-fe');
  const base = [
    'train',
    '--mode',
    'finetune',
    '--data',
    data,
    '--epochs',
    '1',
    '--batch-size',
    '6',
    '--unfreeze',
    '1',
    '--seed',
    '7',
  ];
  // With a vanishing learning rate nothing moves, so the saved head must be the initial one.
  const r = runCli([...base, '--lr', '1e-30', '--init', fe, '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Starting from .*fe \(a feature-extractor model\)/);
  const headOf = (dir: string): Float32Array => {
    const bytes = fs.readFileSync(path.join(dir, 'head', 'weights.bin'));
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  };
  const maxDiff = (a: Float32Array, b: Float32Array): number =>
    a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
  assert.ok(maxDiff(headOf(out), headOf(fe)) < 1e-6, 'the head started from the saved one');
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'metadata.json'), 'utf8')).mode, 'finetune');
  // Without --init the head starts from fresh random weights.
  const fresh = runCli([...base, '--lr', '1e-30', '--out', path.join(work, 'models', 'ft-fresh')]);
  assert.equal(fresh.status, 0, fresh.stderr);
  assert.ok(maxDiff(headOf(path.join(work, 'models', 'ft-fresh')), headOf(fe)) > 1e-3, 'a fresh head differs');

  const notFinetune = runCli([
    'train',
    '--mode',
    'feature-extractor',
    '--freeze-bn',
    '--data',
    data,
    '--out',
    path.join(work, 'models', 'z'),
  ]);
  assert.equal(notFinetune.status, 2);
  assert.match(notFinetune.stderr, /^boat: error: --freeze-bn applies to --mode finetune only\n$/);
  const missing = runCli([
    ...base,
    '--init',
    path.join(work, 'no-such-model'),
    '--out',
    path.join(work, 'models', 'x'),
  ]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /^boat: error: model to start from \(--init\) not found: .*no-such-model\n$/);
  const shuffled = path.join(work, 'models', 'fe-other-order');
  fs.cpSync(fe, shuffled, { recursive: true });
  const meta = JSON.parse(fs.readFileSync(path.join(shuffled, 'metadata.json'), 'utf8'));
  meta.classes.reverse();
  fs.writeFileSync(path.join(shuffled, 'metadata.json'), JSON.stringify(meta));
  const mismatch = runCli([...base, '--init', shuffled, '--out', path.join(work, 'models', 'y')]);
  assert.equal(mismatch.status, 2);
  assert.equal(mismatch.stderr.trim().split('\n').length, 1, mismatch.stderr);
  assert.match(mismatch.stderr, /another order/);
});

test('evaluate --input-size runs a saved model at another crop size, pretrained or fine-tuned backbone alike', () => {
  for (const name of ['fe', 'ft-from-fe']) {
    // trained by the tests above: a feature extractor and a fine-tune
    const out = path.join(work, `eval-${name}-96`);
    const r = runCli([
      'evaluate',
      '--model',
      path.join(work, 'models', name),
      '--data',
      path.join(work, 'data', 'test'),
      '--input-size',
      '96',
      '--out',
      out,
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Input size 96 \(Resize\(110\) \+ CenterCrop\(96\)\); the model was trained at 224/);
    assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8')).input_size, 96);
  }
  const bad = runCli([
    'evaluate',
    '--model',
    path.join(work, 'models', 'fe'),
    '--data',
    path.join(work, 'data', 'test'),
    '--input-size',
    '8',
  ]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^boat: error: input size must be an integer of at least 32, got 8\n$/);
});

test('soup averages the weights of fine-tunes from one start; greedy keeps an ingredient only if val accuracy holds', async () => {
  const data = path.join(work, 'data');
  const val = path.join(data, 'val');
  const a = path.join(work, 'models', 'ft-from-fe'); // trained by the --init test (lr 1e-30: the head it started from)
  const b = path.join(work, 'models', 'ft-from-fe-b');
  const trained = runCli([
    'train',
    '--mode',
    'finetune',
    '--data',
    data,
    '--epochs',
    '1',
    '--batch-size',
    '6',
    '--unfreeze',
    '1',
    '--seed',
    '8',
    '--lr',
    '0.05',
    '--init',
    path.join(work, 'models', 'fe'),
    '--out',
    b,
  ]);
  assert.equal(trained.status, 0, trained.stderr);
  const floats = (dir: string, part: string): Float32Array => {
    const bytes = fs.readFileSync(path.join(dir, part, 'weights.bin'));
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  };
  const maxDiff = (x: Float32Array, y: Float32Array): number =>
    x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
  assert.ok(maxDiff(floats(a, 'backbone'), floats(b, 'backbone')) > 1e-4, 'the second fine-tune moved the last stage');

  const uniform = path.join(work, 'models', 'soup-uniform');
  const u = runCli(['soup', a, b, '--out', uniform, '--data', val, '--recipe', 'uniform']);
  assert.equal(u.status, 0, u.stderr);
  assert.match(u.stdout, /uniform soup of 2 of 2 models: val accuracy \d\.\d{4} \(best single model \d\.\d{4}\)/);
  for (const part of ['head', 'backbone']) {
    const [x, y, soup] = [floats(a, part), floats(b, part), floats(uniform, part)];
    assert.equal(soup.length, x.length, part);
    const worst = soup.reduce((m, v, i) => Math.max(m, Math.abs(v - (x[i] + y[i]) / 2) / Math.max(1, Math.abs(v))), 0);
    assert.ok(worst < 1e-6, `${part}: the soup is the element-wise mean (worst relative error ${worst})`);
  }
  const summary = JSON.parse(fs.readFileSync(path.join(uniform, 'soup.json'), 'utf8'));
  assert.equal(summary.recipe, 'uniform');
  assert.deepEqual(summary.ingredients, [a, b]);
  // The val accuracy it reports is what evaluate measures on the saved soup.
  const evalOut = path.join(work, 'eval-soup');
  assert.equal(runCli(['evaluate', '--model', uniform, '--data', val, '--out', evalOut]).status, 0);
  assert.equal(JSON.parse(fs.readFileSync(path.join(evalOut, 'metrics.json'), 'utf8')).accuracy, summary.val_acc);

  const greedy = path.join(work, 'models', 'soup-greedy');
  const g = runCli(['soup', b, a, '--out', greedy, '--data', val]);
  assert.equal(g.status, 0, g.stderr);
  const steps = JSON.parse(fs.readFileSync(path.join(greedy, 'soup.json'), 'utf8')).steps as Array<{
    model: string;
    val_acc: number;
    soup_val_acc: number;
    kept: boolean;
  }>;
  assert.equal(steps.length, 2);
  assert.ok(steps[0].val_acc >= steps[1].val_acc, 'best ingredient first');
  assert.equal(steps[1].kept, steps[1].soup_val_acc >= steps[0].val_acc, 'kept exactly when val accuracy did not drop');
  const greedySummary = JSON.parse(fs.readFileSync(path.join(greedy, 'soup.json'), 'utf8'));
  assert.equal(greedySummary.ingredients.length, steps[1].kept ? 2 : 1);
  assert.ok(greedySummary.val_acc >= steps[0].val_acc, 'a greedy soup is never worse on val than its best ingredient');
  const greedyEval = path.join(work, 'eval-soup-greedy');
  assert.equal(runCli(['evaluate', '--model', greedy, '--data', val, '--out', greedyEval]).status, 0);
  assert.equal(
    JSON.parse(fs.readFileSync(path.join(greedyEval, 'metrics.json'), 'utf8')).accuracy,
    greedySummary.val_acc,
  );

  // In-process: no tensors left behind once the soup is disposed.
  await selectBackend();
  const before = tf.memory().numTensors;
  const inProcess = await makeSoup([a, b], val, { recipe: 'greedy' });
  inProcess.model.dispose();
  assert.equal(tf.memory().numTensors, before);

  const fail = (args: string[], message: RegExp): void => {
    const r = runCli(['soup', ...args]);
    assert.equal(r.status, 2, r.stdout);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  };
  fail([a, '--out', path.join(work, 'models', 's1'), '--data', val], /a soup needs at least two models/);
  fail(
    [a, path.join(work, 'models', 'fe'), '--out', path.join(work, 'models', 's2'), '--data', val],
    /training modes differ/,
  );
  fail(
    [a, path.join(work, 'models', 'fe-other-order'), '--out', path.join(work, 'models', 's3'), '--data', val],
    /classes differ/,
  );
  fail([a, b, '--out', b, '--data', val], /is one of the models to average/);
  fail(
    [a, b, '--out', path.join(work, 'models', 's4'), '--data', val, '--recipe', 'best'],
    /^boat: error: option '--recipe <recipe>' argument 'best' is invalid\. Allowed choices are greedy, uniform\.\n$/,
  );
  assert.ok(!fs.existsSync(path.join(work, 'models', 's2')), 'nothing written on error');
});
