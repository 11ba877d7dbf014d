/**
 * The JPEG addon's default path, with the DCT-domain shrink, against torchvision 0.14 / Pillow 9.4 on a
 * photo large enough to shrink: retina.jpg (1411 × 1411, CC0), references made by
 * scripts/make-shrink-references.py (test/fixtures/README.md). torchvision decodes every pixel, the addon
 * decodes at 1/2 or 1/4 size and resamples from there, so they differ by a few levels on average and by
 * more on sharp edges: both the mean and the maximum are bounded here (measured values in the comments,
 * docs/reliability.md). Without the shrink (exact mode) the same decodes match to a level, which says
 * the references and the geometry are right and the shrink is the whole difference.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';

import {
  CenterCrop,
  decodeRgb,
  jpegAddonActive,
  jpegGeometry,
  openImage,
  resizedCrop,
  Resize,
  setJpegExact,
} from '../lib';
import type { PendingImage, RgbImage } from '../lib';
import { jpegAddonSkip, REPO_ROOT } from './helpers';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures');
interface Case {
  kind: string;
  input: string;
  reference: string;
  box?: { left: number; top: number; width: number; height: number };
}
const cases = (
  JSON.parse(fs.readFileSync(path.join(FIXTURES, 'reference', 'shrink-cases.json'), 'utf8')) as { cases: Case[] }
).cases;

/** Bounds per case, in 8-bit levels: a little above what was measured (comment), so a worse shrink fails. */
const BOUNDS: Record<string, { shrink: number; mean: number; max: number }> = {
  resize256_crop224: { shrink: 2, mean: 0.47, max: 40 }, // measured: mean 0.426, max 35
  resized_crop224_whole: { shrink: 4, mean: 0.52, max: 40 }, // measured: mean 0.474, max 36
  resized_crop224_box: { shrink: 2, mean: 0.5, max: 48 }, // measured: mean 0.458, max 44
};

async function pending(c: Case): Promise<PendingImage> {
  const src = await openImage(path.join(FIXTURES, c.input));
  if (c.kind === 'resize256_crop224')
    return (await new CenterCrop(224).apply(await new Resize(256).apply(src))) as PendingImage;
  return resizedCrop(src, c.box!, 224);
}

async function difference(c: Case, exact: boolean): Promise<{ mean: number; max: number; shrink: number }> {
  setJpegExact(exact);
  try {
    const p = await pending(c);
    const { shrink } = jpegGeometry(p.base as Parameters<typeof jpegGeometry>[0], p);
    const ours: RgbImage = await decodeRgb(p);
    const { data, info } = await sharp(path.join(FIXTURES, c.reference)).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([ours.width, ours.height], [info.width, info.height]);
    let sum = 0;
    let max = 0;
    for (let i = 0; i < data.length; i++) {
      const d = Math.abs(ours.data[i] - data[i]);
      sum += d;
      max = Math.max(max, d);
    }
    return { mean: sum / data.length, max, shrink };
  } finally {
    setJpegExact(false);
  }
}

const skip = { skip: jpegAddonSkip(jpegAddonActive()) };

for (const c of cases) {
  test(`default JPEG path (DCT-domain shrink) vs torchvision on a 1411 px photo: ${c.kind}`, skip, async () => {
    const d = await difference(c, false);
    const bound = BOUNDS[c.kind];
    console.log(`${c.kind}: shrink ${d.shrink}, mean |diff| ${d.mean.toFixed(3)}, max ${d.max}`);
    assert.equal(d.shrink, bound.shrink, 'the case exercises the shrink it was chosen for');
    assert.ok(d.mean <= bound.mean, `mean ${d.mean}`);
    assert.ok(d.max <= bound.max, `max ${d.max}`);
  });
}

test('without the shrink (exact mode) the same decodes match torchvision to a level', skip, async () => {
  for (const c of cases) {
    const d = await difference(c, true);
    assert.equal(d.shrink, 1);
    assert.ok(d.mean < 0.05 && d.max <= 1, `${c.kind}: mean ${d.mean}, max ${d.max}`);
  }
});
