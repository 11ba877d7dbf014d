/**
 * Convolution gradients built from what the wasm backend runs fast (registered by wasm-kernels.ts).
 *
 * tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter (tensorflow/tfjs#8474) and a slow, naive
 * Conv2DBackpropInput. Both gradients are convolutions themselves, so we express them through the
 * two things wasm runs fast: its XNNPACK forward Conv2D and plain (non-transposed) MatMul.
 *
 * Notation: the forward pass is y = conv(x, w) with x [N,H,W,Ci], w [KH,KW,Ci,Co], stride s,
 * padding (pt, pl, pb, pr) and y / dy [N,OH,OW,Co].
 *
 *  dX: the "transposed convolution". Spread dy out by the stride (zeros in between), pad it by
 *      K-1-p, and run a stride-1 conv with w rotated 180° and its channel axes swapped.
 *      A 1×1 kernel is just dy · wᵀ, a matmul, spread out afterwards.
 *  dW: dW[kh,kw,ci,co] = Σ_{n,oh,ow} x[n, oh·s+kh−pt, ow·s+kw−pl, ci] · dy[n,oh,ow,co].
 *      Read with the batch axis as channels, that is a conv of xᵀ [Ci,H,W,N] with dy as an
 *      [OH,OW,N,Co] filter dilated by s: one XNNPACK call, output [Ci,KH,KW,Co].
 *      A 1×1 kernel is xᵀ · dy, a matmul on the (strided) input.
 */
import * as tf from './tf';

type Tensor4D = tf.Tensor4D;

export interface ConvGeometry {
  strides: [number, number];
  padInfo: { top: number; left: number; bottom: number; right: number };
  inShape: [number, number, number, number];
  filterShape: [number, number, number, number];
  outShape: [number, number, number, number];
}

export interface BackpropAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

export function geometry(inShape: number[], filterShape: number[], attrs: BackpropAttrs): ConvGeometry {
  const info = tf.backend_util.computeConv2DInfo(
    inShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  return {
    strides: [info.strideHeight, info.strideWidth],
    padInfo: info.padInfo,
    inShape: info.inShape,
    filterShape: [info.filterHeight, info.filterWidth, info.inChannels, info.outChannels],
    outShape: info.outShape,
  };
}

function isPointwise(g: ConvGeometry): boolean {
  const { top, left, bottom, right } = g.padInfo;
  return g.filterShape[0] === 1 && g.filterShape[1] === 1 && top + left + bottom + right === 0;
}

/** [N,OH,OW,C] → [N,(OH-1)·sh+1,(OW-1)·sw+1,C] with sh-1 / sw-1 zeros between neighbours. */
function spread(t: Tensor4D, [sh, sw]: [number, number]): Tensor4D {
  if (sh === 1 && sw === 1) return t;
  const [n, oh, ow, c] = t.shape;
  const spaced = t
    .reshape([n, oh, 1, ow, 1, c])
    .pad([
      [0, 0],
      [0, 0],
      [0, sh - 1],
      [0, 0],
      [0, sw - 1],
      [0, 0],
    ])
    .reshape<Tensor4D>([n, oh * sh, ow * sw, c]);
  return spaced.slice([0, 0, 0, 0], [n, (oh - 1) * sh + 1, (ow - 1) * sw + 1, c]);
}

/** x[:, ::sh, ::sw, :] cut to [N,OH,OW,C]. A reshape and a slice: wasm's StridedSlice is ~8× slower. */
function subsample(x: Tensor4D, [sh, sw]: [number, number], oh: number, ow: number): Tensor4D {
  const [n, , , c] = x.shape;
  if (sh === 1 && sw === 1) return padOrCrop(x, 0, 0, oh, ow);
  return padOrCrop(x, 0, 0, oh * sh, ow * sw)
    .reshape([n * oh, sh, ow, sw * c])
    .slice([0, 0, 0, 0], [n * oh, 1, ow, c])
    .reshape<Tensor4D>([n, oh, ow, c]);
}

/** Pads (positive) or crops (negative) the two spatial axes to reach exactly the given sizes. */
function padOrCrop(t: Tensor4D, top: number, left: number, height: number, width: number): Tensor4D {
  const [n, h, w, c] = t.shape;
  const bottom = height - h - top;
  const right = width - w - left;
  if (top === 0 && left === 0 && bottom === 0 && right === 0) return t;
  const padded = t.pad<Tensor4D>([
    [0, 0],
    [Math.max(top, 0), Math.max(bottom, 0)],
    [Math.max(left, 0), Math.max(right, 0)],
    [0, 0],
  ]);
  if (top >= 0 && left >= 0 && bottom >= 0 && right >= 0) return padded;
  return padded.slice([0, Math.max(-top, 0), Math.max(-left, 0), 0], [n, height, width, c]);
}

/**
 * w [KH,KW,Ci,Co] → w rotated by 180° with its channel axes swapped, [KH,KW,Co,Ci], in one pass
 * over the data in JavaScript: wasm's Reverse kernel took longer than the convolution itself.
 */
function rotateFilter(filter: Tensor4D): Tensor4D {
  const [kh, kw, ci, co] = filter.shape;
  const src = filter.dataSync() as Float32Array;
  const dst = new Float32Array(src.length);
  const taps = kh * kw;
  for (let tap = 0; tap < taps; tap++) {
    const from = (taps - 1 - tap) * ci * co;
    const to = tap * ci * co;
    for (let i = 0; i < ci; i++) {
      const row = from + i * co;
      for (let o = 0; o < co; o++) dst[to + o * ci + i] = src[row + o];
    }
  }
  return tf.tensor4d(dst, [kh, kw, co, ci]);
}

/**
 * dX as "col2im": one matmul gives every tap's contribution [N,OH,OW,KH·KW·Ci], and a JavaScript
 * loop adds each into place. Used for few input channels (a network's first conv, on RGB), where
 * the transposed convolution would run XNNPACK with 3 output channels, which is very slow.
 */
function inputGradientByTaps(dy: Tensor4D, filter: Tensor4D, g: ConvGeometry): Tensor4D {
  const [n, h, w, ci] = g.inShape;
  const [kh, kw, , co] = g.filterShape;
  const [, oh, ow] = g.outShape;
  const [sh, sw] = g.strides;
  const { top, left } = g.padInfo;
  const perTap = tf.tidy(() => dy.reshape([-1, co]).matMul(filter.reshape([kh * kw * ci, co]).transpose()));
  const taps = perTap.dataSync() as Float32Array;
  perTap.dispose();
  const dx = new Float32Array(n * h * w * ci);
  let k = 0;
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        for (let i = 0; i < kh; i++) {
          const row = y * sh + i - top;
          for (let j = 0; j < kw; j++, k += ci) {
            const col = x * sw + j - left;
            if (row < 0 || row >= h || col < 0 || col >= w) continue;
            const at = ((b * h + row) * w + col) * ci;
            for (let c = 0; c < ci; c++) dx[at + c] += taps[k + c];
          }
        }
      }
    }
  }
  return tf.tensor4d(dx, [n, h, w, ci]);
}

/** Gradient of conv2d with respect to its input. */
export function conv2dInputGradient(dy: Tensor4D, filter: Tensor4D, g: ConvGeometry): Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, ci] = g.inShape;
    const [kh, kw, , co] = g.filterShape;
    if (isPointwise(g)) {
      const wT = filter.reshape([ci, co]).transpose(); // small; wasm's transposed matmul is slow
      const dx = dy.reshape([-1, co]).matMul(wT).reshape<Tensor4D>([n, dy.shape[1], dy.shape[2], ci]);
      return padOrCrop(spread(dx, g.strides), 0, 0, h, w);
    }
    if (ci < 16) return inputGradientByTaps(dy, filter, g);
    const padded = padOrCrop(
      spread(dy, g.strides),
      kh - 1 - g.padInfo.top,
      kw - 1 - g.padInfo.left,
      h + kh - 1,
      w + kw - 1,
    );
    return tf.conv2d(padded, rotateFilter(filter), 1, 'valid');
  });
}

/** Gradient of conv2d with respect to its filter. */
export function conv2dFilterGradient(x: Tensor4D, dy: Tensor4D, g: ConvGeometry): Tensor4D {
  return tf.tidy(() => {
    const [kh, kw, ci, co] = g.filterShape;
    const [, oh, ow] = g.outShape;
    const [sh, sw] = g.strides;
    if (isPointwise(g)) {
      const xT = subsample(x, g.strides, oh, ow).reshape([-1, ci]).transpose(); // wasm's matMul(transposeA) is ~20× slower
      return xT.matMul(dy.reshape([-1, co])).reshape<Tensor4D>([1, 1, ci, co]);
    }
    const { top, left, bottom, right } = g.padInfo;
    const xT = x.transpose<Tensor4D>([3, 1, 2, 0]); // [Ci,H,W,N]: the batch becomes the channels
    const dyFilter = dy.transpose<Tensor4D>([1, 2, 0, 3]); // [OH,OW,N,Co]
    const full = tf.conv2d(
      xT,
      dyFilter,
      1,
      [
        [0, 0],
        [top, bottom],
        [left, right],
        [0, 0],
      ],
      'NHWC',
      [sh, sw],
    );
    // The forward conv may ignore up to s-1 trailing rows/cols; they show up here as extra taps.
    const taps = full.shape[1] === kh && full.shape[2] === kw ? full : full.slice([0, 0, 0, 0], [ci, kh, kw, co]);
    return taps.transpose<Tensor4D>([1, 2, 0, 3]);
  });
}
