import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { findFailedCell, numberExecutedCells } from '../lib/cli/notebooks';
import { compareRunsFigure, compareRunsSpec, valCurve } from '../lib/plot/compare';
import { historyTable } from '../lib/train/progress';
import type { HistoryRow } from '../lib/train/train';
import { displayPath, showPathsRelativeUnder } from '../lib/util/paths';
import { tempDir } from './helpers';

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
