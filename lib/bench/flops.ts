/**
 * Floating-point operations of a forward pass, counted from a model's layer shapes: 2 per multiply-add
 * of the convolutions and dense layers, the convention behind ResNet50's "4.1 GMACs" (8.2 GFLOP).
 * BatchNorm, activations, pooling, adds and biases are left out: together they are well under 1% of it.
 */
import * as tf from '../engine/tf';

/** FLOPs of one example through `model`, which needs a fixed input shape (every dimension but the batch). */
export function forwardFlopsPerExample(model: tf.LayersModel): number {
  let total = 0;
  for (const layer of model.layers) {
    if (layer instanceof tf.LayersModel) {
      total += forwardFlopsPerExample(layer);
      continue;
    }
    const kind = layer.getClassName();
    if (kind !== 'Conv2D' && kind !== 'DepthwiseConv2D' && kind !== 'Dense') continue;
    const out = (layer.outputShape as Array<number | null>).slice(1);
    if (out.some((d) => typeof d !== 'number'))
      throw new Error(`${layer.name}: output shape ${JSON.stringify(layer.outputShape)} is not fixed`);
    const outputs = (out as number[]).reduce((a, b) => a * b, 1);
    const kernel = layer.weights[0].shape as number[];
    // Multiply-adds per output value: Conv2D [kh, kw, cin, cout] → kh·kw·cin, Dense [in, out] → in,
    // DepthwiseConv2D [kh, kw, cin, multiplier] → kh·kw (each output reads one input channel).
    const perOutput =
      kind === 'Conv2D' ? kernel[0] * kernel[1] * kernel[2] : kind === 'Dense' ? kernel[0] : kernel[0] * kernel[1];
    total += 2 * outputs * perOutput;
  }
  return total;
}
