/**
 * How many images one ResNet50 training pass holds on the wasm backend.
 *
 * Backprop keeps the pass's activations, and on wasm they live in the module's heap, which is 32-bit:
 * at most 4 GB, and a pass that needs more aborts the process. The heap a train step peaks at grows
 * with the images in the pass and with their pixels, and bf16 storage halves the tensors it packs.
 * Measured on a ResNet50 step (the heap's size after three steps, training BatchNorm, 224 px):
 *
 * | storage                 | batch 8 | batch 16 | batch 32 |
 * | ----------------------- | ------- | -------- | -------- |
 * | float32                 | 1214 MB | 2040 MB  | 3827 MB  |
 * | bf16 (native kernels)   | 909 MB  |          | 2832 MB  |
 *
 * and 2883 MB for 16 images at 320 px in bf16 with BatchNorm frozen, which the model below predicts to
 * the megabyte. The budget leaves half a gigabyte of the 4 GB for what the model does not count: the
 * loader's batches, the head, the allocator's fragmentation.
 */
import * as tf from './tf';

import { bf16StorageOn } from './bf16-storage';
import { nativeKernelsInUse } from './native-kernels';
import { activePrecision } from './precision';

/** The active backend's wasm heap (MB), null on a backend without one. It grows to the largest size needed so far and never shrinks. */
export function wasmHeapMb(): number | null {
  const heap = (tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } }).wasm?.HEAPU8;
  return heap ? heap.buffer.byteLength / 2 ** 20 : null;
}

const HEAP_BUDGET_MB = 3584;
/** Model, optimizer state and workspace: above what the batch-8 measurements leave, so an estimate errs high. */
const BASE_MB = 350;
/** Per image at 224 px, from the slopes of the table above, rounded up. */
const PER_IMAGE_MB = { float32: 112, bf16: 81 };
/** Without the native kernels: wasm's own kernels, measured only at this size. */
const WITHOUT_NATIVE = 8;

/**
 * The heap (MB) a ResNet50 training pass of `images` at `inputSize` px is estimated to peak at, with the
 * engine as it is set now (its precision and bf16 storage; null without the native kernels, which were
 * measured only at batch 8).
 */
export function wasmTrainingPassMb(inputSize: number, images: number): number | null {
  if (nativeKernelsInUse() === null) return null;
  const perImage = activePrecision() === 'bf16' && bf16StorageOn('rounding') ? PER_IMAGE_MB.bf16 : PER_IMAGE_MB.float32;
  return BASE_MB + images * perImage * (inputSize / 224) ** 2;
}

/** The most images a ResNet50 training pass at `inputSize` px holds in the wasm heap with the engine as it is set now. */
export function wasmTrainingPassLimit(inputSize: number): number {
  const one = wasmTrainingPassMb(inputSize, 1);
  if (one === null) return WITHOUT_NATIVE;
  return Math.max(1, Math.floor((HEAP_BUDGET_MB - BASE_MB) / (one - BASE_MB)));
}
