/**
 * In bf16 precision the filter gradients of small outputs run in fp32, where oneDNN's bf16 one is the
 * slower (lib/engine/filter-grad-precision.ts, measured by bench/filter-grad-precision.js): the rule on
 * ResNet50's output sizes, then on the native kernels a filter gradient on each side of it, against fp32.
 *
 * The gradient is of sum(conv(x, w) · r) for a fixed r, so its dy is r in both precisions and only the
 * filter gradient itself can differ: by under 1e-5 of its scale where it ran in fp32 (fp32 runs agree to
 * that), and between 1e-5 and the 1e-2 bf16 tolerance of test/bf16.test.ts where it ran in bf16.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as tf from '../lib/engine/tf';

import { nativeKernelsInUse, selectBackend } from '../lib';
import { BF16_FILTER_GRAD_MIN_OUTPUT_PIXELS, filterGradientPrecision } from '../lib/engine/filter-grad-precision';
import { nativePrecision } from '../lib/engine/native-kernels';
import { maxRelativeError, randomArray } from './conv-cases';
import { skipWithoutNativeBf16 } from './native-skips';
import { valuesInPrecision } from './precisions';

const BF16_TOLERANCE = 1e-2;
const FP32_AGREEMENT = 1e-5;

let nativeOn = false;

before(async () => {
  assert.equal((await selectBackend(undefined, 'fp32')).name, 'wasm');
  nativeOn = nativeKernelsInUse() !== null;
});

after(async () => {
  await selectBackend(undefined, 'fp32');
});

test("the rule: fp32 for ResNet50's 3×3 layers at 7×7 and 14×14, bf16 for its larger outputs and its 1×1 layers", () => {
  const at = (k: number, side: number) =>
    filterGradientPrecision({ filterHeight: k, filterWidth: k, outHeight: side, outWidth: side });
  assert.deepEqual(
    [7, 14, 28, 56].map((side) => at(3, side)),
    ['fp32', 'fp32', 'bf16', 'bf16'],
  );
  assert.deepEqual(
    [7, 14, 28, 56].map((side) => at(1, side)),
    ['bf16', 'bf16', 'bf16', 'bf16'],
  );
  assert.equal(at(7, 112), 'bf16', 'the stem');
  assert.equal(BF16_FILTER_GRAD_MIN_OUTPUT_PIXELS, 28 * 28);
  // The threshold is on the pixel count, whatever the aspect; a 1×3 filter is spatial too.
  const g = { filterHeight: 3, filterWidth: 3 };
  assert.equal(filterGradientPrecision({ ...g, outHeight: 56, outWidth: 14 }), 'bf16');
  assert.equal(filterGradientPrecision({ ...g, outHeight: 27, outWidth: 28 }), 'fp32');
  assert.equal(filterGradientPrecision({ filterHeight: 1, filterWidth: 3, outHeight: 7, outWidth: 7 }), 'fp32');
});

interface Case {
  name: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  out: number;
  /** What the rule picks for it. */
  precision: 'fp32' | 'bf16';
}

const CASES: Case[] = [
  { name: '3×3, 32 → 16 channels, 14×14', x: [2, 14, 14, 32], w: [3, 3, 32, 16], out: 14, precision: 'fp32' },
  { name: '3×3, 16 → 16 channels, 28×28', x: [1, 28, 28, 16], w: [3, 3, 16, 16], out: 28, precision: 'bf16' },
  { name: '1×1, 32 → 16 channels, 14×14', x: [2, 14, 14, 32], w: [1, 1, 32, 16], out: 14, precision: 'bf16' },
];

/** Each case's filter gradient (stride 1, 'same'), then a forward convolution after them, to show the precision is back. */
function outputs(): tf.Tensor[] {
  const grads = CASES.map((c, i) => {
    const dyShape: [number, number, number, number] = [c.x[0], c.out, c.out, c.w[3]];
    const x = tf.tensor4d(randomArray(c.x, 3 * i), c.x);
    const r = tf.tensor4d(randomArray(dyShape, 3 * i + 1), dyShape);
    const w = tf.tensor4d(randomArray(c.w, 3 * i + 2), c.w);
    return tf.grad((v: tf.Tensor) =>
      tf
        .conv2d(x, v as tf.Tensor4D, 1, 'same')
        .mul(r)
        .sum(),
    )(w);
  });
  const [c] = CASES;
  const forward = tf.conv2d(tf.tensor4d(randomArray(c.x, 50), c.x), tf.tensor4d(randomArray(c.w, 51), c.w), 1, 'same');
  return [...grads, forward];
}

async function run(precision: 'fp32' | 'bf16'): Promise<Float32Array[]> {
  const values = await valuesInPrecision(precision, outputs);
  assert.equal(nativePrecision(), precision, 'the precision is as selected after the filter gradients');
  return values;
}

test('in bf16, the 3×3 filter gradient at 14×14 matches fp32 to 1e-5; at 28×28, the 1×1 one and the forward stay bf16', async (t) => {
  if (skipWithoutNativeBf16(t, nativeOn)) return;
  for (const c of CASES) {
    const g = { filterHeight: c.w[0], filterWidth: c.w[1], outHeight: c.out, outWidth: c.out };
    assert.equal(filterGradientPrecision(g), c.precision, c.name);
  }
  const fp32 = await run('fp32');
  const bf16 = await run('bf16');
  await selectBackend(undefined, 'fp32');
  const errors = fp32.map((v, i) => maxRelativeError(v, bf16[i]));
  CASES.forEach((c, i) => {
    const err = errors[i];
    if (c.precision === 'fp32') assert.ok(err < FP32_AGREEMENT, `${c.name}: relative error ${err}, expected fp32's`);
    else assert.ok(err > FP32_AGREEMENT && err < BF16_TOLERANCE, `${c.name}: relative error ${err}, expected bf16's`);
  });
  const forward = errors[CASES.length];
  assert.ok(
    forward > FP32_AGREEMENT && forward < BF16_TOLERANCE,
    `the forward after them: ${forward}, expected bf16's`,
  );
  t.diagnostic(
    `relative errors: ${CASES.map((c, i) => `${c.name} ${errors[i].toExponential(2)}`).join('; ')}; forward ${forward.toExponential(2)}`,
  );
});
