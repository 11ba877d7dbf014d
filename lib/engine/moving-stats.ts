/**
 * A training BatchNorm's update of its moving mean and variance, Keras' rule
 *
 *   moving ← moving − (moving − batch)·(1 − momentum)
 *
 * for both statistics in one kernel on wasm. Composed of tf ops, the update is four kernels per layer,
 * and inside a gradient tape tfjs records each of them and clones their inputs for a backward pass that
 * never reaches them: on ResNet50 about 950 of a train step's 2,100 kernel calls, for 53 layers of at
 * most 2,048 channels. The kernel computes the same float32 operations in the same order, so its
 * results equal the composed ops' bit for bit; it has no gradient, so the tape saves nothing for it.
 */
import * as tf from './tf';

export const MOVING_STATS = 'BoatMovingStats';

interface Heap {
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

/** The wasm kernel: inputs movingMean, movingVariance, mean, variance [C]; attr momentum; outputs the new moving mean and variance. */
export const movingStatsConfig: tf.KernelConfig = {
  kernelName: MOVING_STATS,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs, backend }) => {
    const heap = backend as unknown as Heap;
    const { movingMean, movingVariance, mean, variance } = inputs as Record<string, tf.TensorInfo>;
    // tf.mul(t, 1 − momentum) multiplies by that number as a float32 scalar
    const rate = Math.fround(1 - (attrs as unknown as { momentum: number }).momentum);
    return [
      [movingMean, mean],
      [movingVariance, variance],
    ].map(([moving, batch]) => {
      if (!tf.util.arraysEqual(moving.shape, batch.shape))
        throw new Error(`${MOVING_STATS}: statistics of different shapes`);
      const out = heap.makeOutput(moving.shape, 'float32');
      const [o, b, y] = [moving, batch, out].map((t) => heap.typedArrayFromHeap(t));
      // Each step rounded to float32, as wasm's Sub and Mul round it (fround of a double sum, difference
      // or product of two float32s is the float32 operation's result).
      for (let i = 0; i < y.length; i++) y[i] = o[i] - Math.fround(Math.fround(o[i] - b[i]) * rate);
      return out;
    });
  },
};

/**
 * The moving statistics after one batch with `mean` and `variance`: one kernel where the backend has it
 * (wasm), else the composed ops. Returns new tensors; the caller writes them into the layer's variables.
 */
export function movingStats(
  movingMean: tf.Tensor1D,
  movingVariance: tf.Tensor1D,
  mean: tf.Tensor1D,
  variance: tf.Tensor1D,
  momentum: number,
): [tf.Tensor1D, tf.Tensor1D] {
  if (tf.getKernel(MOVING_STATS, tf.getBackend()))
    return tf
      .engine()
      .runKernel(MOVING_STATS, { movingMean, movingVariance, mean, variance }, { momentum }) as unknown as [
      tf.Tensor1D,
      tf.Tensor1D,
    ];
  const update = (old: tf.Tensor1D, batch: tf.Tensor1D): tf.Tensor1D =>
    tf.tidy(() => tf.sub(old, tf.mul(tf.sub(old, batch), 1 - momentum)));
  return [update(movingMean, mean), update(movingVariance, variance)];
}
