import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { notebookSettings } from '../lib/cli/main-job';
import { notebookEnv } from '../lib/cli/notebooks';
import { indexFrame, classCountFrame } from '../lib/data/frames';
import { buildFileIndex, classCounts } from '../lib/data';
import { precisionAsked, requestPrecision } from '../lib/engine';
import { parseCsv } from '../lib/util';
import { runCli, tempDir } from './helpers';

test('the main job makes the demo set when there is no data, and writes its outputs to --out', () => {
  const cwd = tempDir();
  const r = runCli(['main', '--out', 'runs/main', '--demo-per-class', '6', '--epochs', '3'], cwd);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /SYNTHETIC demo set/);
  const out = path.join(cwd, 'runs', 'main');
  for (const f of [
    'index.csv',
    'class_counts.csv',
    'image_sizes.csv',
    'audit.json',
    'audit.txt',
    'data/split.csv',
    'model.json',
    'summary.json',
    'models/resnet50_conv/metadata.json',
    'models/resnet50_conv/history.csv',
    'resnet50_conv_confusion_matrix.png',
    'resnet50_conv_confusion_matrix_normalized.png',
    'predictions/resnet50_conv_kayak.png',
    'models/resnet50_ft/metadata.json',
    'models/resnet50_ft/backbone/model.json',
    'resnet50_ft_confusion_matrix.png',
    'predictions/resnet50_ft_kayak.png',
  ]) {
    assert.ok(fs.existsSync(path.join(out, f)), f);
  }
  const counts = parseCsv(fs.readFileSync(path.join(out, 'class_counts.csv'), 'utf8'));
  assert.deepEqual(
    counts.slice(1).map((row) => row[1]),
    ['6', '6', '6', '6', '6'],
  );
  assert.match(r.stdout, /\[5\/8\] Model: Using wasm backend/);
  assert.match(r.stdout, /trainable: 24,060,421 when fine-tuning, 525,829 as a feature extractor/);
  // Fine-tuning runs on wasm now, briefly by default, and the log says how to run the full one.
  assert.match(
    r.stdout,
    /Training resnet50_ft \(finetune, 2 epochs, last 1 of 5 stages unfrozen; --unfreeze all for the whole network\)/,
  );
  assert.match(r.stdout, /Training resnet50_conv \(feature-extractor, 3 epochs\)/);
  assert.match(r.stdout, /\[7\/8\] Predictions \(resnet50_conv\): cruise_ship → /);
  assert.match(r.stdout, /05-inference\.ipynb: ok/);
  assert.match(r.stdout, /06-going-further\.ipynb: ok/);
  assert.ok(fs.existsSync(path.join(out, 'notebooks', '04-feature-extractor.html')));
  const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
  assert.equal(typeof summary.resnet50_conv.test_acc, 'number');
  assert.equal(typeof summary.resnet50_ft.test_acc, 'number');
  assert.equal(summary.resnet50_ft.unfrozen_stages, 1);
  assert.equal(summary.resnet50_ft.epochs, 2);
  // A second run reuses data/boats (now the demo set) and says it is synthetic; --no-notebooks stops before them.
  const again = runCli(['main', '--out', 'runs/main-again', '--epochs', '1', '--no-notebooks'], cwd);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /using .*data\/boats \(the SYNTHETIC demo set\)/);
  assert.match(again.stdout, /^\[8\/8\] Notebooks: skipped \(--no-notebooks\)$/m);
  assert.ok(fs.existsSync(path.join(cwd, 'runs', 'main-again', 'summary.json')));
  assert.ok(!fs.existsSync(path.join(cwd, 'runs', 'main-again', 'notebooks')));
});

test("the notebooks get BOAT_PRECISION only when the precision was asked for, so a defaulted run's notebooks default too", () => {
  const run = { out: path.resolve('runs', 'main'), epochs: 3, finetuneEpochs: 2, unfreeze: 1, seed: 38 };
  // What a notebook receives: runNotebooks puts the main job's settings over the inherited environment.
  const received = (): NodeJS.ProcessEnv => notebookEnv(notebookSettings(run));
  const inherited = process.env.BOAT_PRECISION;
  try {
    delete process.env.BOAT_PRECISION;
    requestPrecision(undefined);
    const defaulted = received();
    assert.equal(defaulted.BOAT_PRECISION, undefined);
    assert.equal(precisionAsked(defaulted), false, "the notebooks' selectBackend stays quiet, as the CLI's");
    assert.equal(defaulted.BOAT_EPOCHS, '3');
    assert.equal(defaulted.BOAT_UNFREEZE, '1');
    assert.equal(defaulted.BOAT_DATA_ROOT, path.join(run.out, 'notebooks-data'));

    requestPrecision('fp32'); // --precision fp32
    const flagged = received();
    requestPrecision(undefined);
    assert.equal(flagged.BOAT_PRECISION, 'fp32');
    assert.equal(precisionAsked(flagged), true);

    process.env.BOAT_PRECISION = 'auto';
    assert.equal(received().BOAT_PRECISION, 'auto', 'an inherited BOAT_PRECISION is passed on');
  } finally {
    requestPrecision(undefined);
    if (inherited === undefined) delete process.env.BOAT_PRECISION;
    else process.env.BOAT_PRECISION = inherited;
  }
});

test('DataFrame views wrap the plain rows (danfojs)', async () => {
  const cwd = tempDir();
  const r = runCli(['data', 'demo', '--out', 'd', '--per-class', '2'], cwd);
  assert.equal(r.status, 0, r.stderr);
  const index = await buildFileIndex(path.join(cwd, 'd'));
  const df = indexFrame(index.rows);
  assert.deepEqual(df.shape, [10, 4]);
  assert.deepEqual(df.columns, ['category', 'filepath', 'width', 'height']);
  assert.deepEqual(classCountFrame(classCounts(index.rows)).column('count').values, [2, 2, 2, 2, 2]);
});
