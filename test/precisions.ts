/** Running a computation in one precision on the native kernels, for the tests that compare fp32 and bf16. */
import assert from 'node:assert/strict';
import * as tf from '../lib/engine/tf';

import { selectBackend } from '../lib/engine';
import { tidyValues } from './tidy-values';

/** `f`'s outputs computed (under tf.tidy) in `precision`, checking that it is the one in use and that no tensor leaked. */
export async function valuesInPrecision(precision: 'fp32' | 'bf16', f: () => tf.Tensor[]): Promise<Float32Array[]> {
  assert.equal((await selectBackend(undefined, precision)).precision, precision);
  return tidyValues(f, precision);
}
