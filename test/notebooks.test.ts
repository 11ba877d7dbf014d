import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { findFailedCell, numberExecutedCells } from '../lib/cli/notebooks';
import { compareRunsFigure, compareRunsSpec, valCurve } from '../lib/plot/compare';
import { findChromium } from '../lib/plot/plotly';
import { historyTable } from '../lib/train/progress';
import type { HistoryRow } from '../lib/train/train';
import { displayPath, showPathsRelativeUnder } from '../lib/util/paths';
import { REPO_ROOT, runCli, skipRestUnlessCi, skipUnlessCi, tempDir } from './helpers';

const hasJupyter =
  spawnSync('/usr/bin/python3', ['-c', 'import nbconvert, nbclient'], { encoding: 'utf8' }).status === 0;

/** A history row whose loss is 1 − acc, at lr 1e-3 and 2 s a phase. */
const row = (epoch: number, phase: 'train' | 'val', acc: number): HistoryRow => ({
  epoch,
  phase,
  loss: 1 - acc,
  acc,
  lr: 1e-3,
  seconds: 2,
  imagesPerSecond: 10,
});

test('the history prints one line per epoch, train and val side by side, the best val epoch marked', () => {
  const lines = historyTable([
    row(0, 'train', 0.5),
    row(0, 'val', 0.6),
    row(1, 'train', 0.7),
    row(1, 'val', 0.8),
    row(2, 'train', 0.9),
    row(2, 'val', 0.7),
  ]).split('\n');
  assert.equal(lines.length, 4);
  assert.match(lines[0], /^epoch\s+train loss\s+train acc\s+val loss\s+val acc\s+lr\s+seconds$/);
  assert.match(lines[1], /^\s+1\s+0\.5000\s+0\.5000\s+0\.4000\s+0\.6000\s+1\.0e-3\s+4\.0$/);
  assert.match(lines[2], /^\s+2\s.*0\.8000.*← best val$/);
  assert.doesNotMatch(lines[3], /best/);
});

test("a two-stage recipe's history gets a stage column, and the marked epoch is the one the recipe keeps", () => {
  const staged = (stage: 1 | 2, epoch: number, phase: 'train' | 'val', acc: number) => ({
    stage,
    ...row(epoch, phase, acc),
  });
  const stage1 = [
    staged(1, 0, 'train', 0.5),
    staged(1, 0, 'val', 0.9),
    staged(1, 1, 'train', 0.6),
    staged(1, 1, 'val', 0.8),
  ];
  // Stage 2 equal to stage 1's best: the recipe keeps stage 2 (its first best epoch).
  const kept2 = historyTable([
    ...stage1,
    staged(2, 0, 'train', 0.7),
    staged(2, 0, 'val', 0.9),
    staged(2, 1, 'val', 0.9),
  ]);
  const lines = kept2.split('\n');
  assert.match(lines[0], /^stage\s+epoch\s+train loss/);
  assert.equal(lines.length, 5, 'one line per (stage, epoch), epochs counted within each stage');
  assert.match(lines[3], /^\s+2\s+1\s.*← best val$/);
  assert.equal(kept2.match(/best val/g)?.length, 1);
  // Stage 2 below stage 1's best: stage 1's best epoch is the one kept.
  const kept1 = historyTable([...stage1, staged(2, 0, 'val', 0.85), staged(2, 1, 'val', 0.88)]).split('\n');
  assert.match(kept1[1], /^\s+1\s+1\s.*← best val$/);
  assert.doesNotMatch(kept1.slice(2).join('\n'), /best/);
});

test('runs compared over training time: val accuracy at the end of each val phase, after the start offset', () => {
  const h = (epoch: number, phase: 'train' | 'val', acc: number, seconds: number): HistoryRow => ({
    epoch,
    phase,
    loss: 0,
    acc,
    lr: 1e-3,
    seconds,
    imagesPerSecond: 1,
  });
  const points = valCurve({
    name: 'r',
    history: [h(0, 'train', 0.5, 60), h(0, 'val', 0.6, 30), h(1, 'train', 0.7, 60), h(1, 'val', 0.8, 30)],
    startSeconds: 90,
  });
  assert.deepEqual(points, [
    { minutes: 3, acc: 0.6 },
    { minutes: 4.5, acc: 0.8 },
  ]);
  const figure = compareRunsFigure([
    { name: 'a', history: [h(0, 'val', 0.5, 60)] },
    { name: 'b', history: [h(0, 'val', 0.7, 120)] },
  ]);
  assert.deepEqual(
    figure.data.map((t) => [t.name, t.x, t.y]),
    [
      ['a', [1], [0.5]],
      ['b', [2], [0.7]],
    ],
  );
  const spec = compareRunsSpec([{ name: 'a', history: [h(0, 'val', 0.5, 60)] }]) as { data: { values: unknown[] } };
  assert.deepEqual(spec.data.values, [{ run: 'a', minutes: 1, acc: 0.5 }]);
});

test('paths under the chosen root are shown relative to the working directory, others stay absolute', () => {
  const root = tempDir();
  const cwd = process.cwd();
  fs.mkdirSync(path.join(root, 'notebooks'));
  try {
    assert.equal(displayPath(path.join(root, 'runs', 'x')), path.join(root, 'runs', 'x'), 'absolute by default');
    showPathsRelativeUnder(root);
    process.chdir(path.join(root, 'notebooks'));
    assert.equal(displayPath(path.join(root, 'runs', 'data')), path.join('..', 'runs', 'data'));
    assert.equal(displayPath('.'), '.');
    assert.equal(displayPath('/elsewhere/photos'), '/elsewhere/photos');
    assert.equal(displayPath(`${root}-sibling/x`), `${root}-sibling/x`, 'a sibling with the same prefix is outside');
  } finally {
    process.chdir(cwd);
    showPathsRelativeUnder(undefined);
  }
});

test('a failing cell is found with its source and error text', () => {
  const nb = (outputs: unknown[]): string =>
    JSON.stringify({
      cells: [
        { cell_type: 'markdown', source: 'x' },
        { cell_type: 'code', source: ['const a = 1;\n', 'throw new Error("boom")'], outputs },
      ],
    });
  assert.deepEqual(
    findFailedCell(nb([{ output_type: 'stream', name: 'stderr', text: 'Error: boom\n    at <anonymous>' }])),
    { index: 1, source: 'const a = 1;\nthrow new Error("boom")', error: 'Error: boom\n    at <anonymous>' },
  );
  assert.equal(
    findFailedCell(nb([{ output_type: 'stream', name: 'stderr', text: "1:7 - Cannot find name 'b'." }]))?.index,
    1,
  );
  assert.equal(
    findFailedCell(nb([{ output_type: 'stream', name: 'stdout', text: 'Error in the data is fine on stdout' }])),
    null,
  );
});

test('executed code cells are numbered in order (tslab leaves the count empty), execute results too', () => {
  const nb = JSON.stringify({
    cells: [
      { cell_type: 'code', execution_count: null, source: 'a', outputs: [] },
      { cell_type: 'markdown', source: 'text' },
      {
        cell_type: 'code',
        execution_count: null,
        source: 'b',
        outputs: [
          { output_type: 'execute_result', execution_count: null, data: {} },
          { output_type: 'stream', name: 'stdout', text: 'x' },
        ],
      },
    ],
  });
  const numbered = JSON.parse(numberExecutedCells(nb));
  assert.deepEqual(
    numbered.cells.map((c: { execution_count?: number }) => c.execution_count),
    [1, undefined, 2],
  );
  assert.equal(numbered.cells[2].outputs[0].execution_count, 2);
  assert.equal(numbered.cells[2].outputs[1].execution_count, undefined);
});

test(
  'all notebooks execute headless on the demo set (npm run notebooks)',
  {
    skip: skipUnlessCi(
      !hasJupyter && 'Debian Jupyter (nbconvert) is not installed; bash scripts/run.sh setup installs it',
    ),
  },
  (t) => {
    const work = tempDir();
    const out = path.join(work, 'run');
    const before = Object.fromEntries(
      fs
        .readdirSync(path.join(REPO_ROOT, 'notebooks'))
        .map((n) => [n, fs.readFileSync(path.join(REPO_ROOT, 'notebooks', n), 'utf8')]),
    );
    process.env.BOAT_DATA_ROOT = path.join(work, 'data');
    process.env.BOAT_MODELS = path.join(work, 'models');
    process.env.BOAT_DEMO_PER_CLASS = '6';
    process.env.BOAT_EPOCHS = '3';
    process.env.BOAT_FT_EPOCHS = '1'; // notebook 03 fine-tunes the last stage for one epoch
    process.env.BOAT_UNFREEZE = '1';
    process.env.BOAT_CACHE_DIR = path.join(work, 'cache');
    const r = runCli(['notebooks', '--out', out]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    for (const n of [
      '01-data',
      '02-preprocessing',
      '03-finetuning',
      '04-feature-extractor',
      '05-inference',
      '06-going-further',
      '07-data-quality',
    ]) {
      assert.ok(fs.existsSync(path.join(out, `${n}.ipynb`)), n);
      assert.ok(fs.existsSync(path.join(out, `${n}.html`)), `${n}.html`);
    }
    const figures = fs.readdirSync(path.join(out, 'figures')).sort();
    assert.deepEqual(figures, [
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
    // Every chart is a PNG output in the executed notebook (PNG shows in every front end).
    const pngs = (n: string): number =>
      (
        JSON.parse(fs.readFileSync(path.join(out, `${n}.ipynb`), 'utf8')) as {
          cells: Array<{ outputs?: Array<{ data?: Record<string, string> }> }>;
        }
      ).cells
        .flatMap((c) => c.outputs ?? [])
        .filter((o) => o.data?.['image/png']).length;
    assert.equal(pngs('01-data'), 3);
    assert.equal(pngs('04-feature-extractor'), 2);
    assert.ok(pngs('05-inference') >= 4);
    assert.equal(pngs('06-going-further'), 3); // Grad-CAM grid, top losses, learning-rate finder
    assert.equal(pngs('07-data-quality'), 2); // the two review grids
    const nb04 = JSON.parse(fs.readFileSync(path.join(out, '04-feature-extractor.ipynb'), 'utf8')) as {
      cells: Array<{ cell_type: string; execution_count?: number; outputs?: Array<{ text?: string | string[] }> }>;
    };
    const code = nb04.cells.filter((c) => c.cell_type === 'code');
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
    const plotly = !!findChromium();
    if (plotly) assert.doesNotMatch(text, /showing the Vega-Lite version/);
    // BOAT_RESUME=1 (resume: true) continues notebook 03's fine-tune from its checkpoint: one more epoch.
    process.env.BOAT_RESUME = '1';
    process.env.BOAT_FT_EPOCHS = '2';
    const resumed = runCli(['notebooks', '--only', '03', '--out', path.join(work, 'resumed')]);
    delete process.env.BOAT_RESUME;
    assert.equal(resumed.status, 0, resumed.stderr + resumed.stdout);
    const nb03 = fs.readFileSync(path.join(work, 'resumed', '03-finetuning.ipynb'), 'utf8');
    assert.match(nb03, /Resuming from [^"]*resnet50_ft\.checkpoint/);
    const history = fs
      .readFileSync(path.join(work, 'models', 'resnet50_ft', 'history.csv'), 'utf8')
      .trim()
      .split('\n');
    assert.deepEqual(
      history.slice(1).map((l) => l.split(',').slice(0, 2).join(',')),
      ['0,train', '0,val', '1,train', '1,val'],
    );
    // The committed notebooks are untouched.
    for (const [n, text] of Object.entries(before))
      assert.equal(fs.readFileSync(path.join(REPO_ROOT, 'notebooks', n), 'utf8'), text, n);
    // Last, so that every other check has run: without Chromium the Plotly check was not made, and says so.
    skipRestUnlessCi(
      t,
      !plotly &&
        "Chromium not installed (apt-get install chromium): the check that the curves are Plotly's, not the Vega-Lite fallback, was not made",
    );
  },
);
