/**
 * The machine's matrix-product rate through the native oneDNN kernels: the roofline that the network's
 * achieved GFLOP/s is read against. The product is timed through the addon directly, because in fp32 the
 * engine's own matMul stays on wasm's XNNPACK (native-kernels.ts); the convolutions, which are nearly all
 * of ResNet50's FLOPs, run on oneDNN in both precisions. bf16 includes the conversion of the fp32 inputs
 * to bf16, as the engine's bf16 products do (O(n²) against the product's O(n³)).
 */
import { loadNativeAddon, nativeBf16Support, nativeKernelsInUse } from '../engine';
import { NativeAddon, nativePrecision, setNativePrecision } from '../engine/native-kernels';
import type { RepPartner } from './model';
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

export type GemmRate = { gflops: number; samples: number } | { reason: string };

/**
 * An n×n by n×n product in each precision the machine computes natively, sampled again and again;
 * its rate is the best sample, the machine's limit. As a RepPartner it takes a sample of each precision
 * with every paired round, so that the limit is measured under the same load as the network.
 */
export class NativeGemm implements RepPartner {
  private readonly addon: NativeAddon | null;
  private readonly why: Record<'fp32' | 'bf16', string | null>;
  private readonly buffers: { a: Float32Array; b: Float32Array; c: Float32Array } | null;
  private readonly best = { fp32: Infinity, bf16: Infinity };
  private readonly count = { fp32: 0, bf16: 0 };

  constructor(readonly n: number) {
    const loaded = nativeKernelsInUse() === null ? { reason: 'the native kernels are not in use' } : loadNativeAddon();
    this.addon = 'native' in loaded ? loaded.native : null;
    const off = 'reason' in loaded ? loaded.reason : null;
    const bf16 = nativeBf16Support();
    this.why = { fp32: off, bf16: off ?? (bf16.ok ? null : bf16.reason) };
    this.buffers = this.addon ? { a: filled(n * n, 1), b: filled(n * n, 2), c: new Float32Array(n * n) } : null;
  }

  /** Seconds of one product in `precision`; null where it is not measured. */
  private product(precision: 'fp32' | 'bf16'): number | null {
    if (!this.addon || !this.buffers || this.why[precision] !== null) return null;
    const { a, b, c } = this.buffers;
    const before = nativePrecision();
    setNativePrecision(precision);
    try {
      const t = now();
      this.addon.matMul(Int32Array.from([1, 1, this.n, this.n, this.n, 0, 0]), a, b, null, c, false);
      const seconds = secondsSince(t);
      if (!Number.isFinite(c[0])) throw new Error(`the ${precision} product wrote ${c[0]}`);
      return seconds;
    } finally {
      setNativePrecision(before);
    }
  }

  /** One product in each precision, not counted: oneDNN creates its primitives on first use. */
  warmUp(): Promise<void> {
    this.product('fp32');
    this.product('bf16');
    return Promise.resolve();
  }

  /** One counted product in each precision. */
  sample(): void {
    for (const p of ['fp32', 'bf16'] as const) {
      const s = this.product(p);
      if (s === null) continue;
      this.best[p] = Math.min(this.best[p], s);
      this.count[p]++;
    }
  }

  rep(): Promise<void> {
    this.sample();
    return Promise.resolve();
  }

  /** GFLOP/s (2·n³ per product) of the best sample so far; or why it is not measured. */
  rate(precision: 'fp32' | 'bf16'): GemmRate {
    const why = this.why[precision];
    if (why !== null) return { reason: why };
    if (this.count[precision] === 0) return { reason: 'no sample taken' };
    return { gflops: (2 * this.n ** 3) / this.best[precision] / 1e9, samples: this.count[precision] };
  }
}

/** The GFLOP/s of an n×n by n×n product in `precision`: the best of `reps` after a warm-up. */
export function nativeGemmGflops(n: number, precision: 'fp32' | 'bf16', reps = 3): GemmRate {
  const gemm = new NativeGemm(n);
  void gemm.warmUp();
  for (let i = 0; i < reps; i++) gemm.sample();
  return gemm.rate(precision);
}
