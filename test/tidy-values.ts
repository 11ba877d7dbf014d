/** Reading a computation's values with a leak check, for the tests that compare backends or precisions. */
import assert from 'node:assert/strict';
import * as tf from '../lib/engine/tf';

/**
 * `f`'s outputs computed under tf.tidy and read back; fails, naming `where` (the backend or precision in use),
 * when a tensor outlives the call.
 */
export function tidyValues(f: () => tf.Tensor[], where: string): Float32Array[] {
  const before = tf.memory().numTensors;
  const out = tf.tidy(f);
  const values = out.map((t) => t.dataSync() as Float32Array);
  tf.dispose(out);
  assert.equal(tf.memory().numTensors, before, `tensors leaked (${where})`);
  return values;
}
