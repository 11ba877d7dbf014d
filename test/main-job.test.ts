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
import { findChromium } from '../lib/plot/plotly';
import { REPO_ROOT, runCli, skipRestUnlessCi, tempDir } from './helpers';

const NOTEBOOKS = [
  '01-data',
  '02-preprocessing',
  '03-finetuning',
  '04-feature-extractor',
  '05-inference',
  '06-going-further',
  '07-data-quality',
];

/** What every notebook the main job executed must hold: its outputs, figures and PNG charts. */
function checkExecutedNotebooks(dir: string, log: string, plotly: boolean): void {
  for (const n of NOTEBOOKS) {
    assert.match(log, new RegExp(`${n}\\.ipynb: ok`));
    assert.ok(fs.existsSync(path.join(dir, `${n}.ipynb`)), n);
    assert.ok(fs.existsSync(path.join(dir, `${n}.html`)), `${n}.html`);
  }
  assert.deepEqual(fs.readdirSync(path.join(dir, 'figures')).sort(), [
    '01_class_counts.png',
    '01_image_sizes.png',
    '03_accuracy.png',
    '03_loss.png',
    '03_recipe_vs_tutorial.png',
    '04_accuracy.png',
    '04_loss.png',
    '06_lr_find.png',
    '07_duplicates.png',
    '07_label_issues.png',
  ]);
  type Notebook = {
    cells: Array<{
      cell_type: string;
      execution_count?: number;
      outputs?: Array<{ data?: Record<string, string>; text?: string | string[] }>;
    }>;
  };
  const read = (n: string): Notebook => JSON.parse(fs.readFileSync(path.join(dir, `${n}.ipynb`), 'utf8')) as Notebook;
  // Every chart is a PNG output in the executed notebook (PNG shows in every front end).
  const pngs = (n: string): number =>
    read(n)
      .cells.flatMap((c) => c.outputs ?? [])
      .filter((o) => o.data?.['image/png']).length;
  assert.equal(pngs('01-data'), 3);
  assert.equal(pngs('04-feature-extractor'), 2);
  assert.ok(pngs('05-inference') >= 4);
  assert.equal(pngs('06-going-further'), 3); // Grad-CAM grid, top losses, learning-rate finder
  assert.equal(pngs('07-data-quality'), 2); // the two review grids
  const code = read('04-feature-extractor').cells.filter((c) => c.cell_type === 'code');
  assert.deepEqual(
    code.map((c) => c.execution_count),
    code.map((_, i) => i + 1),
    'cells numbered as executed',
  );
  // The curves are Plotly's (Chromium is installed by scripts/run.sh), not the Vega-Lite fallback.
  const text = code
    .flatMap((c) => c.outputs ?? [])
    .map((o) => [o.text ?? ''].flat().join(''))
    .join('');
  if (plotly) assert.doesNotMatch(text, /showing the Vega-Lite version/);
}

// One run of the main job is also the test that every notebook executes headless: a second full
// execution of the seven notebooks (`boat notebooks`) would add minutes and check nothing more.
test('the main job makes the demo set when there is no data, writes its outputs to --out and executes every notebook', (t) => {
  const cwd = tempDir();
  const committed = Object.fromEntries(
    fs
      .readdirSync(path.join(REPO_ROOT, 'notebooks'))
      .map((n) => [n, fs.readFileSync(path.join(REPO_ROOT, 'notebooks', n), 'utf8')]),
  );
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
  const plotly = !!findChromium();
  checkExecutedNotebooks(path.join(out, 'notebooks'), r.stdout, plotly);
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

  // `boat notebooks` with BOAT_RESUME=1 (resume: true) continues notebook 03's fine-tune from the checkpoint
  // the main job's run left: the same settings, one epoch more.
  const settings = notebookSettings({ out, epochs: 3, finetuneEpochs: 2, unfreeze: 1, seed: 38 });
  const resumed = runCli(['notebooks', '--only', '03', '--out', path.join(cwd, 'resumed')], cwd, {
    ...settings,
    BOAT_CACHE_DIR: path.join(cwd, '.cache', 'features'),
    BOAT_FT_EPOCHS: '3',
    BOAT_RESUME: '1',
  });
  assert.equal(resumed.status, 0, resumed.stderr + resumed.stdout);
  const nb03 = fs.readFileSync(path.join(cwd, 'resumed', '03-finetuning.ipynb'), 'utf8');
  assert.match(nb03, /Resuming from [^"]*resnet50_ft\.checkpoint/);
  const history = fs
    .readFileSync(path.join(settings.BOAT_MODELS, 'resnet50_ft', 'history.csv'), 'utf8')
    .trim()
    .split('\n');
  assert.deepEqual(
    history.slice(1).map((l) => l.split(',').slice(0, 2).join(',')),
    ['0,train', '0,val', '1,train', '1,val', '2,train', '2,val'],
  );
  // The committed notebooks are untouched.
  for (const [n, text] of Object.entries(committed))
    assert.equal(fs.readFileSync(path.join(REPO_ROOT, 'notebooks', n), 'utf8'), text, n);
  // Last, so that every other check has run: without Chromium the Plotly check was not made, and says so.
  skipRestUnlessCi(
    t,
    !plotly &&
      "Chromium not installed (apt-get install chromium): the check that the curves are Plotly's, not the Vega-Lite fallback, was not made",
  );
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
