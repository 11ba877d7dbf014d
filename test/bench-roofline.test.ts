/**
 * The roofline of `boat bench`: the FLOP count of a network from its layer shapes (a tiny network and
 * ResNet50, each against a hand computation), the native GEMM timing on a small product, and the JSON
 * keys that relate the network's achieved GFLOP/s to the GEMM's.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../lib/engine/tf';

import { createBoatModel, loadNativeAddon, nativeBf16Support, nativeKernelsInUse, selectBackend } from '../lib';
import { forwardFlopsPerExample } from '../lib/bench/flops';
import { nativeGemmGflops } from '../lib/bench/gemm';
import { rooflineKeys, TRAIN_STEP_FORWARDS } from '../lib/bench/roofline';
import { skipRestUnlessCi } from './helpers';

before(async () => {
  await selectBackend();
});

test('the FLOP count of a small network is 2 per multiply-add of its convolutions and dense layers', () => {
  const inner = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [10], units: 3 })],
  });
  const model = tf.sequential({
    layers: [
      // 8×8×3 → 8×8×4 ('same'), 3×3 kernel: 8·8·4 outputs × 3·3·3 multiply-adds each
      tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 4, kernelSize: 3, padding: 'same' }),
      tf.layers.batchNormalization(),
      tf.layers.reLU(),
      // stride 2, 'valid', 2×2 kernel: 4·4·5 outputs × 2·2·4 each
      tf.layers.conv2d({ filters: 5, kernelSize: 2, strides: 2 }),
      // depthwise 3×3, multiplier 2, 'valid': 2·2·10 outputs × 3·3 each
      tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2 }),
      tf.layers.flatten(), // 40
      tf.layers.dense({ units: 10 }), // 10 outputs × 40 each
      inner, // nested: 3 outputs × 10 each
    ],
  });
  const macs = 8 * 8 * 4 * 27 + 4 * 4 * 5 * 16 + 2 * 2 * 10 * 9 + 10 * 40 + 3 * 10;
  assert.equal(forwardFlopsPerExample(model), 2 * macs);
  model.dispose();
});

test("ResNet50's count at 224 px matches the architecture computed by hand (Keras' v1: stride in the first 1×1)", async () => {
  const model = await createBoatModel({ classes: ['a', 'b', 'c', 'd', 'e'], mode: 'finetune' });
  let macs = 112 * 112 * 64 * 7 * 7 * 3; // the stem, 7×7 stride 2
  let [size, channels] = [56, 64]; // after the 3×3 max pool
  for (const [blocks, mid, out, stride] of [
    [3, 64, 256, 1],
    [4, 128, 512, 2],
    [6, 256, 1024, 2],
    [3, 512, 2048, 2],
  ]) {
    for (let b = 0; b < blocks; b++) {
      if (b === 0) size /= stride;
      const area = size * size;
      macs += area * (channels * mid + mid * mid * 9 + mid * out); // 1×1, 3×3, 1×1
      if (b === 0) macs += area * channels * out; // the projection shortcut
      channels = out;
    }
  }
  assert.equal(forwardFlopsPerExample(model.backbone), 2 * macs);
  assert.equal(2 * macs, 7_711_850_496); // 3.86 GMACs
  assert.equal(forwardFlopsPerExample(model.head), 2 * (2048 * 256 + 256 * 5));
  model.dispose();
});

test('the native GEMM rate of a 256×256 product is a positive finite GFLOP/s, in bf16 only where native', (t) => {
  if (nativeKernelsInUse() === null) {
    const loaded = loadNativeAddon();
    const why = 'reason' in loaded ? loaded.reason : 'turned off';
    if (why === 'BOAT_NATIVE=0') return t.skip('native addon turned off (BOAT_NATIVE=0)');
    if (skipRestUnlessCi(t, `native addon not available: ${why}`)) return;
  }
  const before = tf.memory().numTensors;
  const fp32 = nativeGemmGflops(256, 'fp32', 2);
  assert.ok('gflops' in fp32 && Number.isFinite(fp32.gflops) && fp32.gflops > 0, JSON.stringify(fp32));
  assert.equal(fp32.samples, 2, 'the best of 2 samples after the warm-up');
  const bf16 = nativeGemmGflops(256, 'bf16', 2);
  if (nativeBf16Support().ok)
    assert.ok('gflops' in bf16 && Number.isFinite(bf16.gflops) && bf16.gflops > 0, JSON.stringify(bf16));
  else assert.deepEqual(bf16, { reason: 'this CPU has no native bf16 (AVX512_BF16 or AMX)' });
  assert.equal(tf.memory().numTensors, before);
});

test('the roofline keys: achieved GFLOP/s from img/s and the FLOP count, and their shares of the GEMM rate', () => {
  assert.equal(TRAIN_STEP_FORWARDS, 3);
  const keys = rooflineKeys({
    forwardFlopsPerImage: 8e9,
    gemmFp32: 160,
    gemmBf16: 320,
    forward: 10, // 80 GFLOP/s
    train: 4, // 4 · 3 · 8 = 96
    forwardBf16: 20, // 160
    trainBf16: null,
  });
  assert.deepEqual(keys, {
    gemm_fp32_gflops: 160,
    gemm_bf16_gflops: 320,
    forward_gflop_per_image: 8,
    train_step_forwards: 3,
    forward_gflops_b8: 80,
    train_gflops_b8: 96,
    forward_bf16_gflops_b8: 160,
    train_bf16_gflops_b8: null,
    forward_share_of_gemm_fp32: 0.5,
    train_share_of_gemm_fp32: 0.6,
    forward_bf16_share_of_gemm_bf16: 0.5,
    train_bf16_share_of_gemm_bf16: null,
  });
  // Without a GEMM rate (no native kernels) the achieved rates stay, the shares are null.
  const noGemm = rooflineKeys({
    forwardFlopsPerImage: 8e9,
    gemmFp32: null,
    gemmBf16: null,
    forward: 10,
    train: 4,
    forwardBf16: null,
    trainBf16: null,
  });
  assert.equal(noGemm.forward_gflops_b8, 80);
  assert.equal(noGemm.forward_share_of_gemm_fp32, null);
});
