/**
 * Convolution layers whose backward pass computes only the gradients something reads.
 *
 * tfjs-layers runs every Conv2D through tf.fused.conv2d, whose gradient is a customGrad: it computes the
 * input gradient, the filter gradient and the bias gradient together, whichever of them the backward pass
 * then asks for. The backward pass (lean-backprop.ts, and tfjs' own) asks a tape node only for the inputs
 * that lead from the trained variables, so the input gradient of a convolution whose input depends on no
 * trained variable is computed and dropped: ResNet50's first convolution (its input is the image), and,
 * when only the last stages train, the first trained convolutions, whose inputs come from frozen layers.
 *
 * Here, while a tape records (gradientDepth > 0), a patched layer runs the same FusedConv2D kernel
 * directly, with the same inputs and attributes, and the gradient registered below for that kernel name
 * gives each input's gradient as its own function. Each one is the op tfjs' fused gradient runs for it
 * (Conv2DBackpropInput, Conv2DBackpropFilter, getFusedBiasGradient's sum), with the same arguments, so the
 * gradients that are computed are exactly the ones computed before. tfjs' own fused op runs FusedConv2D
 * inside its customGrad, where nothing is taped, so this gradient never applies to it.
 */
import * as tf from './tf';

interface KerasConv2D {
  getClassName(): string;
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: tf.serialization.ConfigDict): tf.Tensor | tf.Tensor[];
  kernel: tf.LayerVariable;
  bias: tf.LayerVariable | null;
  strides: number[];
  padding: string;
  dataFormat: string;
  dilationRate: number | number[];
  activation: { getClassName(): string };
}

interface FusedConv2DAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same';
  dataFormat: 'NHWC' | 'NCHW';
  dilations: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  activation: string;
  /** Write the output as bf16 where the kernel can (bf16-storage.ts; it rounds what the BatchNorm reads). */
  pack?: 'rounding';
}

const packedOutputs = new WeakSet<object>();

/**
 * Lets a Conv2D layer's training convolution write its output as bf16 (bf16-storage.ts): for a layer
 * whose output only a reader of packed tensors reads (the BatchNorm after it, batchnorm.ts).
 */
export function packConvolutionOutput(layer: tf.layers.Layer): void {
  packedOutputs.add(layer);
}

/** The engine's runKernel with attributes typed as the kernel's own (optional ones may be undefined). */
const runKernel = <T extends tf.Tensor>(name: string, inputs: tf.NamedTensorMap, attrs: object): T =>
  tf.engine().runKernel<T>(name, inputs, attrs as unknown as tf.NamedAttrMap);

const unitDilations = (d: number | number[]): boolean => (Array.isArray(d) ? d.every((v) => v === 1) : d === 1);

tf.registerGradient({
  kernelName: tf.FusedConv2D,
  // Not the bias: its gradient needs only its shape, [output channels] (a Conv2D layer's).
  inputsToSave: ['x', 'filter'],
  gradFunc: (dy, saved, attrs) => {
    const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
    const { strides, pad, dataFormat, dilations, dimRoundingMode, activation } = attrs as unknown as FusedConv2DAttrs;
    // Only the calls below are taped: linear, NHWC, no dilation (tfjs' fused gradient allows no more).
    if (activation !== 'linear' || dataFormat !== 'NHWC' || !unitDilations(dilations))
      throw new Error(
        `No gradient for a taped FusedConv2D with activation ${activation}, ${dataFormat}, dilations ${dilations}`,
      );
    const dy4D = dy as tf.Tensor4D;
    const common = { strides, pad, dataFormat, dimRoundingMode };
    return {
      x: () => runKernel(tf.Conv2DBackpropInput, { dy: dy4D, filter }, { ...common, inputShape: x.shape }),
      filter: () => runKernel(tf.Conv2DBackpropFilter, { x, dy: dy4D }, { ...common, filterShape: filter.shape }),
      // getFusedBiasGradient's arithmetic for a bias of that shape (it reads nothing but the shape).
      bias: () => {
        const shape = [filter.shape[3]];
        return tf.reshape(tf.sum(dy4D, tf.backend_util.getReductionAxes(shape, dy4D.shape)), shape);
      },
    };
  },
});

/** conv2d(x, filter) + bias as the FusedConv2D kernel, taped with the per-input gradient above. */
function convolve(x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor1D | null, layer: KerasConv2D): tf.Tensor4D {
  const inputs: tf.NamedTensorMap = bias ? { x, filter, bias } : { x, filter };
  const attrs: FusedConv2DAttrs = {
    strides: layer.strides as [number, number],
    pad: layer.padding as 'valid' | 'same',
    dataFormat: 'NHWC',
    dilations: [1, 1],
    activation: 'linear',
    pack: packedOutputs.has(layer) ? 'rounding' : undefined,
  };
  return runKernel<tf.Tensor4D>(tf.FusedConv2D, inputs, attrs);
}

/** The layers tfjs-layers would run as a linear, NHWC, undilated fused convolution: what convolve() covers. */
function covered(layer: KerasConv2D): boolean {
  return (
    layer.getClassName() === 'Conv2D' &&
    layer.dataFormat === 'channelsLast' &&
    (layer.padding === 'same' || layer.padding === 'valid') &&
    unitDilations(layer.dilationRate) &&
    layer.activation.getClassName() === 'linear'
  );
}

/**
 * Gives every linear channels-last Conv2D layer of `model` a backward pass that computes its input
 * gradient only when something reads it. Inference (nothing taped) and other layers are untouched.
 */
export function useLazyConvGradients(model: tf.LayersModel): void {
  const engine = tf.engine();
  for (const layer of model.layers) {
    const conv = layer as unknown as KerasConv2D;
    if (!covered(conv)) continue;
    const original = conv.call.bind(conv);
    conv.call = (inputs, kwargs) => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      if (
        engine.state.gradientDepth === 0 ||
        (Array.isArray(inputs) && inputs.length !== 1) ||
        x.rank !== 4 ||
        x.dtype !== 'float32'
      )
        return original(inputs, kwargs);
      return tf.tidy(() => {
        const read = (v: tf.LayerVariable): tf.Tensor => v.read();
        const filter = read(conv.kernel) as tf.Tensor4D;
        const bias = conv.bias ? (read(conv.bias) as tf.Tensor1D) : null;
        return convolve(x as tf.Tensor4D, filter, bias, conv);
      });
    };
  }
}
