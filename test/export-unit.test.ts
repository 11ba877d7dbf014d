// boat export's parts without a browser: the quantized weight format against tfjs' own decoder, the
// page's preprocessing against the library's transforms, boat serve's path checks, the in-process
// export (tensors flat), and an export read back as a BoatModel.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '../lib/engine/tf';

import {
  affineRange,
  exportModel,
  float16Bits,
  loadExportedModel,
  quantizeWeights,
  resolveInside,
  serveFolder,
} from '../lib/export';
import {
  CaffePreprocess,
  centerCrop,
  Compose,
  createBoatModel,
  decodeRgb,
  evalTransforms,
  FloatImage,
  IMAGENET_MEAN,
  IMAGENET_STD,
  Normalize,
  openImage,
  predictImage,
  Random,
  resizeFor,
  Resize,
  saveBoatModel,
  selectBackend,
  ToTensor,
} from '../lib';
import { evalGeometry, normalizePixels } from '../lib/web/preprocess';
import { REPO_ROOT, tempDir } from './helpers';

const PHOTOS = path.join(REPO_ROOT, 'test', 'fixtures', 'photos');

before(async () => {
  await selectBackend();
});

test('float16 bits: exact values, rounding to nearest even, subnormals, overflow', () => {
  assert.equal(float16Bits(1), 0x3c00);
  assert.equal(float16Bits(-2), 0xc000);
  assert.equal(float16Bits(65504), 0x7bff);
  assert.equal(float16Bits(65520), 0x7c00, 'halfway above the largest half rounds to infinity');
  assert.equal(float16Bits(0.1), 0x2e66);
  assert.equal(float16Bits(2 ** -24), 0x0001, 'smallest subnormal');
  assert.equal(float16Bits(2 ** -25), 0x0000, 'half of it rounds to even (zero)');
  assert.equal(float16Bits(1 + 2 ** -11), 0x3c00, 'a tie rounds to the even mantissa');
  assert.equal(float16Bits(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(float16Bits(-0), 0x8000);
  assert.equal(float16Bits(NaN) & 0x7c00, 0x7c00);
});

test('affine uint8 range: 0 is exactly representable, constant tensors do not divide by zero', () => {
  const r = affineRange(-0.3, 0.7);
  const zero = -r.min / r.scale;
  assert.ok(Math.abs(zero - Math.round(zero)) < 1e-9, `zero code ${zero}`);
  assert.deepEqual(affineRange(0.5, 0.5), { min: 0.5, scale: 1 });
});

/** Weights written by quantizeWeights, read back by tfjs' loadLayersModel (its decodeWeights). */
async function roundTrip(
  quantization: 'float16' | 'uint8',
): Promise<{ original: Float32Array[]; decoded: Float32Array[]; specs: tf.io.WeightsManifestEntry[] }> {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({
        inputShape: [37],
        units: 11,
        kernelInitializer: tf.initializers.randomNormal({ seed: 3, stddev: 2 }),
        biasInitializer: tf.initializers.randomUniform({ minval: -1, maxval: 1, seed: 4 }),
      }),
    ],
  });
  let specs: tf.io.WeightsManifestEntry[] = [];
  let bytes = new Uint8Array();
  let topology: object = {};
  await model.save({
    save: async (a: tf.io.ModelArtifacts) => {
      specs = a.weightSpecs!;
      bytes = new Uint8Array(a.weightData as ArrayBuffer);
      topology = a.modelTopology as object;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    },
  });
  const q = quantizeWeights(specs, bytes, quantization);
  const loaded = await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: topology, weightSpecs: q.specs, weightData: q.data.slice().buffer }),
  );
  const original = model.getWeights().map((w) => w.dataSync() as Float32Array);
  const decoded = loaded.getWeights().map((w) => w.dataSync() as Float32Array);
  model.dispose();
  loaded.dispose();
  return { original, decoded, specs: q.specs };
}

test('float16 weights round-trip through tfjs loadLayersModel: kernels within half an ulp, biases untouched', async () => {
  const before = tf.memory().numTensors;
  const { original, decoded, specs } = await roundTrip('float16');
  assert.deepEqual(
    specs.map((s) => s.quantization?.dtype ?? 'none'),
    ['float16', 'none'],
  );
  for (let i = 0; i < original[0].length; i++) {
    const x = original[0][i];
    assert.ok(
      Math.abs(decoded[0][i] - x) <= Math.abs(x) * 2 ** -11 + 2 ** -25,
      `kernel[${i}]: ${x} → ${decoded[0][i]}`,
    );
  }
  assert.notDeepEqual(decoded[0], original[0], 'float16 changes some kernel values');
  assert.deepEqual(decoded[1], original[1], 'the bias stays float32');
  assert.equal(tf.memory().numTensors, before);
});

test('uint8 weights round-trip through tfjs loadLayersModel: q·scale + min, within half a step', async () => {
  const { original, decoded, specs } = await roundTrip('uint8');
  const qz = specs[0].quantization!;
  assert.equal(qz.dtype, 'uint8');
  const { min, scale } = qz as { min: number; scale: number };
  for (let i = 0; i < original[0].length; i++) {
    const code = (decoded[0][i] - min) / scale;
    assert.ok(Math.abs(code - Math.round(code)) < 1e-3, `decoded value ${decoded[0][i]} is not on the grid`);
    assert.ok(
      Math.abs(decoded[0][i] - original[0][i]) <= scale / 2 + 1e-6,
      `kernel[${i}]: ${original[0][i]} → ${decoded[0][i]}`,
    );
  }
  const lo = Math.min(...original[0]);
  const hi = Math.max(...original[0]);
  assert.ok(scale <= (hi - lo) / 255 + 1e-9 && scale >= (hi - lo) / 255 - 1e-9);
  assert.deepEqual(decoded[1], original[1]);
});

test("the page geometry is Resize(short side) + CenterCrop, the library's eval transforms", async () => {
  for (const [w, h, crop] of [
    [200, 120, 64],
    [120, 200, 64],
    [97, 101, 32],
    [50, 40, 64],
    [224, 224, 224],
  ]) {
    const resize = resizeFor(crop);
    const g = evalGeometry(w, h, resize, crop);
    const img = { kind: 'rgb' as const, width: w, height: h, data: new Uint8Array(w * h * 3) };
    const resized = await decodeRgb(await new Resize(resize).apply(img));
    assert.deepEqual([g.width, g.height], [resized.width, resized.height], `${w}×${h}`);
    // The crop offsets: a picture whose pixels hold their own coordinates (small enough for bytes).
    if (g.width < 256 && g.height < 256) {
      const coords = {
        kind: 'rgb' as const,
        width: g.width,
        height: g.height,
        data: new Uint8Array(g.width * g.height * 3),
      };
      for (let y = 0; y < g.height; y++)
        for (let x = 0; x < g.width; x++) coords.data.set([x, y, 1], (y * g.width + x) * 3);
      const c = centerCrop(coords, crop);
      const px = Math.max(0, -g.left);
      const py = Math.max(0, -g.top);
      const at = (py * crop + px) * 3;
      assert.deepEqual([c.data[at] - px, c.data[at + 1] - py], [g.left, g.top], `${w}×${h} crop offsets`);
    }
  }
});

test('the page normalisation equals CaffePreprocess and ToTensor + Normalize on the same pixels', async () => {
  const view = await evalTransforms('caffe', 64).preview(
    await openImage(path.join(PHOTOS, 'chelsea.jpg')),
    new Random(0),
  );
  const caffe = await new CaffePreprocess().apply(view);
  const p = { resize: 73, crop: 64, mean: [103.939, 116.779, 123.68] as [number, number, number], std: null };
  assert.deepEqual(normalizePixels(view.data, 3, { ...p, normalization: 'caffe' }), caffe.data);
  const rgba = new Uint8Array((view.data.length / 3) * 4);
  for (let i = 0; i < view.data.length / 3; i++) rgba.set([...view.data.subarray(i * 3, i * 3 + 3), 255], i * 4);
  const imagenet = (await new Compose([new ToTensor(), new Normalize(IMAGENET_MEAN, IMAGENET_STD)]).apply(
    view,
    new Random(0),
  )) as FloatImage;
  const mine = normalizePixels(rgba, 4, { ...p, normalization: 'imagenet', mean: IMAGENET_MEAN, std: IMAGENET_STD });
  let worst = 0;
  for (let i = 0; i < mine.length; i++) worst = Math.max(worst, Math.abs(mine[i] - imagenet.data[i]));
  assert.ok(worst < 1e-5, `imagenet normalisation differs by ${worst}`);
});

test('serve: paths are resolved inside the folder; ../ in any spelling is refused', async () => {
  const root = path.resolve('/srv/site');
  assert.equal(resolveInside(root, '/index.html'), path.join(root, 'index.html'));
  assert.equal(resolveInside(root, '/model/model.json?x=1'), path.join(root, 'model', 'model.json'));
  for (const bad of ['/../etc/passwd', '/model/../../x', '/%2e%2e/x', '/..%2fx', '/..%5cx', '/a%00b', '/%E0%A4%A'])
    assert.equal(resolveInside(root, bad), null, bad);

  const dir = tempDir();
  fs.mkdirSync(path.join(dir, 'site'));
  fs.writeFileSync(path.join(dir, 'site', 'index.html'), '<p>hello</p>');
  fs.writeFileSync(path.join(dir, 'secret.txt'), 'do not serve');
  fs.symlinkSync(path.join(dir, 'secret.txt'), path.join(dir, 'site', 'link.txt'));
  const running = await serveFolder({ dir: path.join(dir, 'site'), port: 0 });
  const get = (p: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const u = new URL(running.url);
      http
        .get({ host: u.hostname, port: u.port, path: p }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        })
        .on('error', reject);
    });
  try {
    assert.deepEqual(await get('/'), { status: 200, body: '<p>hello</p>' });
    for (const bad of ['/../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt', '/link.txt']) {
      const r = await get(bad);
      assert.equal(r.status, 403, bad);
      assert.doesNotMatch(r.body, /do not serve/);
    }
    assert.equal((await get('/missing.js')).status, 404);
  } finally {
    await running.close();
  }
});

test('exportModel in-process: the export predicts like its source, and no tensor is left behind', async () => {
  const dir = tempDir();
  const classes = ['a', 'b', 'c'];
  const model = await createBoatModel({ classes, mode: 'feature-extractor', inputSize: 32 });
  await saveBoatModel(model, path.join(dir, 'model'));
  const before = tf.memory().numTensors;
  const r = await exportModel({ model: path.join(dir, 'model'), out: path.join(dir, 'web') });
  assert.equal(tf.memory().numTensors, before, 'exportModel leaves no tensors');
  assert.ok(r.maxProbabilityDifference < 1e-5, `export vs source: ${r.maxProbabilityDifference}`);
  const shards = fs
    .readdirSync(path.join(dir, 'web', 'model'))
    .filter((f) => f.endsWith('.bin'))
    .sort((x, y) => Number(/shard(\d+)/.exec(x)![1]) - Number(/shard(\d+)/.exec(y)![1]));
  assert.equal(shards.length, r.manifest.model.shards);
  const sizes = shards.map((f) => fs.statSync(path.join(dir, 'web', 'model', f)).size);
  assert.ok(
    sizes.slice(0, -1).every((s) => s === 4 * 1024 * 1024) && sizes[sizes.length - 1] <= 4 * 1024 * 1024,
    `shard sizes ${sizes.join(', ')}`,
  );
  const beforeLoad = tf.memory().numTensors;
  const exported = await loadExportedModel(path.join(dir, 'web'));
  const file = path.join(PHOTOS, 'coffee.jpg');
  const [a, b] = [await predictImage(model, file), await predictImage(exported, file)];
  assert.deepEqual(
    b.top.map((t) => t.class),
    a.top.map((t) => t.class),
  );
  for (let i = 0; i < a.top.length; i++) assert.ok(Math.abs(a.top[i].probability - b.top[i].probability) < 1e-6);
  exported.dispose();
  assert.equal(tf.memory().numTensors, beforeLoad, 'an exported model read back and disposed leaves no tensors');
  model.dispose();
});
