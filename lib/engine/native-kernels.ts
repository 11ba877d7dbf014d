/**
 * Native kernels for the wasm backend (native/boat_native.cc), when the addon is built.
 *
 * tfjs' wasm backend runs its convolutions with 128-bit SIMD and its BatchNorm, reductions and
 * MaxPoolGrad on one thread; together they are nearly all of a ResNet50's time. The addon computes
 * - convolutions and their two gradients with oneDNN, the library behind PyTorch's CPU convolutions
 *   (Debian's libdnnl), which JIT-compiles AVX2/AVX-512 kernels, and for the folded inference network
 *   (fused-conv.ts) a convolution with its residual add and ReLU fused (CONV2D_ADD);
 * - BatchNorm (inference, and a fused training op with its gradient, used by batchnorm.ts) and
 *   MaxPoolGrad as plain loops over OpenMP threads;
 * - a residual block's add and ReLU in one pass while training (add-relu.ts);
 * - SGD with momentum's step for each variable in one pass (momentum.ts);
 * - in bf16 precision (setNativePrecision), the convolutions, their gradients and the matrix products
 *   through oneDNN's bf16 primitives, reading bf16 copies of their inputs and writing fp32 outputs.
 * It reads its inputs and writes its outputs in place on the wasm heap, so nothing is copied and
 * every other op (ReLU, adds, the head) stays on wasm.
 *
 * `npm install` builds the addon when g++ and libdnnl-dev are present (scripts/build-native.js;
 * scripts/run.sh installs both). Without it, or with BOAT_NATIVE=0, wasm computes everything.
 */
import * as path from 'node:path';
import * as tf from './tf';

import { testHideNativeBf16 } from '../util/test-hooks';
import { ADD_RELU } from './add-relu';
import { bf16StorageOn, guardKernel, installBf16Storage, isPacked, packedOutput, unpack } from './bf16-storage';
import { MOMENTUM_STEP } from './momentum';
import { RELU_GRAD, RELU_GRAD_SUM, reluGradConfig } from './relu-gradient';

export interface NativeAddon {
  conv2d(
    geometry: Int32Array,
    x: Float32Array,
    filter: Float32Array,
    bias: Float32Array | null,
    y: Float32Array,
    relu: boolean,
    filterKey?: number,
    packed?: number,
  ): void;
  /**
   * conv2d's y plus `add` (a residual, y's shape) before the ReLU: oneDNN's sum post-op. Absent from an
   * addon built before it existed; CONV2D_ADD is then not registered and the composed ops run.
   */
  conv2dAdd?(
    geometry: Int32Array,
    x: Float32Array,
    filter: Float32Array,
    bias: Float32Array | null,
    y: Float32Array,
    relu: boolean,
    add: Float32Array,
    filterKey?: number,
    packed?: number,
  ): void;
  /** dyKey names dy's data, so that the filter gradient can reuse its bf16 copy (an older addon ignores it). */
  conv2dBackpropInput(
    geometry: Int32Array,
    dy: Float32Array,
    filter: Float32Array,
    dx: Float32Array,
    dyKey?: number,
    packed?: number,
  ): void;
  conv2dBackpropFilter(
    geometry: Int32Array,
    x: Float32Array,
    dy: Float32Array,
    dw: Float32Array,
    xKey?: number,
    dyKey?: number,
    packed?: number,
  ): void;
  batchNorm(
    x: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    offset: Float32Array | null,
    scale: Float32Array | null,
    epsilon: number,
    y: Float32Array,
    packed?: number,
  ): void;
  batchNormTrain(
    x: Float32Array,
    gamma: Float32Array,
    beta: Float32Array,
    epsilon: number,
    y: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    invStd: Float32Array,
    packed?: number,
  ): void;
  batchNormTrainGrad(...args: BatchNormGradCallArgs): void;
  batchNormFrozenGrad(...args: BatchNormGradCallArgs): void;
  /**
   * The ReLU variants of the four BatchNorm calls above: the forward ones write relu(y), the gradients take
   * that output last and read dy·step(y) for dy. Absent from an addon built before them: BatchNorm and ReLU
   * then run as two kernels.
   */
  batchNormRelu?(
    x: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    offset: Float32Array | null,
    scale: Float32Array | null,
    epsilon: number,
    y: Float32Array,
    packed?: number,
  ): void;
  batchNormTrainRelu?(
    x: Float32Array,
    gamma: Float32Array,
    beta: Float32Array,
    epsilon: number,
    y: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    invStd: Float32Array,
    packed?: number,
  ): void;
  /** The same arguments with the ReLU's output y after dBeta, then the optional ones. */
  batchNormTrainReluGrad?(...args: BatchNormGradCallArgs): void;
  batchNormFrozenReluGrad?(...args: BatchNormGradCallArgs): void;
  columnSums(x: Float32Array, out: Float32Array): void;
  /** dx = dy · step(x) (ReLU's gradient). Absent from an addon built before it existed: tfjs' gradient then runs. */
  reluGrad?(dy: Float32Array, x: Float32Array, dx: Float32Array, packed?: number): void;
  /** dx = (dy + dy2) · step(x): a gradient summed from two parts, then ReLU's. Absent from an addon built before it. */
  reluGradSum?(dy: Float32Array, x: Float32Array, dy2: Float32Array, dx: Float32Array, packed?: number): void;
  maxPoolGrad(geometry: Int32Array, dy: Float32Array, x: Float32Array, dx: Float32Array): void;
  /** y = x[begin : begin + size]. Absent from an addon built before it existed, as is pad. */
  slice?(x: Float32Array, xShape: Int32Array, begin: Int32Array, size: Int32Array, y: Float32Array): void;
  /** y = x with `before` elements of `value` ahead of it along each axis, in yShape. */
  pad?(
    x: Float32Array,
    xShape: Int32Array,
    before: Int32Array,
    value: number,
    y: Float32Array,
    yShape: Int32Array,
  ): void;
  /** y = relu(a + b) (add-relu.ts). */
  addRelu?(a: Float32Array, b: Float32Array, y: Float32Array, packed?: number): void;
  /** One variable's step of SGD with momentum (momentum.ts). */
  momentumStep?(
    value: Float32Array,
    accumulation: Float32Array,
    gradient: Float32Array,
    momentum: number,
    rate: number,
    newValue: Float32Array,
    newAccumulation: Float32Array,
  ): void;
  /** c = relu?(a·b + bias); dims [batchA, batchB, m, k, n, transposeA, transposeB]. */
  matMul(
    dims: Int32Array,
    a: Float32Array,
    b: Float32Array,
    bias: Float32Array | null,
    c: Float32Array,
    relu: boolean,
  ): void;
  /**
   * x's values converted to bf16 in the first half of its own buffer, and back (bf16-storage.ts). Absent
   * from an addon built before them, and so are the `packed` flags of the calls above: nothing is packed.
   */
  packBf16?(x: Float32Array): void;
  expandBf16?(x: Float32Array): void;
  /** Whether the CPU computes bf16 natively (AVX512_BF16 or AMX), so that setPrecision('bf16') is allowed. */
  bf16Native(): boolean;
  setPrecision(precision: 'fp32' | 'bf16'): void;
  setThreads(threads: number): void;
  describe(): string;
  /**
   * The cache of reordered filters that inference's convolutions keep (filterKey): sets its capacity in
   * bytes when given (0: off, every copy freed) and returns its state. Absent from an addon built before it.
   */
  filterCache?(capacity?: number): FilterCacheState;
  /**
   * The backward pass's converted inputs (dy, shared x) kept for the next gradient call: sets how many
   * when given (0: off) and returns the state. Absent from an addon built before it.
   */
  gradientInputs?(slots?: number): GradientInputsState;
  /**
   * The layout bf16 convolution gradients read their converted inputs in: NHWC (the default, for channel
   * counts in whole 16s) or oneDNN's preferred blocked one. Sets it when given and returns it. Absent from
   * an addon built before it (blocked).
   */
  gradientLayout?(layout?: GradientLayout): GradientLayout;
}

export type GradientLayout = 'nhwc' | 'blocked';

/** dy, x, mean, invStd, gamma, dx, dGamma, dBeta: the arguments of the BatchNorm gradients. */
type BatchNormGradArgs = [
  dy: Float32Array,
  x: Float32Array,
  mean: Float32Array,
  invStd: Float32Array,
  gamma: Float32Array,
  dx: Float32Array,
  dGamma: Float32Array,
  dBeta: Float32Array,
];
/**
 * A BatchNorm gradient's arguments, then (y for the ReLU variants and) optionally dx's column sums,
 * which it writes (an addon built before them ignores the array), then packed flags: 1 when y is
 * packed, 2 to write dx packed, 4 when x is packed.
 */
type BatchNormGradCallArgs = [...BatchNormGradArgs, ...(Float32Array | number)[]];

export interface GradientInputsState {
  slots: number;
  bytes: number;
  hits: number;
  misses: number;
}

export interface FilterCacheState {
  copies: number;
  bytes: number;
  capacity: number;
  hits: number;
  misses: number;
}

/** The addon's default capacity for reordered filters (all of ResNet50's are 94 MB in fp32, 47 MB in bf16). */
export const FILTER_CACHE_BYTES = 256 * 2 ** 20;

/**
 * How many converted backward inputs the addon keeps: three covers a convolution's two gradients and the
 * input a stage's first block shares (more finds no further reuse in ResNet50's step: 47 of its 140
 * conversions either way).
 */
export const GRADIENT_INPUT_SLOTS = 3;

/**
 * A key naming a tensor's data for the addon's caches of converted copies: a tensor's data never
 * changes (an assigned variable gets new data), and keys are never reused, so a key's copy is right for
 * as long as the addon keeps it.
 */
const dataKeys = new WeakMap<object, number>();
let nextDataKey = 1;
function dataKeyOf(t: tf.TensorInfo): number {
  let key = dataKeys.get(t.dataId);
  if (key === undefined) {
    key = nextDataKey++;
    dataKeys.set(t.dataId, key);
  }
  return key;
}

/**
 * The filter cache's key: only inference passes one (nothing taped), since a training pass's filters
 * change at every step and copying them would only churn the cache.
 */
function filterKeyOf(filter: tf.TensorInfo): number {
  return tf.engine().state.gradientDepth > 0 ? 0 : dataKeyOf(filter);
}

/** The addon's path: native/build/ at the package root (this file runs from dist/lib/engine/). */
export const NATIVE_ADDON = path.resolve(__dirname, '..', '..', '..', 'native', 'build', 'boat_native.node');

/** The addon, or the reason it is not used (not built, or turned off with BOAT_NATIVE=0). */
export function loadNativeAddon(env = process.env): { native: NativeAddon } | { reason: string } {
  if (env.BOAT_NATIVE === '0') return { reason: 'BOAT_NATIVE=0' };
  // Idle OpenMP threads would spin for a while after each convolution, taking the cores from the
  // wasm threads that run the ops in between. libgomp reads this when the addon loads it.
  if (env.OMP_WAIT_POLICY === undefined) process.env.OMP_WAIT_POLICY = 'PASSIVE';
  try {
    return { native: require(NATIVE_ADDON) as NativeAddon };
  } catch (err) {
    const message = (err as Error).message.split('\n')[0];
    return { reason: /Cannot find module/.test(message) ? 'not built (npm run build:native)' : message };
  }
}

/** The parts of tfjs' wasm backend these kernels use. */
interface WasmHeap {
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

type Conv2DInfo = tf.backend_util.Conv2DInfo;

/** The addon's 17-number convolution geometry (bench/gradient-precision.js records it too). */
export function geometryOf(c: Conv2DInfo): Int32Array {
  const { top, left, bottom, right } = c.padInfo;
  return Int32Array.from([
    c.batchSize,
    c.inHeight,
    c.inWidth,
    c.inChannels,
    c.filterHeight,
    c.filterWidth,
    c.outChannels,
    c.outHeight,
    c.outWidth,
    c.strideHeight,
    c.strideWidth,
    c.dilationHeight,
    c.dilationWidth,
    top,
    left,
    bottom,
    right,
  ]);
}

/** The attributes the kernels below read (each kernel reads its own subset). */
interface KernelAttrs {
  strides: number | [number, number];
  filterSize?: number | [number, number];
  varianceEpsilon?: number;
  epsilon?: number;
  axis?: number | number[];
  keepDims?: boolean;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  activation?: string;
  transposeA?: boolean;
  transposeB?: boolean;
  inputShape?: [number, number, number, number];
  filterShape?: [number, number, number, number];
}

export function convInfo(xShape: number[], filterShape: number[], a: KernelAttrs): Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
    false,
    'channelsLast',
  );
}

const isFloat4D = (t: tf.TensorInfo | undefined): t is tf.TensorInfo =>
  !!t && t.dtype === 'float32' && t.shape.length === 4;

/**
 * The inputs each native kernel reads packed (bf16-storage.ts): every other input of every wasm kernel
 * (the kernels these replace included) is expanded before the kernel runs.
 */
const TAKES_PACKED: Record<string, readonly string[]> = {
  Conv2D: ['x'],
  FusedConv2D: ['x'],
  Conv2DBackpropInput: ['dy'],
  Conv2DBackpropFilter: ['x', 'dy'],
  Sum: ['x'],
  FusedBatchNorm: ['x'],
  BoatBatchNormRelu: ['x'],
  BoatBatchNormTrain: ['x'],
  BoatBatchNormTrainRelu: ['x'],
  BoatBatchNormTrainGrad: ['x'],
  BoatBatchNormTrainReluGrad: ['x', 'y'],
  BoatBatchNormFrozenGrad: ['x'],
  BoatBatchNormFrozenReluGrad: ['x', 'y'],
  BoatReluGrad: ['x'],
  BoatReluGradSum: ['x'],
  BoatAddRelu: ['a', 'b'],
};

/**
 * A kernel that runs natively when `native` returns an output, else the kernel it replaces
 * (wasm's own, or this project's from wasm-kernels.ts), with every packed input expanded for it.
 */
function withFallback(
  kernelName: string,
  native: (inputs: tf.NamedTensorInfoMap, attrs: KernelAttrs, heap: WasmHeap) => tf.TensorInfo | null,
): tf.KernelConfig {
  const previous = tf.getKernel(kernelName, 'wasm');
  return {
    kernelName,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const out = native(args.inputs, args.attrs as unknown as KernelAttrs, args.backend as unknown as WasmHeap);
      if (out) return out;
      if (!previous) throw new Error(`${kernelName}: no wasm kernel for these inputs`);
      for (const input of Object.values(args.inputs)) unpack(input, args.backend);
      return previous.kernelFunc(args);
    },
  };
}

let precision: 'fp32' | 'bf16' = 'fp32';

/** 1 when `t` is packed and the addon reads it so (in bf16), else 0, after expanding it if it is packed. */
function packedFlag(t: tf.TensorInfo, heap: WasmHeap): number {
  if (!isPacked(t)) return 0;
  if (precision === 'bf16') return 1;
  unpack(t, heap);
  return 0;
}

/** An output of `shape`: for a writer that packs it, a packed one of half the buffer (bf16-storage.ts). */
function outputFor(heap: WasmHeap, shape: number[], pack: boolean): tf.TensorInfo {
  return pack ? packedOutput(heap, shape) : heap.makeOutput(shape, 'float32');
}

/**
 * Whether a writer asked to pack (its `pack` attribute: true, or 'rounding' for the kind that changes what
 * readers see, bf16-storage.ts) packs: bf16 storage on for that kind, in bf16.
 */
const packs = (attrs: unknown): boolean => {
  const pack = (attrs as { pack?: boolean | 'rounding' }).pack;
  return !!pack && precision === 'bf16' && bf16StorageOn(pack === 'rounding' ? 'rounding' : 'exact');
};

/**
 * The matrix product in bf16 only: in fp32 wasm's own (XNNPACK) stays, as before precisions existed.
 * a [...batchA, m, k] and b [...batchB, k, n] of the same rank, where the batch shapes match or one is
 * all ones (it broadcasts).
 */
function matMulKernel(addon: NativeAddon, fused: boolean) {
  return (inputs: tf.NamedTensorInfoMap, a: KernelAttrs, heap: WasmHeap): tf.TensorInfo | null => {
    if (precision !== 'bf16') return null;
    const { a: x, b: y, bias, preluActivationWeights } = inputs;
    const activation = fused ? (a.activation ?? 'linear') : 'linear';
    if (!x || !y || x.dtype !== 'float32' || y.dtype !== 'float32') return null;
    const rank = x.shape.length;
    if (rank < 2 || y.shape.length !== rank) return null;
    if (preluActivationWeights || (activation !== 'linear' && activation !== 'relu')) return null;
    const [ta, tb] = [!!a.transposeA, !!a.transposeB];
    const [xr, xc] = x.shape.slice(-2);
    const [yr, yc] = y.shape.slice(-2);
    const [m, k] = ta ? [xc, xr] : [xr, xc];
    const [kb, n] = tb ? [yc, yr] : [yr, yc];
    const [leadA, leadB] = [x.shape.slice(0, -2), y.shape.slice(0, -2)];
    const [batchA, batchB] = [tf.util.sizeFromShape(leadA), tf.util.sizeFromShape(leadB)];
    const sameLead = leadA.every((d, i) => d === leadB[i]);
    if (k !== kb || (!sameLead && batchA !== 1 && batchB !== 1)) return null;
    if (bias && (bias.dtype !== 'float32' || bias.shape.length !== 1 || bias.shape[0] !== n)) return null;
    if (k === 0) return null; // an empty sum: zeros, which wasm's kernel writes
    const out = heap.makeOutput([...(batchA >= batchB ? leadA : leadB), m, n], 'float32');
    if (m * n * batchA * batchB === 0) return out;
    addon.matMul(
      Int32Array.from([batchA, batchB, m, k, n, ta ? 1 : 0, tb ? 1 : 0]),
      heap.typedArrayFromHeap(x),
      heap.typedArrayFromHeap(y),
      bias ? heap.typedArrayFromHeap(bias) : null,
      heap.typedArrayFromHeap(out),
      activation === 'relu',
    );
    return out;
  };
}

function nativeKernels(addon: NativeAddon): tf.KernelConfig[] {
  const forward = (
    inputs: tf.NamedTensorInfoMap,
    a: KernelAttrs,
    heap: WasmHeap,
    fused: boolean,
  ): tf.TensorInfo | null => {
    const { x, filter, bias, preluActivationWeights } = inputs;
    const activation = fused ? (a.activation ?? 'linear') : 'linear';
    if (!isFloat4D(x) || !isFloat4D(filter) || a.dataFormat === 'NCHW' || preluActivationWeights) return null;
    if (activation !== 'linear' && activation !== 'relu') return null;
    if (bias && (bias.shape.length !== 1 || bias.dtype !== 'float32')) return null;
    const c = convInfo(x.shape, filter.shape, a);
    const packY = packs(a);
    const y = outputFor(heap, c.outShape, packY);
    if (tf.util.sizeFromShape(c.outShape) === 0) return y;
    addon.conv2d(
      geometryOf(c),
      heap.typedArrayFromHeap(x),
      heap.typedArrayFromHeap(filter),
      bias ? heap.typedArrayFromHeap(bias) : null,
      heap.typedArrayFromHeap(y),
      activation === 'relu',
      filterKeyOf(filter),
      packedFlag(x, heap) | (packY ? 2 : 0),
    );
    return y;
  };
  return [
    withFallback('Conv2D', (inputs, a, heap) => forward(inputs, a, heap, false)),
    withFallback('FusedConv2D', (inputs, a, heap) => forward(inputs, a, heap, true)),
    withFallback('Conv2DBackpropInput', (inputs, a, heap) => {
      const { dy, filter } = inputs;
      if (!isFloat4D(dy) || !isFloat4D(filter) || a.dataFormat === 'NCHW' || !a.inputShape) return null;
      const c = convInfo(a.inputShape, filter.shape, a);
      const dx = heap.makeOutput(c.inShape, 'float32');
      addon.conv2dBackpropInput(
        geometryOf(c),
        heap.typedArrayFromHeap(dy),
        heap.typedArrayFromHeap(filter),
        heap.typedArrayFromHeap(dx),
        dataKeyOf(dy),
        packedFlag(dy, heap),
      );
      return dx;
    }),
    withFallback('Conv2DBackpropFilter', (inputs, a, heap) => {
      const { x, dy } = inputs;
      if (!isFloat4D(x) || !isFloat4D(dy) || a.dataFormat === 'NCHW' || !a.filterShape) return null;
      const c = convInfo(x.shape, a.filterShape, a);
      const dw = heap.makeOutput(a.filterShape, 'float32');
      addon.conv2dBackpropFilter(
        geometryOf(c),
        heap.typedArrayFromHeap(x),
        heap.typedArrayFromHeap(dy),
        heap.typedArrayFromHeap(dw),
        dataKeyOf(x),
        dataKeyOf(dy),
        packedFlag(x, heap) | (packedFlag(dy, heap) << 1),
      );
      return dw;
    }),
    withFallback('FusedBatchNorm', (inputs, a, heap) => {
      const { x, mean, variance, offset, scale } = inputs;
      const channels = x?.shape[x.shape.length - 1];
      const perChannel = (t: tf.TensorInfo | undefined) =>
        !t || (t.dtype === 'float32' && t.shape.length === 1 && t.shape[0] === channels);
      if (!x || x.dtype !== 'float32' || x.shape.length === 0 || !mean || !variance) return null;
      if (![mean, variance, offset, scale].every(perChannel) || tf.util.sizeFromShape(x.shape) === 0) return null;
      return batchNormInference(addon.batchNorm.bind(addon), inputs, a, heap);
    }),
    withFallback('Sum', (inputs, a, heap) => {
      // Only the sum over every axis but the last (a bias gradient); other sums stay wasm's.
      const { x } = inputs;
      if (!x || x.dtype !== 'float32' || x.shape.length < 2 || a.axis === undefined) return null;
      const rank = x.shape.length;
      const axes = [...new Set((Array.isArray(a.axis) ? a.axis : [a.axis]).map((d) => (d < 0 ? d + rank : d)))].sort(
        (p, q) => p - q,
      );
      if (axes.length !== rank - 1 || axes.some((d, i) => d !== i) || tf.util.sizeFromShape(x.shape) === 0) return null;
      const channels = x.shape[rank - 1];
      const out = heap.makeOutput(a.keepDims ? [...axes.map(() => 1), channels] : [channels], 'float32');
      // A BatchNorm gradient's dx was summed as it was written, in columnSums' order.
      const known = columnSumsOf.get(x.dataId);
      if (known?.length === channels) {
        heap.typedArrayFromHeap(out).set(known);
        columnSumsReused++;
      } else {
        unpack(x, heap);
        addon.columnSums(heap.typedArrayFromHeap(x), heap.typedArrayFromHeap(out));
      }
      return out;
    }),
    withFallback('MaxPoolGrad', (inputs, a, heap) => {
      const { dy, input } = inputs;
      if (!isFloat4D(dy) || !isFloat4D(input) || a.filterSize === undefined) return null;
      const c = tf.backend_util.computePool2DInfo(
        input.shape as [number, number, number, number],
        a.filterSize,
        a.strides,
        1,
        a.pad,
        a.dimRoundingMode,
      );
      const dx = heap.makeOutput(input.shape, 'float32');
      addon.maxPoolGrad(
        geometryOf(c),
        heap.typedArrayFromHeap(dy),
        heap.typedArrayFromHeap(input),
        heap.typedArrayFromHeap(dx),
      );
      return dx;
    }),
    withFallback('BatchMatMul', matMulKernel(addon, false)),
    withFallback('_FusedMatMul', matMulKernel(addon, true)),
    ...convAddKernel(addon),
    ...batchNormTrainingKernels(addon),
    ...sameShapeKernel(RELU_GRAD, ['dy', 'x'], addon.reluGrad?.bind(addon)),
    ...sameShapeKernel(RELU_GRAD_SUM, ['dy', 'x', 'dy2'], addon.reluGradSum?.bind(addon)),
    ...copyKernels(addon),
    ...momentumKernel(addon),
    ...sameShapeKernel(ADD_RELU, ['a', 'b'], addon.addRelu?.bind(addon)),
  ];
}

function momentumKernel(addon: NativeAddon): tf.KernelConfig[] {
  const momentumStep = addon.momentumStep?.bind(addon);
  if (!momentumStep) return [];
  return [
    {
      kernelName: MOMENTUM_STEP,
      backendName: 'wasm',
      kernelFunc: ({ inputs, attrs, backend }) => {
        const heap = backend as unknown as WasmHeap;
        const { value, accumulation, gradient } = inputs as Record<
          'value' | 'accumulation' | 'gradient',
          tf.TensorInfo
        >;
        const { momentum, rate } = attrs as unknown as { momentum: number; rate: number };
        for (const t of [accumulation, gradient])
          if (t.dtype !== 'float32' || value.dtype !== 'float32' || !tf.util.arraysEqual(t.shape, value.shape))
            throw new Error(`${MOMENTUM_STEP}: value, accumulation and gradient must be float32 of one shape`);
        const newValue = heap.makeOutput(value.shape, 'float32');
        const newAccumulation = heap.makeOutput(value.shape, 'float32');
        if (tf.util.sizeFromShape(value.shape) === 0) return [newValue, newAccumulation];
        momentumStep(
          heap.typedArrayFromHeap(value),
          heap.typedArrayFromHeap(accumulation),
          heap.typedArrayFromHeap(gradient),
          momentum,
          rate,
          heap.typedArrayFromHeap(newValue),
          heap.typedArrayFromHeap(newAccumulation),
        );
        return [newValue, newAccumulation];
      },
    },
  ];
}

/**
 * Slice and PadV2 of float32 tensors, as row copies over the threads. wasm computes both one element at
 * a time on one thread: the max-pool's padding in a ResNet50 train step (PadV2 forward, its gradient a
 * Slice) took 10 and 40 ms at batch 8, standalone.
 */
function copyKernels(addon: NativeAddon): tf.KernelConfig[] {
  const slice = addon.slice?.bind(addon);
  const pad = addon.pad?.bind(addon);
  if (!slice || !pad) return [];
  const ints = (v: number[]) => Int32Array.from(v);
  const fits = (x: tf.TensorInfo | undefined): x is tf.TensorInfo =>
    !!x && x.dtype === 'float32' && x.shape.length > 0 && tf.util.sizeFromShape(x.shape) > 0;
  return [
    withFallback('Slice', (inputs, a, heap) => {
      const { x } = inputs;
      const { begin, size } = a as unknown as { begin: number | number[]; size?: number | number[] };
      if (!fits(x)) return null;
      const [b, n] = tf.slice_util.parseSliceParams(x, begin, size);
      if (tf.util.sizeFromShape(n) === 0) return null;
      const y = heap.makeOutput(n, 'float32');
      slice(heap.typedArrayFromHeap(x), ints(x.shape), ints(b), ints(n), heap.typedArrayFromHeap(y));
      return y;
    }),
    withFallback('PadV2', (inputs, a, heap) => {
      const { x } = inputs;
      const { paddings, constantValue } = a as unknown as { paddings: Array<[number, number]>; constantValue: number };
      if (!fits(x) || paddings.length !== x.shape.length || paddings.some(([p, q]) => p < 0 || q < 0)) return null;
      const shape = x.shape.map((d, k) => paddings[k][0] + d + paddings[k][1]);
      const y = heap.makeOutput(shape, 'float32');
      pad(
        heap.typedArrayFromHeap(x),
        ints(x.shape),
        ints(paddings.map(([p]) => p)),
        constantValue,
        heap.typedArrayFromHeap(y),
        ints(shape),
      );
      return y;
    }),
  ];
}

/**
 * A kernel of float32 inputs of one shape, named `names`, and one output of that shape, computed by `call`
 * (the inputs' data in that order, then the output's, then packed flags: 1 to write the output packed where
 * the `pack` attribute asks, 2, 4, 8… for the inputs in order that TAKES_PACKED lists and that are
 * packed); none where the addon lacks `call`.
 */
function sameShapeKernel<Args extends Float32Array[]>(
  kernelName: string,
  names: { [K in keyof Args]: string },
  call: ((...args: [...Args, Float32Array, number]) => void) | undefined,
): tf.KernelConfig[] {
  if (!call) return [];
  const takes = TAKES_PACKED[kernelName] ?? [];
  return [
    {
      kernelName,
      backendName: 'wasm',
      kernelFunc: ({ inputs, attrs, backend }) => {
        const heap = backend as unknown as WasmHeap;
        const ins = names.map((name) => inputs[name] as tf.TensorInfo);
        const [p] = ins;
        if (ins.some((t) => t.dtype !== 'float32' || !tf.util.arraysEqual(t.shape, p.shape)))
          throw new Error(
            `${kernelName}: ${ins.map((t, i) => `${names[i]} ${t.dtype} [${t.shape}]`).join(', ')} must be float32 of one shape`,
          );
        const pack = packs(attrs);
        const out = outputFor(heap, p.shape, pack);
        if (tf.util.sizeFromShape(p.shape) === 0) return out;
        const flags = ins.reduce(
          (f, t, i) => f | (takes.includes(names[i]) ? packedFlag(t, heap) << (i + 1) : 0),
          pack ? 1 : 0,
        );
        const data = ins.map((t) => heap.typedArrayFromHeap(t)) as Args;
        call(...data, heap.typedArrayFromHeap(out), flags);
        return out;
      },
    },
  ];
}

/**
 * Kernel name of relu?(conv2d(x, filter) + bias + add), one oneDNN primitive (sum post-op): the tail of a
 * residual block in the folded inference network (fused-conv.ts). Inputs x, filter, bias (optional),
 * add (the output's shape); attrs as FusedConv2D's, and `inPlace`: the caller reads `add` no more, so
 * the output may take over its buffer (it does when no other tensor shares that data, x is another
 * tensor and nothing is taped), which saves copying the residual there first. Forward only: it has no
 * gradient.
 */
export const CONV2D_ADD = 'BoatConv2DAdd';

let convAddsInPlace = 0;

/** How many CONV2D_ADD calls so far wrote into their residual's buffer (`inPlace`). */
export function nativeConvAddsInPlace(): number {
  return convAddsInPlace;
}

function convAddKernel(addon: NativeAddon): tf.KernelConfig[] {
  const conv2dAdd = addon.conv2dAdd?.bind(addon);
  if (!conv2dAdd) return [];
  return [
    {
      kernelName: CONV2D_ADD,
      backendName: 'wasm',
      kernelFunc: ({ inputs, attrs, backend }) => {
        const heap = backend as unknown as WasmHeap;
        const a = attrs as unknown as KernelAttrs;
        const { x, filter, bias, add } = inputs as Record<'x' | 'filter' | 'add', tf.TensorInfo> & {
          bias?: tf.TensorInfo;
        };
        const c = convInfo(x.shape, filter.shape, a);
        if (!tf.util.arraysEqual(add.shape, c.outShape))
          throw new Error(`${CONV2D_ADD}: add has shape ${add.shape}, the output ${c.outShape}`);
        const refs = (backend as unknown as { dataIdMap: { get(id: object): { refCount: number } } }).dataIdMap;
        const inPlace =
          !!(attrs as { inPlace?: boolean }).inPlace &&
          tf.engine().state.gradientDepth === 0 &&
          add.dtype === 'float32' &&
          add.dataId !== x.dataId &&
          refs.get(add.dataId).refCount === 1;
        let y: tf.TensorInfo;
        if (inPlace) {
          (backend as tf.KernelBackend).incRef(add.dataId);
          y = { dataId: add.dataId, shape: c.outShape, dtype: 'float32' };
          convAddsInPlace++;
        } else y = heap.makeOutput(c.outShape, 'float32');
        if (tf.util.sizeFromShape(c.outShape) === 0) return y;
        conv2dAdd(
          geometryOf(c),
          heap.typedArrayFromHeap(x),
          heap.typedArrayFromHeap(filter),
          bias ? heap.typedArrayFromHeap(bias) : null,
          heap.typedArrayFromHeap(y),
          a.activation === 'relu',
          heap.typedArrayFromHeap(add),
          filterKeyOf(filter),
        );
        return y;
      },
    },
  ];
}

/**
 * BatchNorm with given statistics through `call` (the addon's batchNorm, or batchNormRelu): FusedBatchNorm's
 * inputs x, mean, variance, offset and scale (both optional), and its attribute varianceEpsilon.
 */
function batchNormInference(
  call: NativeAddon['batchNorm'],
  inputs: tf.NamedTensorInfoMap,
  a: KernelAttrs,
  heap: WasmHeap,
): tf.TensorInfo {
  const { x, mean, variance, offset, scale } = inputs as Record<'x' | 'mean' | 'variance', tf.TensorInfo> & {
    offset?: tf.TensorInfo;
    scale?: tf.TensorInfo;
  };
  const pack = packs(a);
  const y = outputFor(heap, x.shape, pack);
  const xPacked = packedFlag(x, heap);
  call(
    heap.typedArrayFromHeap(x),
    heap.typedArrayFromHeap(mean),
    heap.typedArrayFromHeap(variance),
    offset ? heap.typedArrayFromHeap(offset) : null,
    scale ? heap.typedArrayFromHeap(scale) : null,
    a.varianceEpsilon ?? 0.001,
    heap.typedArrayFromHeap(y),
    (pack ? 1 : 0) | (xPacked << 1),
  );
  return y;
}

/** Kernel names of the fused training BatchNorm (used by batchnorm.ts when registered for the active backend). */
export const BATCH_NORM_TRAIN = 'BoatBatchNormTrain';
export const BATCH_NORM_TRAIN_GRAD = 'BoatBatchNormTrainGrad';
/** The gradient of a frozen BatchNorm (moving statistics as constants): same inputs and outputs as BATCH_NORM_TRAIN_GRAD. */
export const BATCH_NORM_FROZEN_GRAD = 'BoatBatchNormFrozenGrad';
/**
 * The same three followed by a ReLU (BATCH_NORM_TRAIN_RELU writes relu(y); the gradients take that output
 * as one more input, y), and BATCH_NORM_RELU: relu(tf.batchNorm(x, mean, variance, offset, scale)) with
 * FusedBatchNorm's inputs and its attribute varianceEpsilon. Registered where the addon has them.
 */
export const BATCH_NORM_TRAIN_RELU = 'BoatBatchNormTrainRelu';
export const BATCH_NORM_TRAIN_RELU_GRAD = 'BoatBatchNormTrainReluGrad';
export const BATCH_NORM_FROZEN_RELU_GRAD = 'BoatBatchNormFrozenReluGrad';
export const BATCH_NORM_RELU = 'BoatBatchNormRelu';

type BatchNormTrainCall = NativeAddon['batchNormTrain'];
type BatchNormGradCall = (...args: BatchNormGradCallArgs) => void;

/** Column sums of BatchNorm gradients' dx, by dx's data: the Sum of a bias gradient reads them (see 'Sum'). */
const columnSumsOf = new WeakMap<object, Float32Array>();
let columnSumsReused = 0;

/** How many Sums so far took a BatchNorm gradient's column sums instead of computing their own. */
export function nativeColumnSumsReused(): number {
  return columnSumsReused;
}

function batchNormTrainingKernels(addon: NativeAddon): tf.KernelConfig[] {
  const heapOf = (backend: unknown) => backend as WasmHeap;
  const train = (kernelName: string, call: BatchNormTrainCall): tf.KernelConfig => ({
    // inputs x [..., C], gamma, beta [C]; outputs y, mean, variance (biased), 1/sqrt(variance + epsilon)
    kernelName,
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const heap = heapOf(backend);
      const { x, gamma, beta } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
      const channels = [gamma.shape[0]];
      const pack = packs(attrs);
      const y = outputFor(heap, x.shape, pack);
      const stats = [0, 1, 2].map(() => heap.makeOutput(channels, 'float32'));
      const [mean, variance, invStd] = stats.map((t) => heap.typedArrayFromHeap(t));
      const xPacked = packedFlag(x, heap);
      call(
        heap.typedArrayFromHeap(x),
        heap.typedArrayFromHeap(gamma),
        heap.typedArrayFromHeap(beta),
        (attrs as unknown as KernelAttrs).epsilon ?? 0.001,
        heap.typedArrayFromHeap(y),
        mean,
        variance,
        invStd,
        (pack ? 1 : 0) | (xPacked << 1),
      );
      return [y, ...stats];
    },
  });
  const grad = (kernelName: string, call: BatchNormGradCall, withRelu: boolean): tf.KernelConfig => ({
    // inputs dy, x [..., C], mean, invStd, gamma [C] (and y, the ReLU's output); outputs dx, dGamma, dBeta;
    // attribute pack: write dx packed (bf16-storage.ts)
    kernelName,
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const heap = heapOf(backend);
      const { dy, x, mean, invStd, gamma, y } = inputs as Record<
        'dy' | 'x' | 'mean' | 'invStd' | 'gamma' | 'y',
        tf.TensorInfo
      >;
      if (withRelu && !tf.util.arraysEqual(y?.shape ?? [], x.shape))
        throw new Error(`${kernelName}: y must have x's shape [${x.shape}]`);
      const pack = packs(attrs);
      const dx = outputFor(heap, x.shape, pack);
      const dGamma = heap.makeOutput(gamma.shape, 'float32');
      const dBeta = heap.makeOutput(gamma.shape, 'float32');
      const args = [dy, x, mean, invStd, gamma, dx, dGamma, dBeta].map((t) => heap.typedArrayFromHeap(t));
      // dx is the output gradient of the convolution before the BatchNorm: the kernel also sums it per
      // channel, that convolution's bias gradient, as it writes it.
      // (NaN until written: an addon built before this leaves them, and the Sum then computes its own.)
      const sums = new Float32Array(gamma.shape[0]).fill(NaN);
      const yPacked = withRelu ? packedFlag(y, heap) : 0;
      const xPacked = packedFlag(x, heap);
      call(
        ...(args as BatchNormGradArgs),
        ...(withRelu ? [heap.typedArrayFromHeap(y)] : []),
        sums,
        yPacked | (pack ? 2 : 0) | (xPacked << 2),
      );
      if (!sums.some(Number.isNaN)) columnSumsOf.set(dx.dataId, sums);
      return [dx, dGamma, dBeta];
    },
  });
  const kernels = [
    train(BATCH_NORM_TRAIN, addon.batchNormTrain.bind(addon)),
    grad(BATCH_NORM_TRAIN_GRAD, addon.batchNormTrainGrad.bind(addon), false),
    grad(BATCH_NORM_FROZEN_GRAD, addon.batchNormFrozenGrad.bind(addon), false),
  ];
  if (
    !addon.batchNormRelu ||
    !addon.batchNormTrainRelu ||
    !addon.batchNormTrainReluGrad ||
    !addon.batchNormFrozenReluGrad
  )
    return kernels;
  const batchNormRelu = addon.batchNormRelu.bind(addon);
  return [
    ...kernels,
    train(BATCH_NORM_TRAIN_RELU, addon.batchNormTrainRelu.bind(addon)),
    grad(BATCH_NORM_TRAIN_RELU_GRAD, addon.batchNormTrainReluGrad.bind(addon), true),
    grad(BATCH_NORM_FROZEN_RELU_GRAD, addon.batchNormFrozenReluGrad.bind(addon), true),
    {
      kernelName: BATCH_NORM_RELU,
      backendName: 'wasm',
      kernelFunc: ({ inputs, attrs, backend }) =>
        batchNormInference(batchNormRelu, inputs, attrs as unknown as KernelAttrs, heapOf(backend)),
    },
  ];
}

interface Installed {
  addon: NativeAddon;
  description: string;
  native: tf.KernelConfig[];
  /** What each native kernel replaced (undefined: nothing), to switch back. */
  replaced: Map<string, tf.KernelConfig | undefined>;
  enabled: boolean;
}

let installed: Installed | null = null;

function register(configs: Array<tf.KernelConfig | undefined>, names: string[]): void {
  for (const name of names) if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
  for (const config of configs) if (config) tf.registerKernel(config);
}

const guarded = new WeakSet<tf.KernelConfig>();

/**
 * `config` guarded against packed inputs (bf16-storage.ts), once, but for those it takes packed: a native
 * kernel's in TAKES_PACKED, and Identity's, which reads nothing (wasm-kernels.ts' shares the data).
 */
function guard(config: tf.KernelConfig, native = false): tf.KernelConfig {
  if (guarded.has(config)) return config;
  const takes = native ? (TAKES_PACKED[config.kernelName] ?? []) : config.kernelName === 'Identity' ? ['x'] : [];
  const g = guardKernel(config, takes);
  guarded.add(g);
  return g;
}

/**
 * Routes the wasm backend's convolutions (oneDNN), BatchNorm, MaxPoolGrad and ReLU's gradient through the addon with
 * `threads` OpenMP threads. Returns a description ("oneDNN 2.6.3, 2 threads"), or the reason when
 * the addon is not available. Call once wasm is the active backend and wasm-kernels.ts is installed
 * (the kernels replaced become the fallback for inputs the addon does not take).
 */
export function installNativeKernels(threads: number, env = process.env): { description: string } | { reason: string } {
  if (installed) return { description: installed.description };
  const loaded = loadNativeAddon(env);
  if (!('native' in loaded)) return loaded;
  loaded.native.setThreads(threads);
  loaded.native.filterCache?.(FILTER_CACHE_BYTES);
  loaded.native.gradientInputs?.(GRADIENT_INPUT_SLOTS);
  loaded.native.gradientLayout?.('nhwc');
  const expandBf16 = loaded.native.expandBf16?.bind(loaded.native);
  const storage = !!expandBf16 && !!loaded.native.packBf16;
  // With bf16 storage every wasm kernel is guarded against packed inputs, the ones replaced too (they come
  // back with setNativeKernels(false)).
  const native = nativeKernels(loaded.native).map((k) => (storage ? guard(k, true) : k));
  const replaced = new Map(native.map((k) => [k.kernelName, tf.getKernel(k.kernelName, 'wasm')]));
  if (storage) for (const [name, config] of replaced) if (config) replaced.set(name, guard(config));
  register(native, [...replaced.keys()]);
  if (storage) {
    installBf16Storage(tf.findBackend('wasm'), expandBf16);
    const all = tf.getKernelsForBackend('wasm');
    register(
      all.map((k) => guard(k)),
      all.map((k) => k.kernelName),
    );
  }
  // Relu's gradient runs RELU_GRAD while it is registered and tfjs' formula otherwise (relu-gradient.ts).
  if (native.some((k) => k.kernelName === RELU_GRAD)) tf.registerGradient(reluGradConfig);
  installed = { addon: loaded.native, description: loaded.native.describe(), native, replaced, enabled: true };
  return { description: installed.description };
}

/**
 * Switches between the native kernels and the ones they replaced (wasm's own and wasm-kernels.ts),
 * for comparisons in tests and the benchmark. Returns whether native kernels were on before.
 * Without the addon there is nothing to switch: it returns false and changes nothing.
 */
export function setNativeKernels(on: boolean): boolean {
  if (!installed) return false;
  const was = installed.enabled;
  if (on !== was) {
    const names = [...installed.replaced.keys()];
    register(on ? installed.native : [...installed.replaced.values()], names);
    installed.enabled = on;
  }
  return was;
}

/**
 * The native filter cache's state, after setting its capacity when given (0 turns it off; FILTER_CACHE_BYTES
 * is the default); null without the addon, or with one built before the cache existed.
 */
export function nativeFilterCache(capacity?: number): FilterCacheState | null {
  return installed?.addon.filterCache?.(capacity) ?? null;
}

/**
 * The addon's converted backward inputs: sets how many are kept when given (0: off) and returns the
 * state, or null without the native kernels (or with an addon built before it).
 */
export function nativeGradientInputs(slots?: number): GradientInputsState | null {
  return installed?.addon.gradientInputs?.(slots) ?? null;
}

/**
 * The layout the native bf16 convolution gradients read: sets it when given and returns it, or null
 * without the native kernels (or with an addon built before it).
 */
export function nativeGradientLayout(layout?: GradientLayout): GradientLayout | null {
  return installed?.addon.gradientLayout?.(layout) ?? null;
}

/** The addon's description while its kernels are on, else null. */
export function nativeKernelsInUse(): string | null {
  return installed?.enabled ? installed.description : null;
}

/** Whether bf16 can be computed natively now: the native kernels are on and the CPU has bf16 instructions. */
export function nativeBf16Support(): { ok: true } | { ok: false; reason: string } {
  if (!installed) return { ok: false, reason: 'the native kernels are not in use' };
  if (!installed.enabled) return { ok: false, reason: 'the native kernels are switched off' };
  if (testHideNativeBf16() || !installed.addon.bf16Native())
    return { ok: false, reason: 'this CPU has no native bf16 (AVX512_BF16 or AMX)' };
  return { ok: true };
}

/**
 * What the native convolutions and matrix products compute in. 'bf16' throws unless
 * nativeBf16Support() is ok: oneDNN's emulated bf16 is slower than fp32, so it is never used.
 */
export function setNativePrecision(wanted: 'fp32' | 'bf16'): void {
  if (wanted === 'bf16') {
    const support = nativeBf16Support();
    if (!support.ok) throw new Error(`bf16 is not available: ${support.reason}`);
  }
  installed?.addon.setPrecision(wanted);
  precision = wanted;
}

/** The precision the native kernels compute in while they are on; fp32 otherwise. */
export function nativePrecision(): 'fp32' | 'bf16' {
  return installed?.enabled ? precision : 'fp32';
}
