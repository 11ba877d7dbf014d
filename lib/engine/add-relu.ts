/**
 * The residual add and the ReLU after it as one kernel while training.
 *
 * Every ResNet50 block ends in relu(bn3 + shortcut): tfjs runs an Add and then a Relu over the sum, two
 * passes over the block's output and a temporary of its size. Where the native addon registers ADD_RELU
 * for the active backend, an Add layer whose output only a ReLU reads writes relu(a + b) in one pass,
 * and the ReLU layer passes it through (fused-relu.ts). The gradient is ReLU's, read from the output
 * (y > 0 exactly where the sum was), for both inputs: what tfjs' two gradients compose to, but for a
 * sum that is a NaN with its sign bit set, whose ReLU is 0 and whose gradient is then 0 rather than NaN.
 * Inference is unchanged (the folded network fuses the add and the ReLU into the convolution, folded.ts).
 */
import * as tf from './tf';

import { markRectified, passRectified, reluAfter } from './fused-relu';
import { readersByTensor } from './layer-graph';
import { registerSummedGradient } from './lean-backprop';
import { reluGradientOfSum } from './relu-gradient';

/** Kernel name of relu(a + b): inputs a and b (float32, one shape), output y. */
export const ADD_RELU = 'BoatAddRelu';

/** The gradient of both inputs from y's gradient, the sum of `parts` (one part unless y had several readers). */
function gradients(parts: tf.Tensor[], y: tf.Tensor): Record<'a' | 'b', () => tf.Tensor> {
  let g: tf.Tensor | undefined;
  const through = (): tf.Tensor => (g ??= reluGradientOfSum(parts, y));
  // Two tensors, one buffer: each input's gradient is disposed on its own as the backward pass goes.
  return { a: through, b: () => tf.clone(through()) };
}

tf.registerGradient({
  kernelName: ADD_RELU,
  outputsToSave: [true],
  gradFunc: (dy, saved) => gradients([dy as tf.Tensor], saved[0]),
});
// A block's output feeds the next block's first convolution and its shortcut: the two gradients are
// added and rectified in one pass.
registerSummedGradient(ADD_RELU, (parts, saved) => gradients(parts, saved[0]));

interface KerasAdd {
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: tf.serialization.ConfigDict): tf.Tensor | tf.Tensor[];
}

let fusion = true;

/** Turns the fusion of an Add layer with the ReLU layer after it on or off (on by default), for comparisons; returns whether it was on. */
export function setAddReluFusion(on: boolean): boolean {
  const was = fusion;
  fusion = on;
  return was;
}

/** Whether the active backend runs a residual add and its ReLU as one kernel (the native addon's, on wasm). */
export function addReluFused(): boolean {
  return tf.getKernel(ADD_RELU, tf.getBackend()) !== undefined;
}

/**
 * Gives every two-input Add layer of `model` whose output only a ReLU layer reads the fused kernel while
 * a tape records (training), where addReluFused(); other calls, layers and backends are tfjs'. A block
 * output that only convolutions and other fused adds read (every block's but the last: the pooling
 * reads that) may be written as bf16 (bf16-storage.ts): they all read it so.
 */
export function useFusedAddRelu(model: tf.LayersModel): void {
  const engine = tf.engine();
  const pairs = reluAfter(model, 'Add');
  const readers = readersByTensor(model.layers);
  const outputs = new Set(model.outputs.map((t) => t.id));
  for (const [layer, relu] of pairs) {
    const add = layer as unknown as KerasAdd;
    const out = relu.inboundNodes.length === 1 ? relu.inboundNodes[0].outputTensors[0] : null;
    const users = out ? (readers.get(out.id) ?? []) : [];
    const pack =
      !!out &&
      !outputs.has(out.id) &&
      users.length > 0 &&
      users.every((u) => u.getClassName() === 'Conv2D' || pairs.has(u));
    const original = add.call.bind(add);
    passRectified(relu);
    add.call = (inputs, kwargs) => {
      const [a, b] = Array.isArray(inputs) ? inputs : [inputs];
      const fits =
        Array.isArray(inputs) &&
        inputs.length === 2 &&
        a.dtype === 'float32' &&
        b.dtype === 'float32' &&
        tf.util.arraysEqual(a.shape, b.shape);
      if (!fits || !fusion || engine.state.gradientDepth === 0 || !addReluFused()) return original(inputs, kwargs);
      const attrs: tf.NamedAttrMap = pack ? { pack: 'rounding' } : {};
      return markRectified(engine.runKernel<tf.Tensor>(ADD_RELU, { a, b }, attrs));
    };
  }
}
