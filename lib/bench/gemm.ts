/**
 * The machine's matrix-product rate through the native oneDNN kernels: the roofline that the network's
 * achieved GFLOP/s is read against. The product is timed through the addon directly, because in fp32 the
 * engine's own matMul stays on wasm's XNNPACK (native-kernels.ts); the convolutions, which are nearly all
 * of ResNet50's FLOPs, run on oneDNN in both precisions. bf16 includes the conversion of the fp32 inputs
 * to bf16, as the engine's bf16 products do (O(n²) against the product's O(n³)).
 */
import { loadNativeAddon, nativeBf16Support, nativeKernelsInUse } from '../engine';
import { nativePrecision, setNativePrecision } from '../engine/native-kernels';
import { now, secondsSince } from '../util';

/** Deterministic values in [-1, 1): what they are does not change the rate, only that they are not all zero. */
function filled(size: number, seed: number): Float32Array {
  const a = new Float32Array(size);
  let s = seed >>> 0;
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

/**
 * GFLOP/s (2·n³ per product) of an n×n by n×n product in `precision`, the best of `reps` after one
 * warm-up (which creates oneDNN's primitive); or why it cannot be measured.
 */
export function nativeGemmGflops(
  n: number,
  precision: 'fp32' | 'bf16',
  reps = 3,
): { gflops: number } | { reason: string } {
  if (nativeKernelsInUse() === null) return { reason: 'the native kernels are not in use' };
  if (precision === 'bf16') {
    const support = nativeBf16Support();
    if (!support.ok) return { reason: support.reason };
  }
  const loaded = loadNativeAddon();
  if (!('native' in loaded)) return { reason: loaded.reason };
  const addon = loaded.native;
  const [a, b, c] = [filled(n * n, 1), filled(n * n, 2), new Float32Array(n * n)];
  const dims = Int32Array.from([1, 1, n, n, n, 0, 0]);
  const before = nativePrecision();
  setNativePrecision(precision);
  try {
    addon.matMul(dims, a, b, null, c, false);
    let best = Infinity;
    for (let i = 0; i < reps; i++) {
      const t = now();
      addon.matMul(dims, a, b, null, c, false);
      best = Math.min(best, secondsSince(t));
    }
    if (!Number.isFinite(c[0])) throw new Error(`the ${precision} product wrote ${c[0]}`);
    return { gflops: (2 * n ** 3) / best / 1e9 };
  } finally {
    setNativePrecision(before);
  }
}
