/**
 * bf16 storage (lib/engine/bf16-storage.ts): in bf16, BatchNorm + ReLU outputs that only a convolution
 * reads and BatchNorm gradients that only a convolution's gradients read are written as bf16 into their
 * own buffers. A ResNet50 step must compute exactly what it computes without it, expanding nothing; a
 * packed tensor that anything else reads (dataSync, a wasm kernel, the kernels without the addon's) must
 * read as its bf16 values; the addon's conversion must be oneDNN's bit for bit.
 */
import assert from 'node:assert/strict';
import { after, before, test, type TestContext } from 'node:test';
import * as tf from '../lib/engine/tf';

import {
  bf16StorageCounts,
  createBoatModel,
  loadNativeAddon,
  nativeKernelsInUse,
  nllLoss,
  selectBackend,
  setBf16Storage,
  setNativeKernels,
} from '../lib';
import { markPacked, packedOutput } from '../lib/engine/bf16-storage';
import { geometryOf } from '../lib/engine/native-kernels';
import { randomArray } from './conv-cases';
import { skipWithoutNativeBf16 } from './native-skips';

let nativeOn = false;

before(async () => {
  assert.equal((await selectBackend(undefined, 'fp32')).name, 'wasm');
  nativeOn = nativeKernelsInUse() !== null;
});

after(async () => {
  setBf16Storage(true);
  await selectBackend(undefined, 'fp32');
});

async function inBf16(t: TestContext): Promise<boolean> {
  if (skipWithoutNativeBf16(t, nativeOn)) return false;
  assert.equal((await selectBackend(undefined, 'bf16')).precision, 'bf16');
  return true;
}

/** float32 → bf16 → float32 as round to nearest even (denormals to zero), the hardware's conversion. */
function bf16Rounded(values: Float32Array): Float32Array {
  const bits = new Uint32Array(Float32Array.from(values).buffer);
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i];
    if ((u & 0x7f800000) === 0) bits[i] = u & 0x80000000;
    else if ((u & 0x7fffffff) > 0x7f800000) bits[i] = (u | 0x400000) & 0xffff0000;
    else bits[i] = ((u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000) >>> 0;
  }
  return new Float32Array(bits.buffer);
}

/** Values that exercise the rounding: ties both ways, denormals, ±0, infinities, NaN, large and small. */
function awkwardValues(n: number): Float32Array {
  const v = Float32Array.from(randomArray([n], 3), (x, i) => x * 10 ** ((i % 9) - 4));
  const bits = new Uint32Array(v.buffer);
  for (let i = 0; i < n; i += 7) bits[i] = (bits[i] & 0xffff0000) | 0x8000; // exactly halfway
  [0, -0, 1e-40, -1e-40, Infinity, -Infinity, NaN, 3.4e38, 1].forEach((x, i) => (v[i] = x));
  return v;
}

test("the addon's bf16 packing is oneDNN's conversion bit for bit, and expanding gives those values back", async (t) => {
  if (!(await inBf16(t))) return;
  const loaded = loadNativeAddon();
  assert.ok('native' in loaded && 'packBf16' in loaded.native && 'expandBf16' in loaded.native, 'the addon packs');
  const addon = loaded.native;
  const n = 4096 * 3 + 5; // more than one chunk, and a tail shorter than a vector
  const values = awkwardValues(n);
  // oneDNN's own conversion: a 1×1 convolution by the identity in bf16 reads x converted, multiplies by 1
  // and accumulates in float32, so its output is exactly the converted x (NaN aside).
  // (finite values only: its bf16 kernel for one input channel mixes a NaN into a neighbour's output)
  const x = tf.tensor4d(
    values.map((v) => (Number.isFinite(v) ? v : 0)),
    [1, 1, n, 1],
  );
  const conv = tf.tidy(() => tf.conv2d(x, tf.ones<tf.Rank.R4>([1, 1, 1, 1]), 1, 'valid'));
  const viaConv = conv.dataSync();
  const buffer = Float32Array.from(values);
  addon.packBf16!(buffer);
  addon.expandBf16!(buffer);
  const expected = bf16Rounded(values);
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(values[i])) {
      assert.ok(Number.isNaN(buffer[i]), `NaN at ${i} stays NaN`);
      continue;
    }
    assert.ok(
      Object.is(buffer[i], expected[i]),
      `${values[i]}: packed and expanded ${buffer[i]}, expected ${expected[i]}`,
    );
    // (== : the convolution's float32 accumulation turns −0 into +0)
    if (Number.isFinite(values[i]))
      assert.ok(
        buffer[i] === viaConv[i],
        `${values[i]}: oneDNN converted it to ${viaConv[i]}, packing to ${buffer[i]}`,
      );
  }
  tf.dispose(x);
});

/** Two SGD steps of a small ResNet50 fine-tune from the same weights; returns the losses, every weight after, and the storage's counts. */
async function twoSteps(
  model: Awaited<ReturnType<typeof createBoatModel>>,
  start: tf.Tensor[],
  storage: false | { rounding: boolean },
) {
  const was = setBf16Storage(storage !== false, storage || {});
  try {
    const variables = [...model.backbone.weights.map((w) => w.read()), ...model.trainableVariables()];
    const unique = [...new Set(variables)] as tf.Variable[];
    unique.forEach((v, i) => v.assign(start[i]));
    const x = tf.tensor4d(
      randomArray([4, 64, 64, 3], 9).map((v) => v * 100),
      [4, 64, 64, 3],
    );
    const y = tf.tensor1d([0, 2, 1, 0], 'int32');
    const opt = tf.train.sgd(0.01);
    const counts = bf16StorageCounts();
    const tensors: number[] = [];
    const losses: number[] = [];
    for (let i = 0; i < 2; i++) {
      const loss = opt.minimize(() => nllLoss(model.forward(x, true), y), true, model.trainableVariables());
      losses.push(loss!.dataSync()[0]);
      loss!.dispose();
      tensors.push(tf.memory().numTensors);
    }
    opt.dispose();
    tf.dispose([x, y]);
    const after = bf16StorageCounts();
    return {
      losses,
      weights: unique.map((v) => Array.from(v.dataSync())),
      packed: after.packed - counts.packed,
      halfSize: after.halfSize - counts.halfSize,
      expanded: after.expanded - counts.expanded,
      tensors,
    };
  } finally {
    setBf16Storage(was);
  }
}

type Steps = Awaited<ReturnType<typeof twoSteps>>;

/** Two steps of a 64 px ResNet50 with the storage off and with `storage`, training and frozen BatchNorm, each pair to `check`. */
async function onAndOff(
  storage: { rounding: boolean },
  check: (on: Steps, off: Steps, frozen: boolean) => void,
): Promise<void> {
  const model = await createBoatModel({ classes: ['a', 'b', 'c'], mode: 'finetune', inputSize: 64 });
  const variables = [...new Set([...model.backbone.weights.map((w) => w.read()), ...model.trainableVariables()])];
  const start = variables.map((v) => v.clone());
  try {
    for (const frozen of [false, true]) {
      model.batchNormFrozen = frozen;
      const off = await twoSteps(model, start, false);
      assert.equal(off.packed, 0, 'nothing packed with the storage off');
      check(await twoSteps(model, start, storage), off, frozen);
    }
  } finally {
    tf.dispose(start);
    model.dispose();
  }
}

test("a ResNet50 step in bf16 computes the same loss and weights bit for bit with the BatchNorms' tensors stored as bf16 or not, training and frozen BatchNorm, expanding nothing, numTensors flat", async (t) => {
  if (!(await inBf16(t))) return;
  await onAndOff({ rounding: false }, (on, off, frozen) => {
    // Per step: the 32 BatchNorm + ReLU outputs inside the 16 bottleneck blocks (the stem's goes to the
    // max-pool), and all 53 BatchNorm gradients (each follows a convolution that it alone reads).
    assert.equal(on.packed, 2 * (32 + 53), `packed tensors, frozen BatchNorm: ${frozen}`);
    assert.equal(on.halfSize, on.packed, 'each in a buffer of half its float32 size');
    assert.equal(on.expanded, 0, 'no packed tensor was expanded for another reader');
    assert.deepEqual(on.losses, off.losses, `losses, frozen BatchNorm: ${frozen}`);
    assert.ok(
      on.weights.every((w, i) => w.every((v, k) => Object.is(v, off.weights[i][k]))),
      `every weight and moving statistic the same, frozen BatchNorm: ${frozen}`,
    );
    assert.equal(on.tensors[1], on.tensors[0], 'numTensors flat across steps');
    assert.equal(on.tensors[1], off.tensors[1], 'the same tensors as without the storage');
  });
});

test("with the convolutions' and the blocks' outputs stored as bf16 too, a ResNet50 step packs each of them, expands nothing and keeps numTensors flat", async (t) => {
  if (!(await inBf16(t))) return;
  await onAndOff({ rounding: true }, (on, off, frozen) => {
    // 85 as above, the 53 convolutions' outputs and the outputs of the first 15 blocks (the pooling reads the last's)
    assert.equal(on.packed, 2 * (32 + 53 + 53 + 15), `packed tensors, frozen BatchNorm: ${frozen}`);
    assert.equal(on.halfSize, on.packed, 'each in a buffer of half its float32 size');
    assert.equal(on.expanded, 0, 'no packed tensor was expanded for another reader');
    assert.equal(on.tensors[1], on.tensors[0], 'numTensors flat across steps');
    // The first loss, before any update: bf16 rounding moves it, BatchNorm over the 16 positions of the last
    // stage at 64 px amplifying it (measured: 4.7% and 0.2%; bf16 against fp32 moves it as much).
    const gap = Math.abs(on.losses[0] - off.losses[0]) / off.losses[0];
    t.diagnostic(`frozen BatchNorm ${frozen}: first loss ${on.losses[0]} against ${off.losses[0]}`);
    assert.ok(gap > 0 && gap < 0.1, `first loss ${on.losses[0]} against ${off.losses[0]}`);
  });
});

/** The wasm backend's parts that the half-size buffers use. */
interface WasmBuffers {
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } };
}

for (const half of [false, true])
  test(`a packed tensor ${half ? 'in a half-size buffer' : 'in its float32 buffer'} reads as its bf16 values everywhere else: dataSync, data, a wasm kernel, a clone, the kernels without the addon`, async (t) => {
    if (!(await inBf16(t))) return;
    const loaded = loadNativeAddon();
    assert.ok('native' in loaded);
    const values = awkwardValues(1000).map((v) => (Math.abs(v) < 1e30 ? v : 1)); // sums stay finite
    const expected = Array.from(bf16Rounded(values));
    const heap = tf.backend() as unknown as WasmBuffers;
    const packedTensor = (): tf.Tensor => {
      if (!half) {
        const p = tf.tensor2d(values, [10, 100]);
        loaded.native.packBf16!(heap.typedArrayFromHeap(p));
        return markPacked(p);
      }
      // As a packing kernel writes it: only the bf16 half, into the buffer packedOutput placed
      const info = packedOutput(heap, [10, 100]);
      const bf16 = Float32Array.from(values);
      loaded.native.packBf16!(bf16);
      heap.wasm.HEAPU8.set(
        new Uint8Array(bf16.buffer, 0, values.length * 2),
        heap.dataIdMap.get(info.dataId).memoryOffset,
      );
      return tf.engine().makeTensorFromTensorInfo(info);
    };
    const halfBefore = bf16StorageCounts().halfSize;
    const before = bf16StorageCounts().expanded;
    const a = packedTensor();
    assert.deepEqual(Array.from(a.dataSync()), expected, 'dataSync');
    assert.deepEqual(Array.from(a.dataSync()), expected, 'read twice, expanded once');
    const b = packedTensor();
    assert.deepEqual(Array.from(await b.data()), expected, 'data()');
    const c = packedTensor();
    const sum = tf.mul(c, tf.onesLike(c));
    assert.deepEqual(Array.from(sum.dataSync()), expected, "wasm's Multiply");
    const d = packedTensor();
    const copy = tf.clone(d); // Identity shares the data: still packed, read as one
    assert.deepEqual(Array.from(copy.dataSync()), expected, 'a clone');
    assert.deepEqual(Array.from(d.dataSync()), expected, 'the original after its clone expanded');
    const e = packedTensor();
    const wasNative = setNativeKernels(false);
    let columns: Float32Array;
    try {
      columns = tf.sum(e, 0).dataSync() as Float32Array;
    } finally {
      setNativeKernels(wasNative);
    }
    const column = (k: number) => Array.from({ length: 10 }, (_, r) => expected[r * 100 + k]);
    columns.forEach((v, k) => {
      const sum = column(k).reduce((p, q) => p + q);
      const scale = column(k).reduce((p, q) => p + Math.abs(q), 0);
      assert.ok(Math.abs(v - sum) <= 1e-6 * scale, `column ${k}: ${v}, expected ${sum}`);
    });
    assert.equal(bf16StorageCounts().expanded - before, 5, 'each packed tensor expanded once');
    assert.equal(bf16StorageCounts().halfSize - halfBefore, half ? 5 : 0, 'half-size buffers');
    tf.dispose([a, b, c, sum, d, copy, e]);
  });

test('a half-size buffer is placed only where a full-length view of it stays inside the heap; elsewhere the output gets its whole float32 buffer', () => {
  // A stand-in for the wasm backend's allocator: a 1,000-byte heap, the next allocation at `next`
  const calls: string[] = [];
  const fake = (next: number) => ({
    wasm: {
      HEAPU8: new Uint8Array(1000),
      _malloc: (bytes: number) => (calls.push(`malloc ${bytes}`), next),
      _free: (offset: number) => calls.push(`free ${offset}`),
    },
    makeOutput: (shape: number[], dtype: tf.DataType, offset?: number) => {
      calls.push(offset === undefined ? 'whole' : `at ${offset}`);
      return { dataId: {}, shape, dtype };
    },
  });
  packedOutput(fake(600), [100]); // 200 bytes at 600; a 400-byte view ends at 1,000
  assert.deepEqual(calls.splice(0), ['malloc 200', 'at 600']);
  packedOutput(fake(601), [100]); // the view would end at 1,001
  assert.deepEqual(calls.splice(0), ['malloc 200', 'free 601', 'whole']);
  packedOutput(fake(8), []); // a scalar: one value
  assert.deepEqual(calls.splice(0), ['malloc 2', 'at 8']);
});

test("the BatchNorm kernels read a packed x exactly as its bf16 values, and a convolution's packed output is its float32 output rounded to bf16", async (t) => {
  if (!(await inBf16(t))) return;
  const loaded = loadNativeAddon();
  assert.ok('native' in loaded);
  const addon = loaded.native;
  const [rows, c] = [300, 32];
  const x = Float32Array.from(randomArray([rows * c], 11), (v) => v * 4 + 1);
  const rounded = bf16Rounded(x);
  const packedX = (): Float32Array => {
    const p = Float32Array.from(x);
    addon.packBf16!(p);
    return p;
  };
  const perChannel = (seed: number) => Float32Array.from(randomArray([c], seed), (v) => v + 1);
  const [gamma, beta] = [perChannel(12), perChannel(13)];
  const train = (input: Float32Array, flags: number) => {
    const out = [rows * c, c, c, c].map((n) => new Float32Array(n));
    addon.batchNormTrainRelu!(input, gamma, beta, 1e-3, out[0], out[1], out[2], out[3], flags);
    return out;
  };
  const expected = train(rounded, 0);
  assert.deepEqual(train(packedX(), 2), expected, 'training BatchNorm + ReLU: y, mean, variance, 1/σ');
  const [, mean, , invStd] = expected;
  const dy = Float32Array.from(randomArray([rows * c], 14));
  const y = expected[0];
  const grad = (input: Float32Array, flags: number) => {
    const out = [rows * c, c, c].map((n) => new Float32Array(n));
    addon.batchNormTrainReluGrad!(
      dy,
      input,
      mean,
      invStd,
      gamma,
      out[0],
      out[1],
      out[2],
      y,
      new Float32Array(c),
      flags,
    );
    return out;
  };
  assert.deepEqual(grad(packedX(), 4), grad(rounded, 0), 'its gradient: dx, dγ, dβ');
  const inference = (input: Float32Array, flags: number) => {
    const out = new Float32Array(rows * c);
    addon.batchNormRelu!(input, mean, perChannel(15), beta, gamma, 1e-3, out, flags);
    return out;
  };
  assert.deepEqual(inference(packedX(), 2), inference(rounded, 0), 'BatchNorm + ReLU with given statistics');
  // The residual add + ReLU reading packed inputs and writing a packed output; ReLU's gradient reading a packed x.
  const other = Float32Array.from(randomArray([rows * c], 18), (v) => v * 3);
  const sum = (p: Float32Array, q: Float32Array, flags: number) => {
    const out = new Float32Array(rows * c);
    addon.addRelu!(p, q, out, flags);
    return out;
  };
  const packedOther = Float32Array.from(other);
  addon.packBf16!(packedOther);
  const packedSum = sum(packedX(), packedOther, 1 | 2 | 4);
  addon.expandBf16!(packedSum);
  assert.deepEqual(packedSum, bf16Rounded(sum(rounded, bf16Rounded(other), 0)), 'add + ReLU, packed in and out');
  const reluGrad = (input: Float32Array, flags: number) => {
    const out = new Float32Array(rows * c);
    addon.reluGrad!(dy, input, out, flags);
    return out;
  };
  const centred = Float32Array.from(x, (v) => v - 1);
  const packedCentred = Float32Array.from(centred);
  addon.packBf16!(packedCentred);
  assert.deepEqual(reluGrad(packedCentred, 4), reluGrad(bf16Rounded(centred), 0), "ReLU's gradient, packed x");

  // A convolution writing its output packed: oneDNN rounds its float32 accumulation to bf16.
  const [n, h, w, ci, co] = [2, 9, 9, 16, 32];
  const input = tf.tensor4d(randomArray([n, h, w, ci], 16), [n, h, w, ci]);
  const filter = tf.tensor4d(randomArray([3, 3, ci, co], 17), [3, 3, ci, co]);
  const floatOut = tf.conv2d(input, filter, 1, 'same');
  const geometry = geometryOf(tf.backend_util.computeConv2DInfo(input.shape, filter.shape, 1, 1, 'same'));
  const out = new Float32Array(floatOut.size);
  addon.conv2d(geometry, input.dataSync() as Float32Array, filter.dataSync() as Float32Array, null, out, false, 0, 2);
  addon.expandBf16!(out);
  assert.deepEqual(
    Array.from(out),
    Array.from(bf16Rounded(floatOut.dataSync() as Float32Array)),
    'packed convolution output',
  );
  tf.dispose([input, filter, floatOut]);
});
