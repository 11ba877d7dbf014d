/**
 * How far the network runs from the machine's matrix-product rate: achieved GFLOP/s of ResNet50's
 * forward pass and train step, and their shares of the native GEMM's GFLOP/s, in the bench JSON's keys.
 */

/**
 * A train step counted as 3 forward passes: the backward pass computes, for each convolution and dense
 * layer, the gradient of its input and of its weights, each as many multiply-adds as the forward product.
 * (The first convolution's input gradient is not needed, and BatchNorm and the optimizer are not counted,
 * so the true figure is a little under 3.)
 */
export const TRAIN_STEP_FORWARDS = 3;

export interface RooflineInputs {
  /** FLOPs of one image's forward pass (flops.ts). */
  forwardFlopsPerImage: number;
  gemmFp32: number | null;
  gemmBf16: number | null;
  /** img/s at batch 8; null where not measured. */
  forward: number | null;
  train: number | null;
  forwardBf16: number | null;
  trainBf16: number | null;
}

export function rooflineKeys(r: RooflineInputs): Record<string, number | null> {
  const gflops = (imgS: number | null, forwards: number): number | null =>
    imgS === null ? null : (imgS * forwards * r.forwardFlopsPerImage) / 1e9;
  const share = (achieved: number | null, gemm: number | null): number | null =>
    achieved === null || gemm === null ? null : achieved / gemm;
  const forward = gflops(r.forward, 1);
  const train = gflops(r.train, TRAIN_STEP_FORWARDS);
  const forwardBf16 = gflops(r.forwardBf16, 1);
  const trainBf16 = gflops(r.trainBf16, TRAIN_STEP_FORWARDS);
  return {
    gemm_fp32_gflops: r.gemmFp32,
    gemm_bf16_gflops: r.gemmBf16,
    forward_gflop_per_image: r.forwardFlopsPerImage / 1e9,
    train_step_forwards: TRAIN_STEP_FORWARDS,
    forward_gflops_b8: forward,
    train_gflops_b8: train,
    forward_bf16_gflops_b8: forwardBf16,
    train_bf16_gflops_b8: trainBf16,
    forward_share_of_gemm_fp32: share(forward, r.gemmFp32),
    train_share_of_gemm_fp32: share(train, r.gemmFp32),
    forward_bf16_share_of_gemm_bf16: share(forwardBf16, r.gemmBf16),
    train_bf16_share_of_gemm_bf16: share(trainBf16, r.gemmBf16),
  };
}
