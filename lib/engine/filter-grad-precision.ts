/**
 * Which precision a convolution's filter gradient runs in while the native kernels compute in bf16.
 *
 * oneDNN 2.6.3's bf16 backward-weights kernel for filters larger than 1×1 (`jit_bf16:avx512_core_bf16`)
 * is slower than its fp32 one on small outputs: in a ResNet50 train step at batch 8, 1.8–2.1× fp32's
 * time on the 3×3 layers at 14×14 and 7×7, while at 28×28 and up, and for every 1×1 layer, bf16 is
 * the faster (bench/filter-grad-precision.js, timing each geometry's gradient in both precisions, and
 * oneDNN's own times in `boat bench --profile`; docs/engine.md, "Where a train step's time goes").
 * The rule is fixed, not tuned at run time, so that every run computes the same thing.
 */

/** Outputs of at least this many pixels (height × width) take bf16's filter gradient: ResNet50's 28×28 and larger. */
export const BF16_FILTER_GRAD_MIN_OUTPUT_PIXELS = 28 * 28;

/** The part of a convolution's geometry the rule reads (tfjs' Conv2DInfo has it). */
export interface FilterGradGeometry {
  filterHeight: number;
  filterWidth: number;
  outHeight: number;
  outWidth: number;
}

/** The precision of this convolution's filter gradient when the rest of the step computes in bf16. */
export function filterGradientPrecision(g: FilterGradGeometry): 'fp32' | 'bf16' {
  const spatialFilter = g.filterHeight * g.filterWidth > 1;
  return spatialFilter && g.outHeight * g.outWidth < BF16_FILTER_GRAD_MIN_OUTPUT_PIXELS ? 'fp32' : 'bf16';
}
