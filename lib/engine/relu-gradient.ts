/**
 * ReLU's gradient in one native kernel where the addon provides it.
 *
 * tfjs' gradient of Relu is mul(dy, cast(step(x))): three kernels and two activation-sized temporaries
 * per ReLU, about 5% of a ResNet50 train step on wasm (ResNet50 runs its 49 ReLUs as separate Relu
 * kernels while training: tfjs fuses an activation into a convolution only outside a tape). RELU_GRAD
 * computes the same products in one pass (native/boat_native.cc, registered by native-kernels.ts); where
 * it is not registered for the active backend (no addon, native kernels switched off, another backend),
 * or for inputs it does not take, this gradient is tfjs' own formula.
 */
import * as tf from './tf';

/** Kernel name of dx = dy · step(x): inputs dy and x (float32, one shape), output dx. */
export const RELU_GRAD = 'BoatReluGrad';

/** dy · step(x), ReLU's gradient, with the native kernel where it applies. */
export function reluGradient(dy: tf.Tensor, x: tf.Tensor): tf.Tensor {
  const native =
    x.dtype === 'float32' &&
    dy.dtype === 'float32' &&
    tf.util.arraysEqual(x.shape, dy.shape) &&
    tf.getKernel(RELU_GRAD, tf.getBackend()) !== undefined;
  return native
    ? tf.engine().runKernel<tf.Tensor>(RELU_GRAD, { dy, x }, {})
    : tf.mul(dy, tf.cast(tf.step(x), 'float32'));
}

/** Kernel name of dx = (dy + dy2) · step(x): inputs dy, x and dy2 (float32, one shape), output dx. */
export const RELU_GRAD_SUM = 'BoatReluGradSum';

/**
 * ReLU's gradient of x when x's gradient is the sum of `parts` (one part, or several when x had several
 * readers): the parts added in order, then dy · step(x). Two parts take one native kernel where it is
 * registered: the add's pass and the gradient's become one, with the same arithmetic.
 */
export function reluGradientOfSum(parts: readonly tf.Tensor[], x: tf.Tensor): tf.Tensor {
  if (parts.length === 1) return reluGradient(parts[0], x);
  const native =
    parts.length === 2 &&
    [x, ...parts].every((t) => t.dtype === 'float32' && tf.util.arraysEqual(t.shape, x.shape)) &&
    tf.getKernel(RELU_GRAD_SUM, tf.getBackend()) !== undefined;
  if (native) return tf.engine().runKernel<tf.Tensor>(RELU_GRAD_SUM, { dy: parts[0], x, dy2: parts[1] }, {});
  return tf.tidy(() =>
    reluGradient(
      parts.slice(1).reduce((sum, p) => tf.add(sum, p), parts[0]),
      x,
    ),
  );
}

/** tfjs' Relu gradient config with the native kernel where it applies. */
export const reluGradConfig: tf.GradConfig = {
  kernelName: tf.Relu,
  inputsToSave: ['x'],
  gradFunc: (dy, saved) => {
    const [x] = saved;
    return { x: () => reluGradient(dy as tf.Tensor, x) };
  },
};
