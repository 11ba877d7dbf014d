/**
 * Reading a Layers model's graph: which layers read a tensor, and which layers are plain ReLUs. The fused
 * ReLUs of training (fused-relu.ts) and the folded inference network (model/folded.ts) both find their
 * layer pairs with these.
 */
import * as tf from './tf';

type Layer = tf.layers.Layer;

interface GraphNode {
  inputTensors: Array<{ id: number }>;
}

/** A ReLU layer without a cap: an `Activation('relu')` or a `ReLU` without maxValue. */
export function isRelu(layer: Layer): boolean {
  const c = layer.getConfig();
  if (layer.getClassName() === 'ReLU') return c.maxValue === null || c.maxValue === undefined;
  return layer.getClassName() === 'Activation' && c.activation === 'relu';
}

/** Each tensor's readers: tensor id → the layers whose calls take it as an input, once per call. */
export function readersByTensor(layers: Layer[]): Map<number, Layer[]> {
  const readers = new Map<number, Layer[]>();
  for (const layer of layers)
    for (const node of layer.inboundNodes as unknown as GraphNode[])
      for (const t of node.inputTensors) readers.set(t.id, [...(readers.get(t.id) ?? []), layer]);
  return readers;
}
