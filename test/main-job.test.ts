import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { indexFrame, classCountFrame } from '../lib/data/frames';
import { buildFileIndex, classCounts } from '../lib/data';
import { parseCsv } from '../lib/util';
import { runCli, tempDir } from './helpers';

test('the main job makes the demo set when there is no data, and writes its outputs to --out', () => {
  const cwd = tempDir();
  const r = runCli(['main', '--out', 'runs/main'], cwd);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /SYNTHETIC demo set/);
  const out = path.join(cwd, 'runs', 'main');
  for (const f of ['index.csv', 'class_counts.csv', 'image_sizes.csv', 'audit.json', 'audit.txt', 'data/split.csv', 'model.json']) {
    assert.ok(fs.existsSync(path.join(out, f)), f);
  }
  const counts = parseCsv(fs.readFileSync(path.join(out, 'class_counts.csv'), 'utf8'));
  assert.deepEqual(counts.slice(1).map((row) => row[1]), ['40', '40', '40', '40', '40']);
  assert.match(r.stdout, /\[5\/5\] Model: Using wasm backend/);
  assert.match(r.stdout, /trainable: 24,060,421 when fine-tuning, 525,829 as a feature extractor/);
  // A second run reuses data/boats (now the demo set) and says it is synthetic.
  const again = runCli(['main', '--out', 'runs/main'], cwd);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /using .*data\/boats \(the SYNTHETIC demo set\)/);
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
