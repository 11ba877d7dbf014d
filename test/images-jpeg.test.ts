/**
 * The JPEG addon (native/boat_jpeg.cc, lib/images/jpeg.ts): which files it takes, the shrink it picks,
 * its geometry, and that it gives way to sharp on anything else. Its agreement with torchvision is in
 * images-reference.test.ts.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';

import * as tf from '../lib/engine/tf';

import {
  CaffePreprocess,
  CenterCrop,
  Compose,
  DataLoader,
  decodeJpeg,
  decodeRgb,
  evalTransforms,
  ImageFolder,
  jpegAddonActive,
  jpegDecoderName,
  jpegGeometry,
  jpegShrinkFor,
  loadImage,
  openImage,
  parsePlainJpeg,
  plainJpegSize,
  Random,
  Resize,
  setJpegAddon,
  setJpegExact,
} from '../lib';
import { scanImageFolder } from '../lib/data/scan';
import type { PendingImage } from '../lib';
import { jpegAddonSkip, REPO_ROOT, SHARED_PHOTOS, tempDir } from './helpers';

const PHOTO = path.join(REPO_ROOT, 'test', 'fixtures', 'photos', 'chelsea.jpg');
const built = jpegAddonActive();
/** Runs fn with the addon on or off, and restores it. */
async function withAddon<T>(on: boolean, fn: () => Promise<T>): Promise<T> {
  setJpegAddon(on);
  try {
    return await fn();
  } finally {
    setJpegAddon(built);
  }
}
const needsAddon = { skip: jpegAddonSkip(built) };

test('shrink-on-load: the largest of 8, 4, 2 that leaves the filter at least 1.5×', () => {
  const factors = [1, 2, 2.9, 3, 3.33, 5.9, 6, 11.9, 12, 20];
  assert.deepEqual(factors.map(jpegShrinkFor), [1, 1, 1, 2, 2, 2, 4, 4, 8, 8]);
});

test('geometry: Resize(256) + CenterCrop(224) of a 1280×853 photo reads the centre box of the full-size image', async () => {
  const source = { kind: 'source' as const, file: 'x.jpg', width: 1280, height: 853, plainJpeg: true };
  const pending = (await new CenterCrop(224).apply(await new Resize(256).apply(source))) as PendingImage;
  const { geometry, shrink } = jpegGeometry(source, pending);
  const scale = 853 / 256;
  assert.deepEqual([...geometry.slice(4)], [0, 0, 1280, 853, 224, 224]);
  assert.ok(Math.abs(geometry[2] - 224 * (1280 / 384)) < 1e-9 && Math.abs(geometry[3] - 224 * scale) < 1e-9);
  assert.ok(Math.abs(geometry[0] - 80 * (1280 / 384)) < 1e-9 && Math.abs(geometry[1] - 16 * scale) < 1e-9);
  assert.equal(shrink, 2);
  // A crop made first (RandomResizedCrop's box) is the filter's limit; it shrinks on load too.
  const cropped = jpegGeometry(source, {
    cropBefore: { left: 100, top: 50, width: 1000, height: 800 },
    resize: { width: 256, height: 256 },
  });
  assert.deepEqual([...cropped.geometry], [100, 50, 1000, 800, 100, 50, 1100, 850, 256, 256]);
  assert.equal(cropped.shrink, 2); // 800 / 256 = 3.1: the filter keeps 1.6×
  assert.equal(
    jpegGeometry(source, {
      cropBefore: { left: 0, top: 0, width: 900, height: 700 },
      resize: { width: 256, height: 256 },
    }).shrink,
    1,
  ); // 2.7×
});

test('the addon takes plain JPEGs only: EXIF-rotated, ICC-tagged, CMYK, grayscale and PNG files go through sharp', async () => {
  const dir = tempDir();
  const base = sharp(PHOTO).resize(120);
  const files: Record<string, Buffer> = {
    'plain.jpg': await base.clone().jpeg().toBuffer(),
    'rotated.jpg': await base.clone().withMetadata({ orientation: 6 }).jpeg().toBuffer(),
    'icc.jpg': await base.clone().withIccProfile('p3').jpeg().toBuffer(),
    'cmyk.jpg': await base.clone().toColourspace('cmyk').jpeg().toBuffer(),
    'gray.jpg': await base.clone().toColourspace('b-w').jpeg().toBuffer(),
    'photo.png': await base.clone().png().toBuffer(),
  };
  files['progressive.jpg'] = await base.clone().jpeg({ progressive: true }).toBuffer();
  files['upright-exif.jpg'] = await base
    .clone()
    .withExif({ IFD0: { Orientation: '1', Copyright: 'test' } })
    .jpeg()
    .toBuffer();
  files['header-only.jpg'] = files['plain.jpg'].subarray(0, 100);
  const expected = {
    'plain.jpg': true,
    'rotated.jpg': false,
    'icc.jpg': false,
    'cmyk.jpg': false,
    'gray.jpg': false,
    'photo.png': false,
    'progressive.jpg': true,
    'upright-exif.jpg': true,
    'header-only.jpg': false,
  };
  // The same verdict and size from sharp's metadata (addon off) and from the marker walk (addon on).
  for (const addon of [false, true]) {
    const plain: Record<string, boolean> = {};
    await withAddon(addon && built, async () => {
      for (const [name, bytes] of Object.entries(files)) {
        fs.writeFileSync(path.join(dir, name), bytes);
        const opened = await openImage(path.join(dir, name)).catch(() => null);
        plain[name] = opened?.plainJpeg === true;
        if (opened?.plainJpeg) assert.deepEqual([opened.width, opened.height], [120, 80], name);
      }
    });
    assert.deepEqual(plain, expected, `addon ${addon}`);
  }
  for (const [name, bytes] of Object.entries(files))
    assert.equal(parsePlainJpeg(bytes) !== null, expected[name as keyof typeof expected], name);
  const png = await openImage(path.join(dir, 'photo.png'));
  assert.equal(await decodeJpeg(png, {}), null);
});

test(
  'the addon decodes a plain JPEG; on a truncated one it gives way to sharp, which reports the file as before',
  needsAddon,
  async () => {
    const dir = tempDir();
    const whole = await sharp(PHOTO).jpeg().toBuffer();
    fs.writeFileSync(path.join(dir, 'whole.jpg'), whole);
    fs.writeFileSync(path.join(dir, 'truncated.jpg'), whole.subarray(0, Math.floor(whole.length * 0.6)));
    const good = await openImage(path.join(dir, 'whole.jpg'));
    const fast = await decodeJpeg(good, {});
    assert.ok(fast);
    assert.deepEqual(
      [fast.width, fast.height, fast.data.length],
      [good.width, good.height, good.width * good.height * 3],
    );
    // A full-size decode with no resize: the same pixels as sharp gives, up to the decoders' rounding.
    const bySharp = await withAddon(false, () => decodeRgb(good));
    let sum = 0;
    for (let i = 0; i < fast.data.length; i++) sum += Math.abs(fast.data[i] - bySharp.data[i]);
    assert.ok(sum / fast.data.length < 1, `mean |addon − sharp| ${sum / fast.data.length}`);

    const truncated = await openImage(path.join(dir, 'truncated.jpg'));
    assert.equal(truncated.plainJpeg, true);
    assert.equal(await decodeJpeg(truncated, {}), null);
    const sharpSays = await withAddon(false, () =>
      decodeRgb(truncated).then(
        () => 'decoded',
        (e: Error) => e.message,
      ),
    );
    assert.equal(
      await decodeRgb(truncated).then(
        () => 'decoded',
        (e: Error) => e.message,
      ),
      sharpSays,
    );
  },
);

test(
  'on a large photo the addon shrinks on load like sharp and stays within a level or so of the full-size decode',
  needsAddon,
  async () => {
    const dir = tempDir();
    const file = path.join(dir, 'large.jpg');
    fs.writeFileSync(file, await sharp(PHOTO).resize(1280, 853, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer());
    const source = await openImage(file);
    const view = await loadImage(file, evalTransforms(), new Random(0));
    const viaSharp = await withAddon(false, () => loadImage(file, evalTransforms(), new Random(0)));
    let sum = 0;
    for (let i = 0; i < view.data.length; i++) sum += Math.abs(view.data[i] - viaSharp.data[i]);
    assert.deepEqual([view.width, view.height], [224, 224]);
    assert.ok(sum / view.data.length < 2, `mean |addon − sharp| ${sum / view.data.length}`);
    assert.equal(
      jpegGeometry(source, {
        resize: { width: 384, height: 256 },
        cropAfter: { left: 80, top: 16, width: 224, height: 224 },
      }).shrink,
      2,
    );
    assert.match(jpegDecoderName(), /^boat_jpeg \(libjpeg-turbo/);
    assert.equal(await withAddon(false, async () => jpegDecoderName()), 'sharp');
  },
);

test(
  'on the real photos the marker walk and sharp agree on every file: which are plain JPEGs, and their size',
  { skip: fs.existsSync(SHARED_PHOTOS) ? false : `no real photos at ${SHARED_PHOTOS}` },
  async () => {
    const files = scanImageFolder(SHARED_PHOTOS).files.map((f) => f.file);
    const disagree: string[] = [];
    for (const file of files) {
      const walked = await plainJpegSize(file);
      const viaSharp = await withAddon(false, () => openImage(file));
      const a = walked ? `${walked.width}x${walked.height}` : 'not plain';
      const b = viaSharp.plainJpeg ? `${viaSharp.width}x${viaSharp.height}` : 'not plain';
      if (a !== b) disagree.push(`${file}: ${a} vs sharp ${b}`);
    }
    assert.ok(files.length > 1000);
    assert.deepEqual(disagree, []);
  },
);

test(
  'exact mode (BOAT_JPEG_EXACT=1) skips the DCT-domain shrink: the full-size decode, resampled, in workers too',
  needsAddon,
  async () => {
    const dir = tempDir();
    const file = path.join(dir, 'large.jpg');
    fs.writeFileSync(file, await sharp(PHOTO).resize(1280, 853, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer());
    const source = await openImage(file);
    const pending = { resize: { width: 384, height: 256 }, cropAfter: { left: 80, top: 16, width: 224, height: 224 } };
    const shrunk = await decodeJpeg(source, pending);
    setJpegExact(true);
    try {
      assert.equal(jpegGeometry(source, pending).shrink, 1);
      assert.match(jpegDecoderName(), /, exact\)$/);
      const exactPixels = await decodeJpeg(source, pending);
      let sum = 0;
      for (let i = 0; i < exactPixels!.data.length; i++) sum += Math.abs(exactPixels!.data[i] - shrunk!.data[i]);
      assert.ok(sum > 0, 'exact and shrunk decodes differ');
      // Decode workers follow the loader's thread.
      const folder = path.join(dir, 'set');
      fs.mkdirSync(path.join(folder, 'a'), { recursive: true });
      fs.copyFileSync(file, path.join(folder, 'a', 'large.jpg'));
      const ds = new ImageFolder(folder, new Compose([new Resize(256), new CenterCrop(224), new CaffePreprocess()]));
      for await (const batch of new DataLoader(ds, { batchSize: 1, workers: 1 }).batches(0)) {
        const x = (await batch.x.data()) as Float32Array;
        tf.dispose([batch.x, batch.y]);
        const expected = (await new CaffePreprocess().apply(exactPixels!)).data;
        assert.deepEqual(Array.from(x), Array.from(expected));
      }
    } finally {
      setJpegExact(false);
    }
  },
);
