/**
 * One convolution with bias, an optional residual add and an optional ReLU, for inference networks
 * whose BatchNorm was folded into the convolutions (lib/model/folded.ts).
 *
 * Where the native kernels are on, conv + bias + ReLU is their FusedConv2D and conv + bias + residual
 * + ReLU is one oneDNN primitive with a sum post-op (CONV2D_ADD). Elsewhere (wasm's own kernels,
 * webgpu, cpu) tf.fused.conv2d fuses the bias and ReLU, and the residual is a separate add and ReLU.
 * None of it has a gradient through the convolution's weights: it is for networks that do not train.
 */
import * as tf from './tf';

import { CONV2D_ADD } from './native-kernels';

export interface ConvGeometry {
  strides: [number, number];
  /** Or explicit padding, [[0, 0], [top, bottom], [left, right], [0, 0]]: a zero padding folded in. */
  pad: 'valid' | 'same' | tf.backend_util.ExplicitPadding;
  dilations: [number, number];
}

/**
 * relu?(conv2d(x, filter) + bias + add), NHWC. `addRead`: false when the caller disposes `add` right
 * after and reads it no more, so that the native kernel may write the result into add's buffer.
 */
export function convBiasAddRelu(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor1D,
  geometry: ConvGeometry,
  relu: boolean,
  add?: tf.Tensor4D,
  addRead = true,
): tf.Tensor4D {
  const { strides, pad, dilations } = geometry;
  if (add && tf.getKernel(CONV2D_ADD, tf.getBackend()) !== undefined) {
    return tf.engine().runKernel<tf.Tensor4D>(
      CONV2D_ADD,
      { x, filter, bias, add },
      {
        strides,
        pad,
        dilations,
        dataFormat: 'NHWC',
        activation: relu ? 'relu' : 'linear',
        inPlace: !addRead,
      },
    );
  }
  if (!add) {
    return tf.fused.conv2d({ x, filter, bias, strides, pad, dilations, activation: relu ? 'relu' : 'linear' });
  }
  return tf.tidy(() => {
    const sum = tf.add<tf.Tensor4D>(tf.fused.conv2d({ x, filter, bias, strides, pad, dilations }), add);
    return relu ? tf.relu(sum) : sum;
  });
}
