// The convolution geometries the native-kernel tests check on every path (fp32 against the cpu backend,
// bf16 against fp32, the wasm gradients against cpu): kernels 1, 3 and 7, strides 1 and 2, 'same',
// 'valid' and explicit asymmetric padding, 3 and 16 input channels, odd and even sizes.
import assert from 'node:assert/strict';
import * as tf from '../lib/engine/tf';

export type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

export interface ConvCase {
  index: number;
  k: number;
  s: number;
  pad: Pad;
  ci: number;
  xShape: [number, number, number, number];
  wShape: [number, number, number, number];
  /** Dilated forward convolutions too, where tfjs allows them (it has no dilated gradient). */
  dilation: number;
  /** How a failure names the case. */
  where: string;
}

/**
 * The cases, with `outChannels` output channels (5 by default; 16 gives the channel counts in whole 16s
 * that bf16's NHWC gradients take, native/boat_native.cc).
 */
export function convCases(outChannels = 5): ConvCase[] {
  const cases: ConvCase[] = [];
  const pads: Pad[] = [
    'same',
    'valid',
    [
      [0, 0],
      [1, 2],
      [2, 1],
      [0, 0],
    ],
  ];
  for (const k of [1, 3, 7])
    for (const s of [1, 2])
      for (const pad of pads)
        for (const ci of [3, 16]) {
          const h = k === 7 ? 11 : 9 + s - 1;
          cases.push({
            index: cases.length,
            k,
            s,
            pad,
            ci,
            xShape: [2, h, h + 1, ci],
            wShape: [k, k, ci, outChannels],
            dilation: k === 3 && s === 1 ? 2 : 1,
            where: `kernel ${k} stride ${s} pad ${JSON.stringify(pad)} channels ${ci} → ${outChannels}`,
          });
        }
  return cases;
}

/** Deterministic values in [-0.5, 0.5) + offset. */
export function randomArray(shape: number[], seed: number, offset = 0): Float32Array {
  let s = seed * 7919 + 3;
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff - 0.5 + offset;
  });
}

/** Largest absolute difference over the largest magnitude of `expected`. */
export function maxRelativeError(expected: ArrayLike<number>, actual: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length);
  let scale = 0;
  let err = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) err = Math.max(err, Math.abs(expected[i] - actual[i]));
  return err / scale;
}

export const CONV_OUTPUTS = ['forward', 'forward + bias', 'forward + bias + ReLU', 'input gradient', 'filter gradient'];

/**
 * A function computing, for one case, what CONV_OUTPUTS names: the plain, biased and biased + ReLU
 * convolutions, and the input and filter gradients of sum(conv²). Its inputs are fixed here, so that
 * the function can run on each backend or precision being compared.
 */
export function convOutputs(c: ConvCase): () => tf.Tensor[] {
  const x = randomArray(c.xShape, c.index);
  const w = randomArray(c.wShape, c.index + 100);
  const b = randomArray([c.wShape[3]], c.index + 200);
  return () => {
    const X = tf.tensor4d(x, c.xShape);
    const W = tf.tensor4d(w, c.wShape);
    const B = tf.tensor1d(b);
    const { s, pad, dilation } = c;
    const plain = tf.conv2d(X, W, s, pad, 'NHWC', dilation);
    const biased = tf.fused.conv2d({ x: X, filter: W, bias: B, strides: s, pad, dilations: dilation });
    const relu = tf.fused.conv2d({
      x: X,
      filter: W,
      bias: B,
      strides: s,
      pad,
      dilations: dilation,
      activation: 'relu',
    });
    const f = (A: tf.Tensor, V: tf.Tensor) =>
      tf
        .conv2d(A as tf.Tensor4D, V as tf.Tensor4D, s, pad)
        .square()
        .sum();
    const [gx, gw] = tf.grads(f)([X, W]);
    return [plain, biased, relu, gx, gw];
  };
}
