import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import * as tf from '../lib/engine/tf';

import { DataLoader, evalTransforms, ImageFolder, trainTransforms } from '../lib';
import { makeImageFolder, tempDir } from './helpers';

async function folder(counts: Record<string, number>): Promise<string> {
  const dir = tempDir();
  await makeImageFolder(dir, counts);
  return dir;
}

test('ImageFolder: sorted classes, torchvision-style classToIdx, labels from folders', async () => {
  const dir = await folder({ sailboat: 2, kayak: 3, cruise_ship: 1 });
  fs.writeFileSync(path.join(dir, 'kayak', 'notes.txt'), 'x');
  const ds = new ImageFolder(dir, evalTransforms());
  assert.deepEqual(ds.classes, ['cruise_ship', 'kayak', 'sailboat']);
  assert.deepEqual(ds.classToIdx, { cruise_ship: 0, kayak: 1, sailboat: 2 });
  assert.equal(ds.length, 6);
  assert.deepEqual(
    ds.samples.map((s) => s.label),
    [0, 1, 1, 1, 2, 2],
  );
  assert.ok(ds.skipped.some((s) => s.path.endsWith('notes.txt')));
});

test('an empty dataset is a clear error', () => {
  const dir = tempDir();
  fs.mkdirSync(path.join(dir, 'kayak'));
  assert.throws(() => new ImageFolder(dir, evalTransforms()), /no images found/);
});

test('batches: shapes, int32 labels, last partial batch, dropLast, every sample once per epoch', async () => {
  const dir = await folder({ a: 4, b: 3 });
  const ds = new ImageFolder(dir, evalTransforms());
  const loader = new DataLoader(ds, { batchSize: 3, shuffle: true, seed: 1 });
  assert.equal(loader.length, 3);
  const sizes: number[] = [];
  const files: string[] = [];
  for await (const batch of loader.batches(0)) {
    assert.deepEqual(batch.x.shape.slice(1), [224, 224, 3]);
    assert.equal(batch.x.dtype, 'float32');
    assert.equal(batch.y.dtype, 'int32');
    const labels = Array.from(await batch.y.data());
    batch.files.forEach((f, i) => assert.equal(labels[i], ds.classToIdx[path.basename(path.dirname(f))]));
    sizes.push(batch.x.shape[0]);
    files.push(...batch.files);
    tf.dispose([batch.x, batch.y]);
  }
  assert.deepEqual(sizes, [3, 3, 1]);
  assert.deepEqual([...files].sort(), ds.samples.map((s) => s.file).sort());
  const dropped = new DataLoader(ds, { batchSize: 3, dropLast: true });
  let n = 0;
  for await (const batch of dropped.batches(0)) {
    n++;
    tf.dispose([batch.x, batch.y]);
  }
  assert.equal(n, 2);
});

test('same seed and epoch give identical augmented batches; another epoch a new order and new views', async () => {
  const dir = await folder({ a: 3, b: 3 });
  const ds = new ImageFolder(dir, trainTransforms());
  const collect = async (seed: number, epoch: number): Promise<{ files: string[]; x: Float32Array }> => {
    const loader = new DataLoader(ds, { batchSize: 6, shuffle: true, seed, concurrency: 3 });
    for await (const batch of loader.batches(epoch)) {
      const x = (await batch.x.data()) as Float32Array;
      tf.dispose([batch.x, batch.y]);
      return { files: batch.files, x };
    }
    throw new Error('no batch');
  };
  const a = await collect(5, 2);
  const b = await collect(5, 2);
  assert.deepEqual(a.files, b.files);
  assert.deepEqual(a.x, b.x);
  const c = await collect(5, 3);
  assert.notDeepEqual(c.x, a.x);
});

test('no tensor leaks: numTensors is flat across epochs and after an early break', async () => {
  const dir = await folder({ a: 5, b: 4 });
  const loader = new DataLoader(new ImageFolder(dir, trainTransforms()), { batchSize: 4, shuffle: true, seed: 2 });
  const before = tf.memory().numTensors;
  const counts: number[] = [];
  for (let epoch = 0; epoch < 3; epoch++) {
    for await (const batch of loader.batches(epoch)) {
      const mean = tf.tidy(() => batch.x.mean());
      mean.dispose();
      tf.dispose([batch.x, batch.y]);
    }
    counts.push(tf.memory().numTensors);
  }
  assert.deepEqual(counts, [before, before, before]);
  for await (const batch of loader.batches(0)) {
    tf.dispose([batch.x, batch.y]);
    break; // the prefetched next batch is plain arrays, not tensors
  }
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(tf.memory().numTensors, before);
});

test('an unreadable image is skipped with a one-line reason and never stops the epoch', async () => {
  const dir = await folder({ a: 3, b: 3 });
  const good = fs.readFileSync(path.join(dir, 'a', 'a_000.jpg'));
  fs.writeFileSync(path.join(dir, 'a', 'truncated.jpg'), good.subarray(0, 100));
  fs.writeFileSync(path.join(dir, 'b', 'fake.jpg'), 'not an image at all');
  const ds = new ImageFolder(dir, evalTransforms());
  const loader = new DataLoader(ds, { batchSize: 4 });
  let seen = 0;
  for await (const batch of loader.batches(0)) {
    seen += batch.x.shape[0];
    tf.dispose([batch.x, batch.y]);
  }
  assert.equal(seen, 6);
  const reasons = ds.skipped.map((s) => [path.basename(s.path), s.reason]);
  assert.deepEqual(reasons.map((r) => r[0]).sort(), ['fake.jpg', 'truncated.jpg']);
  for (const [, reason] of reasons) assert.doesNotMatch(reason, /\n/);
});

test('decode workers and the main thread give identical batches', async () => {
  const dir = await folder({ a: 3, b: 2 });
  const ds = new ImageFolder(dir, trainTransforms());
  const first = async (workers: number): Promise<Float32Array> => {
    for await (const batch of new DataLoader(ds, { batchSize: 5, shuffle: true, seed: 9, workers }).batches(1)) {
      const x = (await batch.x.data()) as Float32Array;
      tf.dispose([batch.x, batch.y]);
      return x;
    }
    throw new Error('no batch');
  };
  const inProcess = await first(0);
  assert.deepEqual(await first(2), inProcess);
});

test('prefetching more batches ahead changes nothing in what comes out; a prefetch below 1 is an error', async () => {
  const dir = await folder({ a: 4, b: 3 });
  const ds = new ImageFolder(dir, trainTransforms());
  const all = async (prefetch: number): Promise<{ x: number[]; files: string[] }> => {
    const out = { x: [] as number[], files: [] as string[] };
    for await (const batch of new DataLoader(ds, {
      batchSize: 2,
      shuffle: true,
      seed: 4,
      workers: 2,
      prefetch,
    }).batches(0)) {
      out.x.push(...((await batch.x.data()) as Float32Array).filter((_, i) => i % 997 === 0));
      out.files.push(...batch.files);
      tf.dispose([batch.x, batch.y]);
    }
    return out;
  };
  const before = tf.memory().numTensors;
  const one = await all(1);
  assert.equal(one.files.length, 7);
  assert.deepEqual(await all(3), one);
  assert.deepEqual(await all(2), one);
  assert.equal(tf.memory().numTensors, before);
  assert.throws(() => new DataLoader(ds, { prefetch: 0 }), /prefetch must be a positive integer, got 0/);
});

test('a loader over a subset of indices gives each sample the same augmentation as the full loader', async () => {
  const dir = await folder({ a: 3, b: 3 });
  const ds = new ImageFolder(dir, trainTransforms());
  const byIndex = async (loader: DataLoader): Promise<Map<number, Float32Array>> => {
    const out = new Map<number, Float32Array>();
    for await (const batch of loader.batches(2)) {
      const x = (await batch.x.data()) as Float32Array;
      const size = x.length / batch.indices.length;
      batch.indices.forEach((i, j) => out.set(i, x.slice(j * size, (j + 1) * size)));
      assert.deepEqual(
        batch.files,
        batch.indices.map((i) => ds.samples[i].file),
      );
      tf.dispose([batch.x, batch.y]);
    }
    return out;
  };
  const full = await byIndex(new DataLoader(ds, { batchSize: 4, seed: 3, workers: 0 }));
  const subset = await byIndex(new DataLoader(ds, { batchSize: 4, seed: 3, workers: 0, indices: [4, 1] }));
  assert.deepEqual([...subset.keys()], [4, 1]);
  assert.equal(new DataLoader(ds, { batchSize: 4, indices: [4, 1] }).length, 1);
  for (const [i, x] of subset) assert.deepEqual(x, full.get(i));
});
