import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';

import { buildFileIndex, classCounts, DEMO_CLASSES, makeDemoDataset, sizeSummary } from '../lib/data';
import { hashTree, SHARED_PHOTOS, tempDir, writeImage } from './helpers';

test('file index reads sizes from headers, applies EXIF orientation and skips what is not an image', async () => {
  const dir = tempDir();
  await writeImage(path.join(dir, 'a', '1.jpg'), 1, { width: 60, height: 40 });
  await writeImage(path.join(dir, 'a', '2.png'), 2, { width: 30, height: 20, format: 'png' });
  // A 60×40 JPEG flagged "rotate 90°": shown as 40×60.
  const raw = await sharp(path.join(dir, 'a', '1.jpg'))
    .jpeg()
    .withMetadata({ orientation: 6 })
    .toBuffer();
  fs.mkdirSync(path.join(dir, 'b'));
  fs.writeFileSync(path.join(dir, 'b', 'rotated.jpg'), raw);
  fs.writeFileSync(path.join(dir, 'b', 'broken.jpg'), 'garbage');
  const index = await buildFileIndex(dir);
  const sizes = index.rows.map((r) => [r.category, path.basename(r.filepath), r.width, r.height]);
  assert.deepEqual(sizes, [
    ['a', '1.jpg', 60, 40],
    ['a', '2.png', 30, 20],
    ['b', 'rotated.jpg', 40, 60],
  ]);
  assert.deepEqual(
    index.skipped.map((s) => path.basename(s.path)),
    ['broken.jpg'],
  );
  assert.deepEqual(classCounts(index.rows), [
    { category: 'a', count: 2 },
    { category: 'b', count: 1 },
  ]);
});

test('size summary matches pandas describe()', () => {
  const rows = [10, 20, 30, 40].map((w, i) => ({ category: 'x', filepath: String(i), width: w, height: 5 }));
  const byStat = Object.fromEntries(sizeSummary(rows).map((s) => [s.statistic, s.width]));
  // pandas: pd.Series([10,20,30,40]).describe()
  assert.equal(byStat.count, 4);
  assert.equal(byStat.mean, 25);
  assert.ok(Math.abs(byStat.std - 12.909944) < 1e-6);
  assert.equal(byStat['25%'], 17.5);
  assert.equal(byStat['50%'], 25);
  assert.equal(byStat['75%'], 32.5);
  assert.equal(byStat.max, 40);
});

test('demo dataset: five tutorial classes, photo-like widths, deterministic for a seed', async () => {
  const a = tempDir();
  const b = tempDir();
  await makeDemoDataset({ out: path.join(a, 'd'), perClass: 3, seed: 7 });
  await makeDemoDataset({ out: path.join(b, 'd'), perClass: 3, seed: 7 });
  const ha = hashTree(path.join(a, 'd'));
  assert.deepEqual(ha, hashTree(path.join(b, 'd')));
  const index = await buildFileIndex(path.join(a, 'd'));
  assert.deepEqual(
    classCounts(index.rows)
      .map((c) => c.category)
      .sort(),
    [...DEMO_CLASSES].sort(),
  );
  assert.equal(index.rows.length, 15);
  for (const r of index.rows) assert.ok(r.width >= 500 && r.width <= 1400, `width ${r.width}`);
  await makeDemoDataset({ out: path.join(b, 'd'), perClass: 3, seed: 8 });
  assert.notDeepEqual(hashTree(path.join(b, 'd')), ha);
});

test(
  'file index over the real photos',
  { skip: !fs.existsSync(SHARED_PHOTOS) && 'no ../shared/data/boat-types on this machine' },
  async () => {
    const index = await buildFileIndex(SHARED_PHOTOS);
    assert.equal(index.rows.length, 1162);
    assert.deepEqual(
      classCounts(index.rows)
        .slice(0, 5)
        .map((c) => c.category),
      ['sailboat', 'kayak', 'gondola', 'cruise_ship', 'ferry_boat'],
    );
    assert.ok(index.rows.every((r) => r.width > 0 && r.width <= 1280));
  },
);
