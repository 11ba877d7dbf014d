import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { assignSubsets, LabelledFile, readSplitCsv, scanImageFolder, splitDataset, subsetSizes } from '../lib/data';
import { Random } from '../lib/util';
import { makeImageFolder, tempDir, writeImage } from './helpers';

test('subset sizes stay within ±1 of 60/20/20 for every class size', () => {
  for (let n = 1; n <= 500; n++) {
    const s = subsetSizes(n);
    assert.equal(s.train + s.val + s.test, n);
    assert.ok(Math.abs(s.train - 0.6 * n) <= 1, `train ${s.train} for n=${n}`);
    assert.ok(Math.abs(s.val - 0.2 * n) <= 1, `val ${s.val} for n=${n}`);
    assert.ok(Math.abs(s.test - 0.2 * n) <= 1, `test ${s.test} for n=${n}`);
  }
});

function fakeFiles(counts: Record<string, number>): LabelledFile[] {
  return Object.entries(counts).flatMap(([label, n]) =>
    Array.from({ length: n }, (_, i) => ({ label, file: `/d/${label}/${i}.jpg`, relative: `${label}/${i}.jpg` })),
  );
}

test('stratified assignment: each class split 60/20/20 (±1), every file exactly once', () => {
  const counts = { sailboat: 389, kayak: 203, gondola: 193, cruise_ship: 191, ferry_boat: 63 };
  const files = fakeFiles(counts);
  const assigned = assignSubsets(files, Object.keys(counts), 38);
  assert.equal(assigned.length, files.length);
  assert.equal(new Set(assigned.map((a) => a.file)).size, files.length);
  for (const [label, n] of Object.entries(counts)) {
    for (const [subset, share] of [
      ['train', 0.6],
      ['val', 0.2],
      ['test', 0.2],
    ] as const) {
      const k = assigned.filter((a) => a.label === label && a.subset === subset).length;
      assert.ok(Math.abs(k - share * n) <= 1, `${label}/${subset}: ${k} of ${n}`);
    }
  }
});

test('assignment does not depend on input order, and does depend on the seed', () => {
  const files = fakeFiles({ a: 50, b: 30 });
  const reference = assignSubsets(files, ['a', 'b'], 38);
  for (let k = 0; k < 5; k++) {
    const shuffled = new Random(k).shuffled(files);
    assert.deepEqual(assignSubsets(shuffled, ['a', 'b'], 38), reference);
  }
  assert.notDeepEqual(assignSubsets(files, ['a', 'b'], 39), reference);
});

test('splitDataset keeps the top classes, materialises folders and split.csv, identical across file creation orders', async () => {
  const counts = { sailboat: 15, kayak: 10, gondola: 8, buoy: 3 };
  const a = tempDir();
  const b = tempDir();
  await makeImageFolder(path.join(a, 'boats'), counts);
  // Same files, created in reverse order (so directory listing order can differ).
  const entries = Object.entries(counts).reverse();
  for (const [label, n] of entries) {
    for (let i = n - 1; i >= 0; i--) {
      fs.mkdirSync(path.join(b, 'boats', label), { recursive: true });
      fs.copyFileSync(
        path.join(a, 'boats', label, `${label}_${String(i).padStart(3, '0')}.jpg`),
        path.join(b, 'boats', label, `${label}_${String(i).padStart(3, '0')}.jpg`),
      );
    }
  }
  const ra = await splitDataset({ data: path.join(a, 'boats'), out: path.join(a, 'out'), top: 3, seed: 38 });
  const rb = await splitDataset({ data: path.join(b, 'boats'), out: path.join(b, 'out'), top: 3, seed: 38 });
  assert.deepEqual(ra.classes, ['gondola', 'kayak', 'sailboat']);
  assert.deepEqual(ra.dropped, [{ class: 'buoy', images: 3 }]);
  assert.deepEqual(ra.rows, rb.rows);
  assert.equal(fs.readFileSync(ra.csv, 'utf8'), fs.readFileSync(rb.csv, 'utf8'));
  assert.deepEqual(ra.counts.sailboat, { train: 9, val: 3, test: 3 });
  for (const row of ra.rows) {
    const materialised = path.join(a, 'out', row.subset, row.class, path.basename(row.path));
    assert.ok(fs.existsSync(materialised), materialised);
  }
  assert.equal(
    scanImageFolder(path.join(a, 'out', 'train')).files.length,
    ra.rows.filter((r) => r.subset === 'train').length,
  );
  assert.deepEqual(
    readSplitCsv(ra.csv)
      .map((r) => r.file)
      .sort(),
    scanImageFolder(path.join(a, 'boats'))
      .files.filter((f) => f.label !== 'buoy')
      .map((f) => f.file)
      .sort(),
  );
});

test('re-running a split replaces the previous one cleanly', async () => {
  const dir = tempDir();
  await makeImageFolder(path.join(dir, 'boats'), { sailboat: 10, kayak: 6, buoy: 5 });
  await splitDataset({ data: path.join(dir, 'boats'), out: dir, seed: 1 });
  assert.ok(fs.existsSync(path.join(dir, 'train', 'buoy')));
  const second = await splitDataset({ data: path.join(dir, 'boats'), out: dir, top: 2, seed: 2 });
  for (const subset of ['train', 'val', 'test']) {
    assert.deepEqual(
      fs
        .readdirSync(path.join(dir, subset))
        .filter((n) => !n.startsWith('.'))
        .sort(),
      ['kayak', 'sailboat'],
    );
  }
  const onDisk = ['train', 'val', 'test'].reduce((n, s) => n + scanImageFolder(path.join(dir, s)).files.length, 0);
  assert.equal(onDisk, second.rows.length);
  assert.equal(fs.readdirSync(dir).filter((n) => n.includes('.tmp-') || n.includes('.old-')).length, 0);
});

test('a split never replaces a train/ folder that it did not make', async () => {
  const dir = tempDir();
  await makeImageFolder(path.join(dir, 'boats'), { sailboat: 5 });
  await writeImage(path.join(dir, 'train', 'mine.jpg'), 99);
  await assert.rejects(splitDataset({ data: path.join(dir, 'boats'), out: dir }), /was not made by boat/);
  assert.ok(fs.existsSync(path.join(dir, 'train', 'mine.jpg')));
});
