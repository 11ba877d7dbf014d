import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';

import {
  augmentationFigure,
  CAFFE_MEAN_BGR,
  CaffePreprocess,
  CenterCrop,
  ColorJitter,
  cropRgb,
  Compose,
  decodeRgb,
  evalTransforms,
  hflip,
  isRandom,
  Normalize,
  openImage,
  Random,
  RandomHorizontalFlip,
  RandomResizedCrop,
  randomResizedCropBox,
  RandomRotation,
  resizedCrop,
  resizedCropOnGrid,
  Resize,
  resizeFor,
  RgbImage,
  rotate,
  ToTensor,
  trainTransforms,
  type Transform,
  ttaTransforms,
} from '../lib';
import { REPO_ROOT, tempDir, writeImage } from './helpers';

const PHOTO = path.join(REPO_ROOT, 'test', 'fixtures', 'photos', 'coffee.jpg');

test('RandomResizedCrop boxes respect scale and ratio bounds over many draws', () => {
  const rng = new Random(1);
  for (const [w, h] of [
    [1280, 853],
    [853, 1280],
    [640, 640],
    [300, 100],
  ]) {
    for (let i = 0; i < 2000; i++) {
      const box = randomResizedCropBox(w, h, [0.8, 1], [3 / 4, 4 / 3], rng);
      assert.ok(
        box.left >= 0 && box.top >= 0 && box.left + box.width <= w && box.top + box.height <= h,
        JSON.stringify(box),
      );
      const fallback = box.width === w || box.height === h;
      if (!fallback) {
        // Side lengths are rounded to whole pixels, so allow one pixel of slack on each side.
        const areaHi = ((box.width + 1) * (box.height + 1)) / (w * h);
        const areaLo = ((box.width - 1) * (box.height - 1)) / (w * h);
        assert.ok(areaHi >= 0.8 && areaLo <= 1, `area share ${(box.width * box.height) / (w * h)}`);
        assert.ok(
          (box.width + 1) / (box.height - 1) >= 3 / 4 && (box.width - 1) / (box.height + 1) <= 4 / 3,
          `ratio ${box.width / box.height}`,
        );
      }
    }
  }
});

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

test('a large RandomResizedCrop box on a file is resized first (JPEG shrink-on-load) and lands within half an output pixel of the drawn box', async () => {
  const file = path.join(tempDir(), 'coffee1600.jpg');
  await sharp(PHOTO).resize(1600, 1200).jpeg({ quality: 95 }).toFile(file);
  const src = await openImage(file);
  // A box whose edges fall on the shrunk image's grid: the fast path is the exact crop, up to the decoder.
  const aligned = { left: 400, top: 0, width: 800, height: 1200 };
  const exact = await decodeRgb(await resizedCrop(src, aligned, 256));
  const grid = await decodeRgb(resizedCropOnGrid(src, aligned, 256));
  const moved = await decodeRgb(await resizedCrop(src, { ...aligned, left: aligned.left + 2 }, 256));
  const diff = meanAbsDiff(exact.data, grid.data);
  assert.ok(diff < 0.5, `mean |diff| ${diff}`);
  assert.ok(meanAbsDiff(exact.data, moved.data) > 4 * diff, 'a 2-pixel shift of the box shows (the check can fail)');
  // Any box: the crop placed on the grid is the drawn box moved and scaled by under half an output pixel.
  const rng = new Random(4);
  for (let i = 0; i < 500; i++) {
    const box = randomResizedCropBox(1600, 1200, [0.8, 1], [3 / 4, 4 / 3], rng);
    const p = resizedCropOnGrid(src, box, 256);
    const [sx, sy] = [1600 / p.resize!.width, 1200 / p.resize!.height]; // source pixels per shrunk pixel
    assert.ok(
      Math.abs(p.cropAfter!.left * sx - box.left) <= 0.5 * sx + 1e-9 &&
        Math.abs(p.cropAfter!.top * sy - box.top) <= 0.5 * sy + 1e-9,
      JSON.stringify({ box, p }),
    );
    assert.ok(
      Math.abs(256 * sx - box.width) <= 0.5 * sx && Math.abs(256 * sy - box.height) <= 0.5 * sy,
      JSON.stringify({ box, p }),
    );
    assert.ok(p.cropAfter!.left + 256 <= p.resize!.width && p.cropAfter!.top + 256 <= p.resize!.height);
  }
  // RandomResizedCrop takes this path only for boxes three times the output or more (where sharp shrinks on load).
  const small = await openImage(PHOTO); // 600×400
  const out = await new RandomResizedCrop(256, [0.8, 1]).apply(small, new Random(1));
  assert.equal(out.kind === 'pending' && out.cropBefore !== undefined, true, 'small image: crop first, exact');
  const large = await new RandomResizedCrop(256, [0.8, 1]).apply(src, new Random(1));
  assert.equal(
    large.kind === 'pending' && large.cropBefore === undefined && large.cropAfter !== undefined,
    true,
    'large image: resize first',
  );
});

test("a crop of decoded pixels is copied in JS and equals sharp's extract", async () => {
  const img = await decodeRgb(await new Resize(100).apply(await openImage(PHOTO)));
  const box = { left: 7, top: 11, width: 40, height: 30 };
  const viaSharp = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .extract(box)
    .raw()
    .toBuffer();
  assert.deepEqual(Buffer.from(cropRgb(img, box).data), viaSharp);
  const cropped = await decodeRgb(await new CenterCrop(50).apply(img));
  assert.deepEqual([cropped.width, cropped.height], [50, 50]);
});

test('output sizes: train and eval give 224×224 from any input size', async () => {
  const dir = tempDir();
  for (const [w, h] of [
    [1280, 853],
    [853, 1280],
    [40, 30],
    [300, 300],
  ]) {
    const file = path.join(dir, `${w}x${h}.jpg`);
    await writeImage(file, w, { width: w, height: h });
    const src = await openImage(file);
    for (const t of [trainTransforms('caffe'), evalTransforms('imagenet')]) {
      const out = await t.apply(src, new Random(3));
      assert.equal(out.kind, 'float');
      assert.deepEqual([out.width, out.height, (out as { data: Float32Array }).data.length], [224, 224, 224 * 224 * 3]);
    }
  }
});

test('another input size keeps the tutorial proportions: Resize(366) + CenterCrop(320) for 320', async () => {
  assert.deepEqual([224, 320, 96].map(resizeFor), [256, 366, 110]);
  assert.equal(
    evalTransforms('caffe', 320).name,
    'Compose(Resize(366), CenterCrop(320), CaffePreprocess(BGR, mean=[103.939, 116.779, 123.68]))',
  );
  assert.match(trainTransforms('caffe', 320).name, /^Compose\(RandomResizedCrop\(366, .*CenterCrop\(320\)/);
  assert.equal(
    ttaTransforms('caffe', 320).name,
    'Compose(Resize(366), CaffePreprocess(BGR, mean=[103.939, 116.779, 123.68]))',
  );
  const src = await openImage(PHOTO);
  for (const t of [trainTransforms('caffe', 320), evalTransforms('imagenet', 320)]) {
    const out = await t.apply(src, new Random(3));
    assert.deepEqual([out.width, out.height], [320, 320]);
  }
});

test('Resize keeps the aspect ratio with the shorter side at size', async () => {
  const src = await openImage(PHOTO); // 600×400
  const out = await decodeRgb(await new Resize(256).apply(src));
  assert.deepEqual([out.width, out.height], [384, 256]);
});

test('CenterCrop pads with black when the image is smaller than the crop', async () => {
  const img: RgbImage = { kind: 'rgb', data: new Uint8Array(2 * 2 * 3).fill(200), width: 2, height: 2 };
  const out = await decodeRgb(await new CenterCrop(4).apply(img));
  assert.deepEqual([out.width, out.height], [4, 4]);
  assert.equal(out.data[0], 0);
  assert.equal(out.data[(1 * 4 + 1) * 3], 200);
});

test('horizontal flip mirrors pixels exactly; p=0 never flips, p=1 always does', async () => {
  const src = await decodeRgb(await openImage(PHOTO));
  const flipped = await hflip(src);
  const w = src.width;
  for (const [x, y] of [
    [0, 0],
    [17, 33],
    [w - 1, src.height - 1],
  ]) {
    for (let k = 0; k < 3; k++)
      assert.equal(flipped.data[(y * w + x) * 3 + k], src.data[(y * w + (w - 1 - x)) * 3 + k]);
  }
  assert.deepEqual(await hflip(flipped), src);
  assert.deepEqual((await decodeRgb(await new RandomHorizontalFlip(0).apply(src, new Random(1)))).data, src.data);
  assert.deepEqual((await decodeRgb(await new RandomHorizontalFlip(1).apply(src, new Random(1)))).data, flipped.data);
});

test('rotation keeps the size, fills corners with black, and rotate(0) is the identity', async () => {
  const src = await decodeRgb(await new Resize(128).apply(await openImage(PHOTO)));
  const r = await new RandomRotation(15).apply(src, new Random(5));
  assert.deepEqual([r.width, r.height], [src.width, src.height]);
  const turned = await rotate(src, 15);
  assert.deepEqual(Array.from(turned.data.subarray(0, 3)), [0, 0, 0]);
  assert.deepEqual((await rotate(src, 0)).data, src.data);
});

test('ColorJitter() with no arguments is a no-op; with all four it changes pixels', async () => {
  const src = await decodeRgb(await new Resize(64).apply(await openImage(PHOTO)));
  assert.deepEqual((await decodeRgb(await new ColorJitter().apply(src, new Random(1)))).data, src.data);
  const jittered = await decodeRgb(
    await new ColorJitter({ brightness: 0.5, contrast: 0.5, saturation: 0.5, hue: 0.2 }).apply(src, new Random(1)),
  );
  assert.notDeepEqual(jittered.data, src.data);
  assert.equal(jittered.data.length, src.data.length);
});

test('ColorJitter draws brightness, contrast and saturation factors in [1 - x, 1 + x] and hue shifts in [-h, h], over the whole range', async () => {
  const src = await decodeRgb(await new Resize(64).apply(await openImage(PHOTO)));
  const gray = (p: ArrayLike<number>, i: number): number => 0.299 * p[i] + 0.587 * p[i + 1] + 0.114 * p[i + 2];
  let mean = 0;
  for (let i = 0; i < src.data.length; i += 3) mean += gray(src.data, i);
  mean /= src.data.length / 3;
  // Each op is px = other + f·(px - other): recover f by least squares over the pixels that a factor
  // up to 1.5 never clamps, and check every such pixel against it (to rounding).
  const others: Record<'brightness' | 'contrast' | 'saturation', (i: number) => number> = {
    brightness: () => 0,
    contrast: () => mean,
    saturation: (i) => gray(src.data, i - (i % 3)),
  };
  for (const [op, other] of Object.entries(others) as Array<[keyof typeof others, (i: number) => number]>) {
    const factors: number[] = [];
    const rng = new Random(7); // one stream of draws: consecutive seeds' first draws are not spread evenly
    for (let draw = 0; draw < 200; draw++) {
      const out = (await decodeRgb(await new ColorJitter({ [op]: 0.5 }).apply(src, rng))).data;
      const used = Array.from(src.data.keys()).filter((i) => {
        const o = other(i);
        return o + 1.5 * (src.data[i] - o) <= 254 && o + 1.5 * (src.data[i] - o) >= 1;
      });
      let num = 0;
      let den = 0;
      for (const i of used) {
        num += (src.data[i] - other(i)) * (out[i] - other(i));
        den += (src.data[i] - other(i)) ** 2;
      }
      const f = num / den;
      for (const i of used)
        assert.ok(Math.abs(out[i] - (other(i) + f * (src.data[i] - other(i)))) <= 1, `${op} draw ${draw}: pixel ${i}`);
      factors.push(f);
    }
    assert.ok(
      Math.min(...factors) >= 0.5 - 0.005 && Math.max(...factors) <= 1.5 + 0.005,
      `${op}: factors ${Math.min(...factors)} to ${Math.max(...factors)}`,
    );
    assert.ok(
      Math.min(...factors) < 0.55 && Math.max(...factors) > 1.45,
      `${op}: factors ${Math.min(...factors)} to ${Math.max(...factors)} cover [0.5, 1.5]`,
    );
  }
  // Hue: a uniform, fully saturated colour of hue 0.4 (in turns), so that a shift of up to 0.2 stays clear of the wrap.
  const hueOf = (r: number, g: number, b: number): number => {
    const max = Math.max(r, g, b);
    const d = max - Math.min(r, g, b);
    const h = max === r ? ((g - b) / d) % 6 : max === g ? (b - r) / d + 2 : (r - g) / d + 4;
    return (((h / 6) % 1) + 1) % 1;
  };
  const colour: RgbImage = {
    kind: 'rgb',
    data: Uint8Array.from({ length: 8 * 8 * 3 }, (_, i) => [0, 255, 153][i % 3]),
    width: 8,
    height: 8,
  };
  const base = hueOf(0, 255, 153);
  const shifts: number[] = [];
  const rng = new Random(8);
  for (let draw = 0; draw < 200; draw++) {
    const out = (await decodeRgb(await new ColorJitter({ hue: 0.2 }).apply(colour, rng))).data;
    shifts.push(hueOf(out[0], out[1], out[2]) - base);
  }
  assert.ok(
    Math.min(...shifts) >= -0.2 - 0.005 && Math.max(...shifts) <= 0.2 + 0.005,
    `hue shifts ${Math.min(...shifts)} to ${Math.max(...shifts)}`,
  );
  assert.ok(
    Math.min(...shifts) < -0.18 && Math.max(...shifts) > 0.18,
    `hue shifts ${Math.min(...shifts)} to ${Math.max(...shifts)} cover [-0.2, 0.2]`,
  );
});

test('ToTensor/Normalize and CaffePreprocess compute what they say', async () => {
  const img: RgbImage = { kind: 'rgb', data: Uint8Array.from([255, 128, 0]), width: 1, height: 1 };
  const t = await new Compose([new ToTensor(), new Normalize([0.5, 0.5, 0.5], [0.25, 0.5, 1])]).apply(
    img,
    new Random(0),
  );
  assert.equal(t.kind, 'float');
  const v = Array.from((t as { data: Float32Array }).data);
  assert.ok(
    Math.abs(v[0] - 2) < 1e-6 && Math.abs(v[1] - (128 / 255 - 0.5) / 0.5) < 1e-6 && Math.abs(v[2] + 0.5) < 1e-6,
  );
  const c = await new CaffePreprocess().apply(img);
  // BGR order, mean subtracted, no scaling.
  assert.deepEqual(
    Array.from(c.data).map((x) => +x.toFixed(3)),
    [0 - CAFFE_MEAN_BGR[0], 128 - CAFFE_MEAN_BGR[1], 255 - CAFFE_MEAN_BGR[2]].map((x) => +x.toFixed(3)),
  );
  await assert.rejects(
    new Compose([new ToTensor(), new CaffePreprocess()]).apply(img, new Random(0)),
    /instead of ToTensor/,
  );
});

test('the same seed gives the same augmentation, another seed another', async () => {
  const src = await openImage(PHOTO);
  const a = await trainTransforms().apply(src, Random.derive(7, 'sample', 0, 3));
  const b = await trainTransforms().apply(src, Random.derive(7, 'sample', 0, 3));
  const c = await trainTransforms().apply(src, Random.derive(7, 'sample', 1, 3));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

test('decoding: EXIF orientation, grayscale, CMYK, alpha and 16-bit become 8-bit sRGB RGB', async () => {
  const dir = tempDir();
  const base = sharp({ create: { width: 60, height: 40, channels: 3, background: '#ff0000' } }).composite([
    { input: { create: { width: 20, height: 40, channels: 3, background: '#0000ff' } }, left: 0, top: 0 },
  ]);
  const plain = await base.clone().jpeg({ quality: 95 }).toBuffer();
  fs.writeFileSync(
    path.join(dir, 'rotated.jpg'),
    await sharp(plain).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toBuffer(),
  );
  fs.writeFileSync(path.join(dir, 'gray.jpg'), await base.clone().grayscale().jpeg().toBuffer());
  fs.writeFileSync(
    path.join(dir, 'cmyk.jpg'),
    await base.clone().toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer(),
  );
  fs.writeFileSync(path.join(dir, 'alpha.png'), await base.clone().ensureAlpha(0.5).png().toBuffer());
  const px16 = new Uint16Array(60 * 40 * 3).fill(65535);
  fs.writeFileSync(
    path.join(dir, 'sixteen.png'),
    await sharp(px16, { raw: { width: 60, height: 40, channels: 3 } })
      .toColourspace('rgb16')
      .png()
      .toBuffer(),
  );

  // Orientation 6 means "rotate 90° clockwise to display": 40×60, blue band on top.
  const rotated = await decodeRgb(await openImage(path.join(dir, 'rotated.jpg')));
  assert.deepEqual([rotated.width, rotated.height], [40, 60]);
  const at = (img: RgbImage, x: number, y: number): number[] =>
    Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));
  assert.ok(at(rotated, 20, 5)[2] > 200 && at(rotated, 20, 5)[0] < 60, `top is blue: ${at(rotated, 20, 5)}`);
  assert.ok(at(rotated, 20, 50)[0] > 200, `bottom is red: ${at(rotated, 20, 50)}`);

  for (const name of ['gray.jpg', 'cmyk.jpg', 'alpha.png', 'sixteen.png']) {
    const img = await decodeRgb(await openImage(path.join(dir, name)));
    assert.deepEqual([img.width, img.height, img.data.length], [60, 40, 60 * 40 * 3], name);
  }
  const gray = await decodeRgb(await openImage(path.join(dir, 'gray.jpg')));
  assert.ok(at(gray, 50, 20)[0] === at(gray, 50, 20)[1] && at(gray, 50, 20)[1] === at(gray, 50, 20)[2]);
  const cmyk = await decodeRgb(await openImage(path.join(dir, 'cmyk.jpg')));
  assert.ok(at(cmyk, 50, 20)[0] > 200 && at(cmyk, 50, 20)[2] < 80, `CMYK red stays red: ${at(cmyk, 50, 20)}`);
  assert.deepEqual(at(await decodeRgb(await openImage(path.join(dir, 'sixteen.png'))), 5, 5), [255, 255, 255]);
});

test('the augmentation figure is one 3×3 PNG', async () => {
  const png = await augmentationFigure(PHOTO, trainTransforms(), { seed: 1, tile: 100, gap: 4 });
  const meta = await sharp(png).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 3 * 100 + 4 * 4, 3 * 100 + 4 * 4]);
  const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const tile = (k: number): number[] => {
    const x = 4 + (k % 3) * 104 + 50;
    const y = 4 + Math.floor(k / 3) * 104 + 50;
    return Array.from(data.subarray((y * 316 + x) * 3, (y * 316 + x) * 3 + 30));
  };
  assert.notDeepEqual(tile(1), tile(2), 'augmented views differ');
});

test('isRandom: eval transforms are deterministic, train transforms random, ColorJitter() a no-op, undeclared transforms count as random', () => {
  assert.equal(isRandom(evalTransforms()), false);
  assert.equal(isRandom(trainTransforms()), true);
  assert.equal(isRandom(new ColorJitter()), false);
  assert.equal(isRandom(new ColorJitter({ brightness: 0.2 })), true);
  assert.equal(isRandom(new Compose([new Resize(256), new RandomHorizontalFlip()])), true);
  const custom: Transform = { name: 'Custom()', apply: async (s) => s };
  assert.equal(isRandom(custom), true);
  assert.equal(isRandom(new Compose([new Resize(256), custom])), true);
});
