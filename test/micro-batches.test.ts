/**
 * A fine-tune's passes (lib/train/micro-batches.ts, lib/engine/wasm-heap.ts): a batch runs in one pass
 * where the wasm heap holds it, so BatchNorm sees the real batch, and else as equal micro-batches that
 * fit. The heap model must err high: a real bf16 pass of 32 images at 224 px runs, and peaks below it.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../lib/engine/tf';

import { createBoatModel, nativeKernelsInUse, selectBackend, setBf16Storage } from '../lib';
import { wasmHeapMb, wasmTrainingPassLimit, wasmTrainingPassMb } from '../lib/engine';
import { fineTuneStepper } from '../lib/bench/model';
import { fineTunePasses, splitBatch } from '../lib/train';
import { skipWithoutNativeBf16 } from './native-skips';

let nativeOn = false;

before(async () => {
  assert.equal((await selectBackend(undefined, 'fp32')).name, 'wasm');
  nativeOn = nativeKernelsInUse() !== null;
});

/** The wasm heap's size now (MB): it grows to a step's peak and never shrinks. */
const heapMb = (): number => wasmHeapMb()!;

// First in this file: the heap keeps the largest size anything before it needed.
test('a bf16 ResNet50 training pass of 32 images at 224 px fits the wasm heap in one pass, below the estimate the plan uses', async (t) => {
  if (skipWithoutNativeBf16(t, nativeOn)) return;
  assert.equal((await selectBackend(undefined, 'bf16')).precision, 'bf16');
  assert.ok(wasmTrainingPassLimit(224) >= 32, `limit ${wasmTrainingPassLimit(224)}`);
  const model = await createBoatModel({ classes: ['a', 'b', 'c', 'd', 'e'], mode: 'finetune', inputSize: 224 });
  const stepper = fineTuneStepper(model, 32, 224);
  try {
    stepper.step();
    const tensors = tf.memory().numTensors;
    stepper.step();
    assert.equal(tf.memory().numTensors, tensors, 'numTensors flat');
    const estimate = wasmTrainingPassMb(224, 32)!;
    t.diagnostic(`heap ${heapMb().toFixed(0)} MB, estimate ${estimate.toFixed(0)} MB`);
    assert.ok(heapMb() <= estimate, `heap ${heapMb()} MB, estimated ${estimate}`);
  } finally {
    stepper.dispose();
    model.dispose();
    await selectBackend(undefined, 'fp32');
  }
});

test('the pass limit follows precision, bf16 storage, pixels and the native kernels', async (t) => {
  if (!nativeOn) return t.skip('native addon not in use');
  const fp32 = wasmTrainingPassLimit(224);
  assert.ok(fp32 >= 16 && fp32 < 32, `fp32 at 224 px: ${fp32}`);
  assert.ok(wasmTrainingPassLimit(320) < fp32 / 2 + 1, 'about half at 320 px');
  assert.ok(wasmTrainingPassLimit(64) > 200, 'small images: many');
  if (skipWithoutNativeBf16(t, nativeOn)) return;
  await selectBackend(undefined, 'bf16');
  try {
    const bf16 = wasmTrainingPassLimit(224);
    assert.ok(bf16 > fp32, `bf16 ${bf16} against fp32 ${fp32}`);
    setBf16Storage(false);
    assert.equal(wasmTrainingPassLimit(224), fp32, 'bf16 without its storage holds what fp32 holds');
  } finally {
    setBf16Storage(true);
    await selectBackend(undefined, 'fp32');
  }
});

test('a batch splits into equal micro-batches that fit where it can, and into nearly equal ones where not', () => {
  assert.deepEqual(splitBatch(32, 40), { size: 32 });
  assert.deepEqual(splitBatch(128, 40), { size: 32, accumulate: 4 });
  assert.deepEqual(splitBatch(128, 29), { size: 16, accumulate: 8 });
  assert.deepEqual(splitBatch(100, 29), { size: 25, accumulate: 4 });
  assert.deepEqual(splitBatch(32, 19), { size: 16, accumulate: 2 });
  assert.deepEqual(splitBatch(97, 29), { size: 25, accumulate: 4 }, 'a prime batch: 4 passes of up to 25');
  assert.deepEqual(splitBatch(7, 1), { size: 1, accumulate: 7 });
});

test("fine-tune passes: the user's --accumulate is kept, other backends run one pass, wasm splits what its heap cannot hold and says so", () => {
  assert.deepEqual(fineTunePasses(32, 4, 'wasm', 224, false), { size: 8, accumulate: 4 });
  assert.deepEqual(fineTunePasses(128, undefined, 'webgpu', 224, false), { size: 128, accumulate: undefined });
  const small = fineTunePasses(32, undefined, 'wasm', 64, false);
  if (nativeOn) assert.deepEqual(small, { size: 32 }, 'small images: one pass, no note');
  else assert.equal(small.size, 8, "wasm's own kernels: passes of 8");
  const limit = wasmTrainingPassLimit(224);
  const big = fineTunePasses(4 * limit, undefined, 'wasm', 224, false);
  assert.ok(big.size <= limit && big.size * big.accumulate! >= 4 * limit, JSON.stringify(big));
  assert.match(big.note!, new RegExp(`runs as ${big.accumulate} accumulated micro-batches of up to ${big.size}`));
  assert.match(big.note!, /BatchNorm sees the statistics of \d+ images/);
  assert.match(fineTunePasses(4 * limit, undefined, 'wasm', 224, true).note!, /with BatchNorm frozen that is exact/);
});
