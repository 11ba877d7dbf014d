/**
 * How a fine-tune's batch runs: in one pass where it fits, else as accumulated micro-batches.
 *
 * On wasm a training pass must fit the 4 GB heap (lib/engine/wasm-heap.ts), so a batch larger than a pass
 * holds is split into micro-batches whose gradients add up to the batch's. With BatchNorm frozen that is
 * exact; in training mode each micro-batch normalises with its own statistics, so the plan takes the
 * largest micro-batches that fit, and equal ones where it can.
 */
import { wasmTrainingPassLimit } from '../engine';

export interface PassPlan {
  /** Images per pass (the loader's batch size). */
  size: number;
  /** Passes accumulated into one step; undefined for one pass. */
  accumulate?: number;
  /** Why the batch is split, for the log; absent when it is not. */
  note?: string;
}

/**
 * `batchSize` as passes of at most `limit` images: one pass if it fits; else the largest divisor of the
 * batch that fits, so the micro-batches are equal, unless that is under half the limit (a prime batch),
 * then the fewest passes of nearly equal size.
 */
export function splitBatch(batchSize: number, limit: number): { size: number; accumulate?: number } {
  if (batchSize <= limit) return { size: batchSize };
  let divisor = 1;
  for (let d = Math.min(limit, batchSize); d > 1; d--)
    if (batchSize % d === 0) {
      divisor = d;
      break;
    }
  if (divisor * 2 >= limit) return { size: divisor, accumulate: batchSize / divisor };
  const k = Math.ceil(batchSize / limit);
  return { size: Math.ceil(batchSize / k), accumulate: k };
}

/**
 * The passes of a fine-tune at `batchSize` on `backend` at `inputSize` px. An `accumulate` the user gave is
 * kept as it is; only wasm is limited by its heap.
 */
export function fineTunePasses(
  batchSize: number,
  accumulate: number | undefined,
  backend: string,
  inputSize: number,
  batchNormFrozen: boolean,
): PassPlan {
  if (accumulate !== undefined || backend !== 'wasm')
    return { size: accumulate ? Math.ceil(batchSize / accumulate) : batchSize, accumulate };
  const limit = wasmTrainingPassLimit(inputSize);
  const plan = splitBatch(batchSize, limit);
  if (plan.accumulate === undefined) return plan;
  const statistics = batchNormFrozen
    ? 'with BatchNorm frozen that is exact'
    : `BatchNorm sees the statistics of ${plan.size} images`;
  return {
    ...plan,
    note: `batch ${batchSize} runs as ${plan.accumulate} accumulated micro-batches of up to ${plan.size} (a ${inputSize} px training pass of more than ${limit} images would not fit the wasm engine's 4 GB heap); ${statistics}`,
  };
}
