/**
 * BatchNormalization in training mode with a fused backward pass.
 *
 * tfjs-layers normalises a training batch with tf.moments + tf.batchNorm, so autodiff walks back
 * through the moments op by op and the FusedBatchNorm gradient tiles the variance to the full
 * activation size. On ResNet50 that was a fifth of a wasm train step and most of its memory.
 * Here the whole layer is one custom-gradient op with the textbook backward
 *
 *   dx = γ·σ⁻¹/M · (M·dy − Σdy − x̂·Σ(dy·x̂)),   dγ = Σ(dy·x̂),   dβ = Σdy
 *
 * (sums over the M = N·H·W positions), which is exactly the gradient of the composed ops.
 * The moving mean and variance update stays Keras' (biased variance, momentum 0.99), one kernel for
 * both on wasm (moving-stats.ts).
 * Where the native addon registered its fused kernels for the active backend (wasm, see
 * native-kernels.ts), both directions are one kernel each; elsewhere they are composed of tf ops.
 *
 * A BatchNorm whose output only a ReLU reads (conv → BatchNorm → ReLU, twice in every ResNet50 block)
 * takes that ReLU into the same kernels while training: the forward pass writes relu(y) and the
 * gradient reads dy·step(relu(y)), so the ReLU's own pass over the activation, and its gradient's, go
 * away. The ReLU layer then passes the already rectified tensor through. Inference is unchanged (the
 * folded network fuses the ReLU into the convolution there, folded.ts).
 */
import * as tf from './tf';

import {
  BATCH_NORM_FROZEN_GRAD,
  BATCH_NORM_FROZEN_RELU_GRAD,
  BATCH_NORM_RELU,
  BATCH_NORM_TRAIN,
  BATCH_NORM_TRAIN_GRAD,
  BATCH_NORM_TRAIN_RELU,
  BATCH_NORM_TRAIN_RELU_GRAD,
} from './native-kernels';
import { markRectified, passRectified, reluAfter } from './fused-relu';
import { readersByTensor } from './layer-graph';
import { packConvolutionOutput } from './conv-layer-gradients';
import { movingStats } from './moving-stats';
import { reluGradient } from './relu-gradient';

/** A BatchNormalization layer this module patched; `frozen` makes it normalise with its moving statistics even when training. */
export interface FreezableBatchNorm {
  frozen: boolean;
}

/**
 * Which of a BatchNorm's tensors its kernels may write as bf16 (bf16-storage.ts), where only bf16 readers
 * read them: `output`, its (rectified) output, when a convolution alone reads it; `gradient`, its input's
 * gradient dx, when its input is a convolution's output that it alone reads. Whether they are packed
 * is the kernels' call (only in bf16, with bf16 storage on); either way the results are the same.
 */
export interface PackedTensors {
  output?: boolean;
  gradient?: boolean;
}

interface KerasBatchNorm extends FreezableBatchNorm {
  getClassName(): string;
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }): tf.Tensor | tf.Tensor[];
  axis: number | number[];
  epsilon: number;
  momentum: number;
  center: boolean;
  scale: boolean;
  gamma: tf.LayerVariable;
  beta: tf.LayerVariable;
  movingMean: tf.LayerVariable;
  movingVariance: tf.LayerVariable;
}

interface LayerVariableInternals {
  read(): tf.Variable;
  write(value: tf.Tensor): void;
}

const registered = (kernelName: string): boolean => tf.getKernel(kernelName, tf.getBackend()) !== undefined;

let fusion = true;

/**
 * Turns the fusion of a BatchNorm layer with the ReLU layer after it on or off (on by default), for
 * comparisons in tests and the benchmark; returns whether it was on.
 */
export function setBatchNormReluFusion(on: boolean): boolean {
  const was = fusion;
  fusion = on;
  return was;
}

/** Whether the active backend runs BatchNorm and its ReLU as one kernel (the native addon's, on wasm). */
export function batchNormReluFused(): boolean {
  return [BATCH_NORM_TRAIN_RELU, BATCH_NORM_TRAIN_RELU_GRAD, BATCH_NORM_FROZEN_RELU_GRAD, BATCH_NORM_RELU].every(
    registered,
  );
}

/**
 * Normalises x [..., C] with its own batch statistics, and with `relu` rectifies the result; returns y and
 * (kept) mean and variance.
 */
export function batchNormTraining(
  x: tf.Tensor,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
  relu = false,
  pack: PackedTensors = {},
): { y: tf.Tensor; mean: tf.Tensor1D; variance: tf.Tensor1D } {
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const count = x.size / x.shape[x.rank - 1];
  let mean: tf.Tensor1D | null = null;
  let variance: tf.Tensor1D | null = null;
  const native = registered(BATCH_NORM_TRAIN) && (!relu || batchNormReluFused());
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, g, b, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    if (native) {
      const [value, m, v, invStd] = tf
        .engine()
        .runKernel<tf.Tensor[]>(
          relu ? BATCH_NORM_TRAIN_RELU : BATCH_NORM_TRAIN,
          { x: input, gamma: g, beta: b },
          { epsilon, pack: relu && !!pack.output },
        );
      mean = tf.keep(m as tf.Tensor1D);
      variance = tf.keep(v as tf.Tensor1D);
      // The rectified output is saved for its mask; the next convolution keeps it alive anyway.
      save(relu ? [input, m, invStd, g, value] : [input, m, invStd, g]);
      return {
        value,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [xs, mu, inv, gm, out] = saved;
          const inputs = { dy, x: xs, mean: mu, invStd: inv, gamma: gm };
          const attrs = { pack: !!pack.gradient };
          return relu
            ? tf.engine().runKernel<tf.Tensor[]>(BATCH_NORM_TRAIN_RELU_GRAD, { ...inputs, y: out }, attrs)
            : tf.engine().runKernel<tf.Tensor[]>(BATCH_NORM_TRAIN_GRAD, inputs, attrs);
        },
      };
    }
    const moments = tf.moments(input, axes);
    mean = tf.keep(moments.mean as tf.Tensor1D);
    variance = tf.keep(moments.variance as tf.Tensor1D);
    const invStd = tf.rsqrt(tf.add(moments.variance, epsilon));
    const normalised = tf.add(tf.mul(tf.mul(tf.sub(input, moments.mean), invStd), g), b);
    const value = relu ? tf.relu(normalised) : normalised;
    // Save the input, not x̂: the conv before it keeps its output alive anyway, so x̂ is recomputed
    // in the backward pass instead of holding one more activation-sized tensor per layer.
    save(relu ? [input, moments.mean, invStd, g, value] : [input, moments.mean, invStd, g]);
    return {
      value,
      // tfjs keeps whatever a custom gradient allocates until the whole backward pass ends, so
      // the temporaries (four activation-sized tensors) are tidied here.
      gradFunc: (dyIn: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [xs, mu, inv, gm, out] = saved as [tf.Tensor, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D, tf.Tensor?];
          const dy = out ? reluGradient(dyIn, out) : dyIn;
          const xHat = tf.mul(tf.sub(xs, mu), inv);
          const sumDy = tf.sum(dy, axes);
          const sumDyXHat = tf.sum(tf.mul(dy, xHat), axes);
          const centred = tf.sub(tf.sub(tf.mul(dy, count), sumDy), tf.mul(xHat, sumDyXHat));
          const dx = tf.mul(centred, tf.div(tf.mul(gm, inv), count));
          return [dx, sumDyXHat, sumDy];
        }),
    };
  });
  const y = op(x, gamma, beta);
  return { y, mean: mean!, variance: variance! };
}

/**
 * Normalises x [..., C] with given statistics (a frozen layer's moving mean and variance), which get no
 * gradient; gamma and beta do. The forward pass is tf.batchNorm's; the backward pass is
 * dx = γ·σ⁻¹·dy, dγ = Σ(dy·x̂), dβ = Σdy, one native kernel where registered. tfjs' own FusedBatchNorm
 * gradient tiles the statistics to the activation's size and also differentiates them, which made a
 * frozen-BatchNorm fine-tune step several times slower than a training-mode one on wasm.
 */
export function batchNormFrozen(
  x: tf.Tensor,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  mean: tf.Tensor1D,
  variance: tf.Tensor1D,
  epsilon: number,
  relu = false,
  pack: PackedTensors = {},
): tf.Tensor {
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const native = registered(BATCH_NORM_FROZEN_GRAD);
  const fused = relu && batchNormReluFused();
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, g, b, save] = args as [tf.Tensor, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
    const invStd = tf.rsqrt(tf.add(variance, epsilon));
    const value = fused
      ? tf
          .engine()
          .runKernel<tf.Tensor>(
            BATCH_NORM_RELU,
            { x: input, mean, variance, offset: b, scale: g },
            { varianceEpsilon: epsilon, pack: !!pack.output },
          )
      : relu
        ? tf.relu(tf.batchNorm(input, mean, variance, b, g, epsilon))
        : tf.batchNorm(input, mean, variance, b, g, epsilon);
    save(relu ? [input, invStd, g, value] : [input, invStd, g]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, inv, gm, out] = saved;
        const inputs = { dy, x: xs, mean, invStd: inv, gamma: gm };
        const attrs = { pack: !!pack.gradient };
        if (fused) return tf.engine().runKernel<tf.Tensor[]>(BATCH_NORM_FROZEN_RELU_GRAD, { ...inputs, y: out }, attrs);
        if (native && !relu) return tf.engine().runKernel<tf.Tensor[]>(BATCH_NORM_FROZEN_GRAD, inputs, attrs);
        return tf.tidy(() => {
          if (relu) dy = reluGradient(dy, out);
          const xHat = tf.mul(tf.sub(xs, mean), inv);
          return [tf.mul(dy, tf.mul(gm, inv)), tf.sum(tf.mul(dy, xHat), axes), tf.sum(dy, axes)];
        });
      },
    };
  });
  return op(x, gamma, beta);
}

function patchLayer(layer: KerasBatchNorm, relu: tf.layers.Layer | null, packable: PackedTensors): void {
  const original = layer.call.bind(layer);
  if (relu) passRectified(relu);
  layer.call = (inputs, kwargs) => {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const axes = Array.isArray(layer.axis) ? layer.axis : [layer.axis]; // Keras JSON stores [3]
    const channelsLast = axes.length === 1 && (axes[0] === -1 || axes[0] === x.rank - 1);
    if (!kwargs.training) return original(inputs, kwargs);
    if (!channelsLast) return original(inputs, { ...kwargs, training: !layer.frozen });
    const read = (v: tf.LayerVariable): tf.Tensor1D =>
      (v as unknown as LayerVariableInternals).read() as unknown as tf.Tensor1D;
    // Fused only where one kernel does both: elsewhere the ReLU layer's own kernel is as fast.
    const fuse = relu !== null && fusion && batchNormReluFused();
    const marked = (y: tf.Tensor): tf.Tensor => (fuse ? markRectified(y) : y);
    // The output reaches the convolution only through the fused ReLU
    const pack = { output: fuse && packable.output, gradient: packable.gradient };
    if (layer.frozen)
      return marked(
        batchNormFrozen(
          x,
          read(layer.gamma),
          read(layer.beta),
          read(layer.movingMean),
          read(layer.movingVariance),
          layer.epsilon,
          fuse,
          pack,
        ),
      );
    return tf.tidy(() => {
      const gamma = read(layer.gamma);
      const beta = read(layer.beta);
      const { y, mean, variance } = batchNormTraining(x, gamma, beta, layer.epsilon, fuse, pack);
      const moving = [layer.movingMean, layer.movingVariance].map((v) => v as unknown as LayerVariableInternals);
      const updated = movingStats(
        moving[0].read() as unknown as tf.Tensor1D,
        moving[1].read() as unknown as tf.Tensor1D,
        mean,
        variance,
        layer.momentum,
      );
      moving.forEach((v, i) => v.write(updated[i]));
      tf.dispose([mean, variance]);
      return marked(y);
    });
  };
}

/**
 * Gives every BatchNormalization layer of `model` with scale and center the fused training op, with the
 * ReLU layer that alone reads its output folded into it where one kernel does both (batchNormReluFused).
 * Inference is untouched, and a layer normalising over other axes than the last keeps tfjs' path.
 */
export function useFusedBatchNorm(model: tf.LayersModel): void {
  const relus = reluAfter(model, 'BatchNormalization');
  const readers = readersByTensor(model.layers);
  const outputs = new Set(model.outputs.map((t) => t.id));
  const convolutionAlone = (users: tf.layers.Layer[] | undefined): boolean =>
    users?.length === 1 && users[0].getClassName() === 'Conv2D';
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const bn = layer as unknown as KerasBatchNorm;
    if (!bn.center || !bn.scale) continue;
    bn.frozen = false;
    const relu = relus.get(layer) ?? null;
    const node = layer.inboundNodes.length === 1 ? layer.inboundNodes[0] : null;
    const input = node?.inputTensors.length === 1 ? node.inputTensors[0] : null;
    const reluOut = relu?.inboundNodes.length === 1 ? relu.inboundNodes[0].outputTensors[0] : null;
    // A convolution's output that only this BatchNorm reads: the convolution may write it as bf16 (the
    // BatchNorm's kernels read it so), and the BatchNorm its gradient (the convolution's gradients do).
    const afterConvolution =
      !!input &&
      input.sourceLayer.getClassName() === 'Conv2D' &&
      readers.get(input.id)?.length === 1 &&
      !outputs.has(input.id);
    if (afterConvolution) packConvolutionOutput(input.sourceLayer);
    patchLayer(bn, relu, {
      output: !!reluOut && !outputs.has(reluOut.id) && convolutionAlone(readers.get(reluOut.id)),
      gradient: afterConvolution,
    });
  }
}
