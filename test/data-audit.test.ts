import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { auditDataset, splitDataset } from '../lib/data';
import { makeImageFolder, SHARED_PHOTOS, tempDir, writeImage } from './helpers';

test('audit finds planted duplicates within and across classes, unreadable and non-image files', async () => {
  const dir = tempDir();
  const data = path.join(dir, 'boats');
  await makeImageFolder(data, { sailboat: 6, gondola: 5, kayak: 4 });
  fs.copyFileSync(path.join(data, 'sailboat', 'sailboat_000.jpg'), path.join(data, 'sailboat', 'copy.jpg'));
  fs.copyFileSync(path.join(data, 'gondola', 'gondola_001.jpg'), path.join(data, 'kayak', 'same_as_gondola.jpg'));
  const good = fs.readFileSync(path.join(data, 'kayak', 'kayak_000.jpg'));
  fs.writeFileSync(path.join(data, 'kayak', 'truncated.jpg'), good.subarray(0, Math.floor(good.length / 2)));
  fs.writeFileSync(path.join(data, 'kayak', 'text.jpg'), 'this is text, not a JPEG');
  fs.writeFileSync(path.join(data, 'kayak', '.DS_Store'), 'x');
  await writeImage(path.join(data, 'kayak', 'really_png.jpg'), 500, { format: 'png' });

  const report = await auditDataset({ data });
  const within = report.duplicates.filter((d) => d.kind === 'within-class');
  const across = report.duplicates.filter((d) => d.kind === 'across-classes');
  assert.deepEqual(
    within.map((d) => d.files.map((f) => f.path).sort()),
    [['sailboat/copy.jpg', 'sailboat/sailboat_000.jpg']],
  );
  assert.deepEqual(
    across.map((d) => d.files.map((f) => f.path).sort()),
    [['gondola/gondola_001.jpg', 'kayak/same_as_gondola.jpg']],
  );
  assert.deepEqual(report.unreadable.map((u) => path.basename(u.path)).sort(), ['text.jpg', 'truncated.jpg']);
  assert.ok(report.skipped.some((s) => s.path.endsWith('.DS_Store')));
  assert.deepEqual(
    report.notes.map((n) => [path.basename(n.path), n.reason]),
    [['really_png.jpg', 'a PNG file with a .jpg extension']],
  );
  assert.equal(report.images, 6 + 1 + 5 + 4 + 1 + 1);
  assert.equal(report.leakage, undefined);
});

test('audit with a split lists duplicates that straddle subsets (leakage)', async () => {
  const dir = tempDir();
  const data = path.join(dir, 'boats');
  await makeImageFolder(data, { sailboat: 10, gondola: 10 });
  // Plant the same image under many names so some copies are certain to land in different subsets.
  for (let i = 0; i < 6; i++)
    fs.copyFileSync(path.join(data, 'sailboat', 'sailboat_000.jpg'), path.join(data, 'gondola', `dup_${i}.jpg`));
  const split = await splitDataset({ data, out: dir, seed: 38 });
  const report = await auditDataset({ data, split: split.csv });
  assert.equal(report.duplicates.length, 1);
  const group = report.duplicates[0];
  const subsets = new Set(group.files.map((f) => f.subset));
  assert.ok(subsets.size > 1, 'planted copies fall in more than one subset');
  assert.deepEqual(report.leakage, [group]);
  for (const f of group.files) {
    assert.equal(f.subset, split.rows.find((r) => r.path === `boats/${f.path}`)?.subset);
  }
});

test(
  'audit on the real photos finds the cruise_ship/gondola duplicate',
  { skip: !fs.existsSync(SHARED_PHOTOS) && 'no ../shared/data/boat-types on this machine' },
  async () => {
    const report = await auditDataset({ data: SHARED_PHOTOS });
    assert.equal(report.images, 1162);
    const across = report.duplicates
      .filter((d) => d.kind === 'across-classes')
      .map((d) => d.files.map((f) => f.path).sort());
    assert.deepEqual(across, [['cruise_ship/151.jpg', 'gondola/3.jpg']]);
    assert.equal(report.unreadable.length, 0);
  },
);
