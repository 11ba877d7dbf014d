/**
 * Layers that rectify their own output for the ReLU layer after them: finding those pairs in a Layers
 * model, and letting the ReLU pass an already rectified tensor through. The fused BatchNorm + ReLU
 * (batchnorm.ts) and the fused residual add + ReLU (add-relu.ts) use it while training.
 */
import * as tf from './tf';

import { isRelu, readersByTensor } from './layer-graph';

type Layer = tf.layers.Layer;

/** Outputs rectified by the layer that made them, for the ReLU layer after it. */
const rectified = new WeakSet<tf.Tensor>();

/** Marks `y` as already rectified, so that the ReLU layer after its layer passes it through; returns it. */
export function markRectified(y: tf.Tensor): tf.Tensor {
  rectified.add(y);
  return y;
}

/** Makes `relu` return an input that markRectified marked as it is, and rectify any other. */
export function passRectified(relu: Layer): void {
  const activate = relu.call.bind(relu);
  relu.call = (inputs, kwargs) => {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    return rectified.has(x) ? x : activate(inputs, kwargs);
  };
}

/**
 * The ReLU layer that alone reads each `className` layer's output, for the layers that have one: each
 * layer used once, its output no model output, and its one reader a plain ReLU used once.
 */
export function reluAfter(model: tf.LayersModel, className: string): Map<Layer, Layer> {
  const readers = readersByTensor(model.layers);
  const outputs = new Set(model.outputs.map((t) => t.id));
  const pairs = new Map<Layer, Layer>();
  for (const layer of model.layers) {
    if (layer.getClassName() !== className || layer.inboundNodes.length !== 1) continue;
    const out = layer.inboundNodes[0].outputTensors[0];
    const users = readers.get(out.id) ?? [];
    if (outputs.has(out.id) || users.length !== 1) continue;
    const [user] = users;
    if (isRelu(user) && user.inboundNodes.length === 1) pairs.set(layer, user);
  }
  return pairs;
}
