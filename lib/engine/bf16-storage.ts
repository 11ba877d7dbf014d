/**
 * bf16 storage: in bf16, tensors that only bf16 readers read are written as bf16.
 *
 * A bf16 train step converts every convolution's input to bf16 for its forward pass and again for its
 * filter gradient, and every output gradient for its two gradients: oneDNN reorders that read float32
 * and write bf16, a tenth of a ResNet50 step. Two kinds of tensor have only such readers there: the
 * output of a BatchNorm + ReLU inside a bottleneck block (the next convolution reads it, its filter
 * gradient reads it again, the BatchNorm's gradient reads its sign), and a BatchNorm gradient's dx (the
 * gradients of the convolution before it read it, and its bias gradient takes the column sums the
 * BatchNorm kernel wrote). The native kernels write those as bf16 into the first half of the tensor's
 * own float32 buffer ("packed"), converting as oneDNN's reorder would, bit for bit; the readers read
 * them in place. So the conversions, and half of those tensors' memory traffic, go away, and the step
 * computes exactly what it computed before.
 *
 * The other kind changes the arithmetic ("rounding"), as PyTorch's autocast does: every convolution's
 * output, which only the BatchNorm after it reads (twice forward, twice backward), which then normalises
 * bf16 values, its statistics and arithmetic still float32; and a block's output (relu(bn3 + shortcut)),
 * which the next block's convolutions read (converting it anyway) and its residual add, which then adds
 * the bf16 values.
 *
 * A packed tensor is still a float32 tensor to tfjs. This module keeps the set of packed data and
 * guards every other reader: each wasm kernel that is not written for packed inputs, and the backend's
 * reads (dataSync, data, array…), expand a packed tensor back to float32 first (its values then are the
 * bf16 ones). What the native kernels take packed is listed with each of them (native-kernels.ts).
 *
 * A writer that packs gets an output whose wasm buffer is only the packed half (`packedOutput`), so
 * packed tensors take half the heap: that is what lets a batch of 32 train in one pass at 224 px. The
 * readers are handed a float32 view of the tensor's full length, of which they read the first half, so
 * such a buffer is placed only where that view stays inside the heap. Expanding moves the values into
 * a whole float32 buffer.
 */
import * as tf from './tf';

const packed = new WeakSet<object>();
/** Packed data whose buffer is only the packed half (packedOutput). */
const halves = new WeakSet<object>();
let on = true;
let rounding = true;
let expand: ((x: Float32Array) => void) | null = null;
let expansions = 0;
let packings = 0;
let halfSized = 0;

interface WasmHeap {
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
}

/** The parts of tfjs' wasm backend that place a tensor's buffer. */
interface WasmBuffers extends WasmHeap {
  wasm: {
    _malloc(bytes: number): number;
    _free(offset: number): void;
    HEAPU8: Uint8Array;
    tfjs: { registerTensor(id: number, size: number, offset: number): void; disposeData(id: number): void };
  };
  dataIdMap: { get(dataId: object): { id: number; memoryOffset: number; shape: number[] } };
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number): tf.TensorInfo;
}

/** What a writer packs: tensors every reader converted to bf16 anyway (`exact`), or others (`rounding`). */
export type PackedKind = 'exact' | 'rounding';

/**
 * Turns bf16 storage on or off (on by default; it applies only in bf16, with the native kernels), for
 * comparisons in tests and the benchmark; returns whether it was on. `rounding: false` packs only the
 * exact kind, so that a step computes exactly what it computes with float32 storage.
 */
export function setBf16Storage(enabled: boolean, options: { rounding?: boolean } = {}): boolean {
  const was = on;
  on = enabled;
  rounding = options.rounding ?? true;
  return was;
}

/** Whether writers may pack tensors of `kind` now: switched on, and the native addon can expand what they pack. */
export function bf16StorageOn(kind: PackedKind = 'exact'): boolean {
  return on && expand !== null && (kind === 'exact' || rounding);
}

/**
 * How many tensors were written packed so far, how many of those in a buffer of half their float32
 * size, and how many expanded back for a reader (none in a ResNet50 step).
 */
export function bf16StorageCounts(): { packed: number; halfSize: number; expanded: number } {
  return { packed: packings, halfSize: halfSized, expanded: expansions };
}

export function isPacked(t: tf.TensorInfo): boolean {
  return packed.has(t.dataId);
}

/** Records that `t`'s buffer now holds its values as bf16; returns it. */
export function markPacked<T extends tf.TensorInfo>(t: T): T {
  packed.add(t.dataId);
  packings++;
  return t;
}

/**
 * A float32 output of `shape` on the wasm backend, for a writer that writes it packed (it is marked
 * so): its buffer is the packed half only, or a whole float32 buffer where a full-length view of the
 * half would run past the end of the heap.
 */
export function packedOutput(backend: unknown, shape: number[]): tf.TensorInfo {
  const b = backend as WasmBuffers;
  const size = tf.util.sizeFromShape(shape);
  const offset = size > 0 ? b.wasm._malloc(size * 2) >>> 0 : 0;
  if (offset !== 0 && offset + size * 4 <= b.wasm.HEAPU8.buffer.byteLength) {
    const t = b.makeOutput(shape, 'float32', offset);
    halves.add(t.dataId);
    halfSized++;
    return markPacked(t);
  }
  if (offset !== 0) b.wasm._free(offset);
  return markPacked(b.makeOutput(shape, 'float32'));
}

/** Moves half-size data into a whole float32 buffer, its packed half first, where the backend's kernels find it. */
function widen(t: tf.TensorInfo, backend: WasmBuffers): void {
  const data = backend.dataIdMap.get(t.dataId);
  const size = tf.util.sizeFromShape(data.shape);
  const whole = backend.wasm._malloc(size * 4) >>> 0; // may grow the heap: HEAPU8 is read after it
  backend.wasm.HEAPU8.copyWithin(whole, data.memoryOffset, data.memoryOffset + size * 2);
  backend.wasm._free(data.memoryOffset);
  backend.wasm.tfjs.disposeData(data.id);
  data.memoryOffset = whole;
  backend.wasm.tfjs.registerTensor(data.id, size, whole);
  halves.delete(t.dataId);
}

/** Expands `t` back to float32 (in a whole buffer) if it is packed. */
export function unpack(t: tf.TensorInfo | undefined, heap: unknown): void {
  if (!t || !packed.has(t.dataId)) return;
  if (!expand) throw new Error('a packed bf16 tensor without the native addon that packed it');
  if (halves.has(t.dataId)) widen(t, heap as WasmBuffers);
  expand((heap as WasmHeap).typedArrayFromHeap(t));
  packed.delete(t.dataId);
  expansions++;
}

/**
 * `config` with every packed input expanded before it runs, but those named in `takesPacked` (the
 * kernel reads them packed, or expands them itself).
 */
export function guardKernel(config: tf.KernelConfig, takesPacked: readonly string[] = []): tf.KernelConfig {
  const { kernelFunc } = config;
  return {
    ...config,
    kernelFunc: (args) => {
      for (const [name, input] of Object.entries(args.inputs))
        if (!takesPacked.includes(name)) unpack(input, args.backend);
      return kernelFunc(args);
    },
  };
}

interface ReadingBackend {
  readSync(dataId: object, start?: number, end?: number): unknown;
  dataIdMap: { get(dataId: object): { shape: number[] } };
}

/**
 * Guards the wasm backend's reads (its read goes through readSync) and records how to expand (the
 * addon's expandBf16); once. Packed tensors exist only after this.
 */
export function installBf16Storage(backend: tf.KernelBackend, expandBf16: (x: Float32Array) => void): void {
  if (expand) return;
  expand = expandBf16;
  const b = backend as unknown as ReadingBackend;
  const readSync = b.readSync.bind(backend);
  b.readSync = (dataId, start, end) => {
    if (packed.has(dataId)) unpack({ dataId, shape: b.dataIdMap.get(dataId).shape, dtype: 'float32' }, backend);
    return readSync(dataId, start, end);
  };
}
