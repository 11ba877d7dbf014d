/** Running a computation in one precision on the native kernels, for the tests that compare fp32 and bf16. */
import assert from 'node:assert/strict';
import * as tf from '../lib/engine/tf';

import { selectBackend } from '../lib/engine';

/** `f`'s outputs computed (under tf.tidy) in `precision`, checking that it is the one in use and that no tensor leaked. */
export async function valuesInPrecision(precision: 'fp32' | 'bf16', f: () => tf.Tensor[]): Promise<Float32Array[]> {
  assert.equal((await selectBackend(undefined, precision)).precision, precision);
  const before = tf.memory().numTensors;
  const out = tf.tidy(f);
  const values = out.map((t) => t.dataSync() as Float32Array);
  tf.dispose(out);
  assert.equal(tf.memory().numTensors, before, `tensors leaked in ${precision}`);
  return values;
}
