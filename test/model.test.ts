import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '../lib/engine/tf';

import {
  BoatModel,
  checkClassesMatch,
  createBoatModel,
  evalTransforms,
  FloatImage,
  KerasResNet50Imagenet,
  loadBoatModel,
  nllLoss,
  openImage,
  Random,
  saveBoatModel,
  selectBackend,
} from '../lib';
import { REPO_ROOT, tempDir } from './helpers';

const PHOTOS = path.join(REPO_ROOT, 'test', 'fixtures', 'photos');
const CLASSES = ['cruise_ship', 'ferry_boat', 'gondola', 'kayak', 'sailboat'];
let model: BoatModel;

async function photo(name: string): Promise<tf.Tensor4D> {
  const img = (await evalTransforms('caffe').apply(
    await openImage(path.join(PHOTOS, `${name}.jpg`)),
    new Random(0),
  )) as FloatImage;
  return tf.tensor4d(img.data, [1, 224, 224, 3]);
}

before(async () => {
  const backend = await selectBackend();
  assert.equal(backend.name, 'wasm', 'the wasm backend is the one that always installs');
  assert.match(
    backend.line,
    /^Using wasm backend \(SIMD, \d+ threads?(; native kernels: oneDNN \d+\.\d+\.\d+, \d+ threads?)?\)$/,
  );
  model = await createBoatModel({ classes: CLASSES, mode: 'feature-extractor' });
});

test('the bundled ImageNet weights name the fixture photos (cat, espresso)', async () => {
  const source = new KerasResNet50Imagenet();
  const { model: full } = await source.load();
  const labels = source.imagenetLabels();
  assert.equal(full.countParams(), 25_636_712);
  const top1 = async (name: string): Promise<string> => {
    const x = await photo(name);
    const p = full.predict(x) as tf.Tensor;
    const index = (await p.argMax(-1).data())[0];
    tf.dispose([x, p]);
    return labels[index];
  };
  assert.match(await top1('chelsea'), /^(tabby|tiger_cat|Egyptian_cat|Persian_cat|Siamese_cat)$/);
  assert.match(await top1('coffee'), /^(espresso|cup|coffee_mug)$/);
  full.dispose();
});

test('a corrupt or missing weight shard is a clear error naming the file', async () => {
  const real = new KerasResNet50Imagenet().dir;
  const dir = tempDir();
  for (const f of fs.readdirSync(real)) fs.symlinkSync(path.join(real, f), path.join(dir, f));
  const shard = path.join(dir, 'group1-shard7of25.bin');
  fs.unlinkSync(shard);
  const bytes = fs.readFileSync(path.join(real, 'group1-shard7of25.bin'));
  bytes[1000] ^= 0xff;
  fs.writeFileSync(shard, bytes);
  await assert.rejects(
    new KerasResNet50Imagenet(dir).load(),
    /weights file corrupt \(SHA-256 mismatch\): .*group1-shard7of25\.bin/,
  );
  fs.unlinkSync(shard);
  await assert.rejects(new KerasResNet50Imagenet(dir).load(), /weights file missing: .*group1-shard7of25\.bin/);
});

test('parameter counts: tutorial head 525,829 trainable; whole network when fine-tuning', () => {
  model.mode = 'feature-extractor';
  assert.deepEqual(model.paramCounts(), { total: 24_113_541, trainable: 525_829, nonTrainable: 23_587_712 });
  model.mode = 'finetune';
  // Only BatchNorm's moving mean and variance (53,120 values) stay non-trainable.
  assert.deepEqual(model.paramCounts(), { total: 24_113_541, trainable: 24_060_421, nonTrainable: 53_120 });
  model.mode = 'feature-extractor';
});

test('feature-extractor mode runs BatchNorm in inference mode even while training; finetune uses batch statistics', async () => {
  const a = await photo('chelsea');
  const b = await photo('coffee');
  const both = tf.concat([a, b]);
  const featuresOfA = (m: BoatModel, x: tf.Tensor4D): tf.Tensor =>
    tf.tidy(() => (m.backbone.apply(x, { training: m.mode === 'finetune' }) as tf.Tensor).slice([0, 0], [1, 2048]));
  const gap = (m: BoatModel): number =>
    tf.tidy(() => tf.max(tf.abs(tf.sub(featuresOfA(m, a), featuresOfA(m, both)))).dataSync()[0]);
  model.mode = 'feature-extractor';
  assert.ok(gap(model) < 1e-3, 'a frozen backbone gives an image the same features alone or in a batch');
  // forward(training=true) must not let batch statistics in: A's log-probs with dropout off are batch-independent.
  const logA = tf.tidy(() => model.forwardHead(model.features(a)).dataSync());
  const logAB = tf.tidy(() => model.forward(both, false).slice([0, 0], [1, 5]).dataSync());
  for (let i = 0; i < 5; i++) assert.ok(Math.abs(logA[i] - logAB[i]) < 1e-3);
  // Fine-tuning in training mode updates BatchNorm statistics, so use a second model for it.
  const other = await createBoatModel({ classes: CLASSES, mode: 'finetune' });
  assert.ok(gap(other) > 0.01, 'fine-tuning BatchNorm normalises with the batch, so the check above can fail');
  other.dispose();
  tf.dispose([a, b, both]);
});

test('the head trains on the wasm backend (NLL falls) without leaking tensors', async () => {
  const x = tf.concat([await photo('chelsea'), await photo('coffee'), await photo('astronaut')]);
  const features = model.features(x);
  const y = tf.tensor1d([0, 3, 4], 'int32');
  const optimizer = tf.train.momentum(0.01, 0.9);
  const losses: number[] = [];
  const counts: number[] = [];
  for (let step = 0; step < 15; step++) {
    const loss = optimizer.minimize(
      () => nllLoss(model.forwardHead(features, true), y),
      true,
      model.trainableVariables(),
    )!;
    losses.push((await loss.data())[0]);
    loss.dispose();
    counts.push(tf.memory().numTensors);
  }
  assert.ok(losses[losses.length - 1] < losses[0] * 0.5, `loss ${losses[0]} → ${losses[losses.length - 1]}`);
  assert.equal(new Set(counts.slice(1)).size, 1, `numTensors per step: ${counts}`);
  optimizer.dispose();
  tf.dispose([x, features, y]);
});

test('save and load: a feature extractor stores its head and finds its backbone by checksum', async () => {
  const dir = path.join(tempDir(), 'models', 'fe');
  const x = await photo('coffee');
  const before = tf.tidy(() => model.forward(x).dataSync());
  const metadata = await saveBoatModel(model, dir, { val_acc: 0.5 });
  assert.equal(metadata.backbone, 'pretrained');
  assert.equal(model.backboneChanged, false);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['.boat-generated.json', 'head', 'metadata.json']);
  const saved = JSON.parse(fs.readFileSync(path.join(dir, 'metadata.json'), 'utf8'));
  assert.deepEqual(
    [saved.classes, saved.preprocessing, saved.inputSize, saved.mode, saved.weightsId],
    [CLASSES, 'caffe', 224, 'feature-extractor', 'keras-resnet50-imagenet'],
  );
  const loaded = await loadBoatModel(dir);
  const after = tf.tidy(() => loaded.forward(x).dataSync());
  for (let i = 0; i < before.length; i++) assert.ok(Math.abs(before[i] - after[i]) < 1e-5);
  loaded.head.dispose();
  // A damaged file is refused by name.
  const weights = path.join(dir, 'head', 'weights.bin');
  const bytes = fs.readFileSync(weights);
  bytes[10] ^= 1;
  fs.writeFileSync(weights, bytes);
  await assert.rejects(loadBoatModel(dir), /model file damaged \(SHA-256 mismatch\): .*head\/weights\.bin/);
  tf.dispose(x);
});

test('loading a model trained with other preprocessing or backbone weights is a clear error', async () => {
  const dir = path.join(tempDir(), 'm');
  await saveBoatModel(model, dir);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'metadata.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'metadata.json'), JSON.stringify({ ...meta, preprocessing: 'imagenet' }));
  await assert.rejects(loadBoatModel(dir), /trained on backbone "keras-resnet50-imagenet" \(imagenet preprocessing\)/);
  fs.writeFileSync(path.join(dir, 'metadata.json'), JSON.stringify({ ...meta, weightsChecksum: 'f'.repeat(64) }));
  await assert.rejects(loadBoatModel(dir), /trained on other "keras-resnet50-imagenet" weights/);
  await assert.rejects(loadBoatModel(path.join(dir, 'nope')), /not a saved model/);
});

test('class mismatch between a model and a data folder names the classes', () => {
  assert.doesNotThrow(() => checkClassesMatch(CLASSES, [...CLASSES], 'data/test'));
  assert.throws(
    () => checkClassesMatch(CLASSES, ['buoy', ...CLASSES], 'data/test'),
    /the model's 5 classes do not match the 6 classes of data\/test \(not in the model: buoy\)/,
  );
});

test('a fine-tuned model saves its backbone too, and loads back to the same outputs', async () => {
  const tuned = await createBoatModel({ classes: CLASSES, mode: 'finetune' });
  const x = tf.concat([await photo('chelsea'), await photo('coffee')]);
  tf.dispose(tuned.forward(x, true)); // training mode moves BatchNorm statistics: the backbone changed
  assert.equal(tuned.backboneChanged, true);
  const dir = path.join(tempDir(), 'ft');
  const metadata = await saveBoatModel(tuned, dir);
  assert.equal(metadata.backbone, 'saved');
  const expected = tf.tidy(() => tuned.forward(x).dataSync());
  tuned.dispose();
  const loaded = await loadBoatModel(dir);
  assert.equal(loaded.mode, 'finetune');
  const actual = tf.tidy(() => loaded.forward(x).dataSync());
  for (let i = 0; i < expected.length; i++)
    assert.ok(Math.abs(expected[i] - actual[i]) < 1e-4, `${expected[i]} vs ${actual[i]}`);
  loaded.dispose();
  tf.dispose(x);
});
