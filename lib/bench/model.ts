/**
 * Model benchmarks: ResNet50 forward throughput at several batch sizes, the head's training step on
 * cached features, and forward and train step at batch 8 in fp32 and bf16, rep by rep in turn with
 * partners (PyTorch's session, torch-session.ts; the GEMM, gemm.ts); then the checks and ratios of
 * PyTorch's results.
 */
import * as tf from '../engine/tf';

import { BoatModel, createBoatModel, nllLoss } from '../model';
import {
  addReluFused,
  batchNormReluFused,
  bf16StorageOn,
  FILTER_CACHE_BYTES,
  fineTuneSupport,
  GRADIENT_INPUT_SLOTS,
  nativeBf16Support,
  nativeFilterCache,
  nativeGradientInputs,
  nativeGradientLayout,
  momentumOptimizer,
  selectBackend,
  setAddReluFusion,
  setBatchNormReluFusion,
  setBf16Storage,
  setNativeKernels,
  setSummedGradients,
  summedGradientsOn,
  wasmHeapMb,
} from '../engine';
import { BatchSource, disposeOptimizer, fineTunePasses, TrainBatch, trainModel } from '../train';
import { now, peakRssMb, secondsSince } from '../util';
import { forwardFlopsPerExample } from './flops';

export interface ModelBenchResult {
  /** Forward img/s by batch size (batch 8: the median of the paired reps). */
  forward: Record<number, number>;
  /** FLOPs of one image's forward pass at 224 px, from the layer shapes (flops.ts). */
  forwardFlopsPerImage: number;
  /** The paired reps at batch 8 behind forward[8], trainImgS8 and bf16 (bf16 null without native bf16). */
  paired: { rounds: number; fp32: PairedRates; bf16: PairedRates | null };
  /**
   * Milliseconds of the first fp32 forward pass after the train steps changed the weights (BatchNorm
   * folded again, inference's filter copies made), median of the rounds. It runs untimed before the
   * timed one: inference on fixed weights pays it once (a training epoch's val pass, at its first batch).
   * Null when no train step ran.
   */
  firstForwardMs: number | null;
  /**
   * Forward at batch 8 folded and unfolded (foldBatchNorm off), one pass of each in turn so that both see
   * the same load; null where folding does not apply.
   */
  folding: { foldedImgS8: number; unfoldedImgS8: number } | null;
  /**
   * Forward at batch 8 with the native filter cache (inference's filters reordered once) and without it
   * (reordered at every call), one pass of each in turn; null without an addon that has it.
   */
  filterCache: { cachedImgS8: number; reorderedImgS8: number } | null;
  /**
   * bf16 train step at batch 8 with the backward pass's converted inputs kept (nativeGradientInputs) and
   * converted at every call, one step of each in turn; null without native bf16, training or an addon
   * that has it.
   */
  gradientInputs: { keptImgS8: number; convertedImgS8: number } | null;
  /**
   * bf16 train step at batch 8 with each BatchNorm and the ReLU after it in one kernel (batchnorm.ts) and
   * in two, one step of each in turn; null without native bf16, training or the fused kernels.
   */
  batchNormRelu: { fusedImgS8: number; separateImgS8: number } | null;
  /** The same for each residual add and the ReLU after it (add-relu.ts). */
  addRelu: { fusedImgS8: number; separateImgS8: number } | null;
  /** The same with a block output's two gradients summed inside its ReLU's gradient (lean-backprop.ts) and by an Add. */
  gradientSums: { fusedImgS8: number; separateImgS8: number } | null;
  /** The same with bf16 storage (bf16-storage.ts) on and off. */
  bf16Storage: { packedImgS8: number; unpackedImgS8: number } | null;
  /**
   * bf16 train step at batch 8 with the convolution gradients on NHWC (nativeGradientLayout) and on
   * oneDNN's blocked layouts, one step of each in turn; null without native bf16, training or the switch.
   */
  gradientLayouts: { nhwcImgS8: number; blockedImgS8: number } | null;
  headStepMs: number;
  /** Train step img/s at batch 8 (the median of the paired reps), or null with the reason when the backend cannot train convolutions. */
  trainImgS8: number | null;
  trainSkipped?: string;
  /** Peak RSS (MB) after the forward passes (what feature extraction needs) and after training steps. */
  peakRssForwardMb: number;
  peakRssTrainMb: number | null;
  /**
   * The tutorial's batch 128 through the trainer, in passes as a fine-tune plans them (train/micro-batches.ts):
   * seconds per step, peak RSS, the wasm heap's size after it, the passes and their size.
   */
  accumulated128?: { seconds: number; peakRssMb: number; heapMb: number | null; passes: number; passSize: number };
  /** With native kernels in use: forward and train step at batch 8 with wasm's kernels alone, in the same run. */
  wasmOnly?: { forwardImgS8: number; trainImgS8: number | null };
  /** Forward and train step at batch 8 in bf16 precision, medians of the paired reps; or why not (no native bf16). */
  bf16: { forwardImgS8: number; trainImgS8: number | null } | { reason: string };
}

/** `batchCount` batches of `batchSize` random 224 px images (with labels of 5 classes). */
class RandomImages implements BatchSource {
  constructor(
    readonly batchCount: number,
    readonly batchSize = 8,
  ) {}

  get size(): number {
    return this.batchCount * this.batchSize;
  }

  async *batches(): AsyncGenerator<TrainBatch> {
    for (let i = 0; i < this.batchCount; i++) {
      yield {
        x: tf.randomNormal([this.batchSize, 224, 224, 3], 0, 50),
        y: tf.tensor1d(
          Array.from({ length: this.batchSize }, (_, j) => (i + j) % 5),
          'int32',
        ),
      };
    }
  }
}

/** Forward img/s at batch `b`, after one warm-up pass (kernels compiled, weights uploaded). */
async function timeForward(model: BoatModel, b: number, reps: number): Promise<number> {
  const x = tf.randomNormal<tf.Rank.R4>([b, 224, 224, 3], 0, 50, 'float32', 1);
  tf.dispose(model.forward(x));
  const t = now();
  for (let i = 0; i < reps; i++) {
    const out = model.forward(x);
    await out.data();
    out.dispose();
  }
  x.dispose();
  return (b * reps) / secondsSince(t);
}

/** Seconds of one forward pass of `x`, its output read back. */
async function passSeconds(model: BoatModel, x: tf.Tensor4D): Promise<number> {
  const t = now();
  const out = model.forward(x);
  await out.data();
  out.dispose();
  return secondsSince(t);
}

/**
 * A setting on and off, one measurement of each in turn (so that both see the same load), after a first
 * round that is not counted: each rep's measurements. `restore` puts the setting back afterwards.
 */
async function takeTurns(
  reps: number,
  set: (on: boolean) => void,
  measure: () => number | Promise<number>,
  restore: () => void,
): Promise<{ on: number[]; off: number[] }> {
  const values = { on: [] as number[], off: [] as number[] };
  try {
    for (let i = 0; i <= reps; i++) {
      for (const on of [true, false]) {
        set(on);
        const v = await measure();
        if (i > 0) values[on ? 'on' : 'off'].push(v);
      }
    }
  } finally {
    restore();
  }
  return values;
}

/** Forward img/s at batch 8 with a setting on and off, taking turns. */
async function forwardOnOff(
  model: BoatModel,
  reps: number,
  set: (on: boolean, x: tf.Tensor4D) => void,
  restore: () => void,
): Promise<{ on: number; off: number }> {
  const x = tf.randomNormal<tf.Rank.R4>([8, 224, 224, 3], 0, 50, 'float32', 1);
  try {
    const seconds = await takeTurns(
      reps,
      (on) => set(on, x),
      () => passSeconds(model, x),
      restore,
    );
    const sum = (v: number[]): number => v.reduce((a, b) => a + b, 0);
    return { on: (8 * reps) / sum(seconds.on), off: (8 * reps) / sum(seconds.off) };
  } finally {
    x.dispose();
  }
}

/** Folded and unfolded forward img/s at batch 8, taking turns. */
async function compareFolding(model: BoatModel, reps: number): Promise<{ foldedImgS8: number; unfoldedImgS8: number }> {
  const r = await forwardOnOff(
    model,
    reps,
    (on) => (model.foldBatchNorm = on),
    () => (model.foldBatchNorm = true),
  );
  return { foldedImgS8: r.on, unfoldedImgS8: r.off };
}

/** Forward img/s at batch 8 with the filter cache on and off, taking turns; null without it. */
async function compareFilterCache(
  model: BoatModel,
  reps: number,
): Promise<{ cachedImgS8: number; reorderedImgS8: number } | null> {
  if (nativeFilterCache() === null) return null;
  const r = await forwardOnOff(
    model,
    reps,
    (on, x) => {
      // Off frees every copy; on again starts empty, so an untimed pass fills it first.
      nativeFilterCache(on ? FILTER_CACHE_BYTES : 0);
      if (on) tf.dispose(model.forward(x));
    },
    () => nativeFilterCache(FILTER_CACHE_BYTES),
  );
  return { cachedImgS8: r.on, reorderedImgS8: r.off };
}

/**
 * bf16 train step img/s at batch 8 with a setting on and off, one step of each in turn after a first round
 * that is not counted (medians); null without native bf16 or training.
 */
async function bf16TrainOnOff(
  model: BoatModel,
  rounds: number,
  set: (on: boolean) => void,
  restore: () => void,
): Promise<{ on: number; off: number } | null> {
  if (!nativeBf16Support().ok || !fineTuneSupport().ok) return null;
  const before = (await selectBackend()).precision;
  await selectBackend(undefined, 'bf16');
  const stepper = trainStepper(model);
  try {
    const rates = await takeTurns(rounds, set, () => stepper.step(), restore);
    return { on: median(rates.on), off: median(rates.off) };
  } finally {
    stepper.dispose();
    await selectBackend(undefined, before);
  }
}

/** The same with the converted backward inputs kept and not; null also without an addon that has them. */
async function compareGradientInputs(
  model: BoatModel,
  rounds: number,
): Promise<{ keptImgS8: number; convertedImgS8: number } | null> {
  if (nativeGradientInputs() === null) return null;
  const r = await bf16TrainOnOff(
    model,
    rounds,
    (kept) => nativeGradientInputs(kept ? GRADIENT_INPUT_SLOTS : 0),
    () => nativeGradientInputs(GRADIENT_INPUT_SLOTS),
  );
  return r && { keptImgS8: r.on, convertedImgS8: r.off };
}

/** The same with bf16's convolution gradients on NHWC and on oneDNN's blocked layouts; null without the switch. */
async function compareGradientLayouts(
  model: BoatModel,
  rounds: number,
): Promise<{ nhwcImgS8: number; blockedImgS8: number } | null> {
  if (nativeGradientLayout() === null) return null;
  const r = await bf16TrainOnOff(
    model,
    rounds,
    (nhwc) => nativeGradientLayout(nhwc ? 'nhwc' : 'blocked'),
    () => nativeGradientLayout('nhwc'),
  );
  return r && { nhwcImgS8: r.on, blockedImgS8: r.off };
}

/**
 * The same with a fusion (`fused`: whether the backend has it; `set` turns it on or off) on and off: the
 * BatchNorm + ReLU, the residual add + ReLU, the summed gradients; null where it cannot be fused.
 */
async function compareFusion(
  model: BoatModel,
  rounds: number,
  fused: () => boolean,
  set: (on: boolean) => boolean,
): Promise<{ fusedImgS8: number; separateImgS8: number } | null> {
  if (!fused()) return null;
  const r = await bf16TrainOnOff(model, rounds, set, () => set(true));
  return r && { fusedImgS8: r.on, separateImgS8: r.off };
}

/**
 * Fine-tune steps (forward, backward, SGD with momentum) on a fixed random batch, labels cycling through
 * the classes: the step the bench times, the profile profiles and the bench/ scripts compare.
 */
export function fineTuneStepper(model: BoatModel, batch = 8, size = 224): { step(): void; dispose(): void } {
  model.mode = 'finetune';
  const x = tf.randomNormal<tf.Rank.R4>([batch, size, size, 3], 0, 50, 'float32', 1);
  const y = tf.tensor1d(
    Array.from({ length: batch }, (_, i) => i % model.classes.length),
    'int32',
  );
  const optimizer = momentumOptimizer(0.001, 0.9);
  return {
    step: () =>
      tf.dispose(
        optimizer.minimize(() => nllLoss(model.forward(x, true), y), true, model.trainableVariables()) ?? undefined,
      ),
    dispose: () => {
      tf.dispose([x, y]);
      disposeOptimizer(optimizer);
    },
  };
}

/** Fine-tune steps at batch 8; step() returns its img/s. */
function trainStepper(model: BoatModel): { step(): number; dispose(): void } {
  const stepper = fineTuneStepper(model);
  return {
    step: () => {
      const t = now();
      stepper.step();
      return 8 / secondsSince(t);
    },
    dispose: () => stepper.dispose(),
  };
}

/** Train step img/s at batch 8 over `reps` steps, after one warm-up step. */
function timeTrainStep(model: BoatModel, reps: number): number {
  const stepper = trainStepper(model);
  stepper.step();
  const t = now();
  for (let i = 0; i < reps; i++) stepper.step();
  const imgS = (8 * reps) / secondsSince(t);
  stepper.dispose();
  return imgS;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of nothing');
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** What takes turns with our reps at batch 8 (PyTorch's session in `boat bench`). */
export interface RepPartner {
  warmUp(): Promise<void>;
  rep(what: 'forward' | 'train'): Promise<void>;
}

export interface PairedRates {
  /** img/s of each rep, in the order measured. */
  forward: number[];
  train: number[];
}

/** The paired reps' rates, and the first passes after train steps, timed apart from the forward passes. */
interface PairedResult {
  rates: Record<'fp32' | 'bf16', PairedRates>;
  firstForwardMs: number[];
}

/**
 * Forward and train step at batch 8 in each precision, rep by rep in turn with the partners: after a
 * warm-up of each, every round is ours fp32, ours bf16, each partner's forward; then the same for the
 * train step. Nobody's reps get a quieter stretch of a shared machine than the others'.
 */
async function pairedReps(
  model: BoatModel,
  precisions: Array<'fp32' | 'bf16'>,
  train: boolean,
  rounds: number,
  partners: RepPartner[],
): Promise<PairedResult> {
  const x = tf.randomNormal<tf.Rank.R4>([8, 224, 224, 3], 0, 50, 'float32', 1);
  const firstForwardMs: number[] = [];
  // The precisions whose forward pass has not run since the last train steps changed the weights.
  const changed = new Set<'fp32' | 'bf16'>();
  const pass = (): Promise<number> => passSeconds(model, x);
  // The forward figures are inference on fixed weights, as evaluation and feature extraction run it.
  // After a change of weights ours folds BatchNorm again and copies each filter once (PyTorch's eval
  // forward does neither, and has nothing to redo): that first pass runs untimed, its time kept apart.
  const forward = async (p: 'fp32' | 'bf16'): Promise<number> => {
    if (changed.delete(p)) {
      const seconds = await pass();
      if (p === 'fp32') firstForwardMs.push(1000 * seconds);
    }
    return 8 / (await pass());
  };
  const stepper = train ? trainStepper(model) : null;
  const before = (await selectBackend()).precision;
  const rates = { fp32: { forward: [], train: [] }, bf16: { forward: [], train: [] } } as Record<
    'fp32' | 'bf16',
    PairedRates
  >;
  try {
    for (const p of precisions) {
      await selectBackend(undefined, p);
      await forward(p);
      stepper?.step();
    }
    // The warm-up's steps changed the weights too.
    if (stepper) for (const p of precisions) changed.add(p);
    for (const partner of partners) await partner.warmUp();
    for (let r = 0; r < rounds; r++) {
      for (const p of precisions) {
        await selectBackend(undefined, p);
        rates[p].forward.push(await forward(p));
      }
      for (const partner of partners) await partner.rep('forward');
      for (const p of precisions) {
        await selectBackend(undefined, p);
        if (stepper) {
          rates[p].train.push(stepper.step());
          for (const q of precisions) changed.add(q);
        }
      }
      for (const partner of partners) await partner.rep('train');
    }
  } finally {
    await selectBackend(undefined, before);
    x.dispose();
    stepper?.dispose();
  }
  return { rates, firstForwardMs };
}

export interface BenchModelOptions {
  /** Batch sizes of the forward passes; batch 8 is measured in the paired reps. */
  batches: number[];
  /** Reps of the forward passes at the other batch sizes. */
  reps: number;
  /** Rounds of paired reps at batch 8 (each figure there is their median). */
  rounds: number;
  accumulated128?: boolean;
  /** Taking turns with ours, in this order, within each round. */
  partners?: RepPartner[];
}

export async function benchModel(options: BenchModelOptions): Promise<ModelBenchResult> {
  const { batches, reps, rounds, partners = [] } = options;
  const model = await createBoatModel({ classes: ['a', 'b', 'c', 'd', 'e'], mode: 'finetune' });
  const forwardFlopsPerImage = forwardFlopsPerExample(model.backbone) + forwardFlopsPerExample(model.head);
  const forward: Record<number, number> = {};
  for (const b of batches) if (b !== 8) forward[b] = await timeForward(model, b, reps);
  // Also batch 8 once before the peak, so that it covers every forward batch size.
  if (batches.includes(8)) await timeForward(model, 8, 1);
  const folding = model.folding ? await compareFolding(model, reps) : null;
  const filterCache = await compareFilterCache(model, reps);
  const peakRssForwardMb = peakRssMb();
  // Head step: batch 32 of cached 2048-d features, SGD with momentum.
  model.mode = 'feature-extractor';
  const f = tf.randomNormal<tf.Rank.R2>([32, 2048]);
  const y = tf.tensor1d(
    Array.from({ length: 32 }, (_, i) => i % 5),
    'int32',
  );
  const opt = momentumOptimizer(0.001, 0.9);
  const stepHead = (): void =>
    tf.dispose(
      opt.minimize(() => nllLoss(model.forwardHead(f, true), y), true, model.trainableVariables()) ?? undefined,
    );
  stepHead();
  const t = now();
  for (let i = 0; i < 20; i++) stepHead();
  const headStepMs = (1000 * secondsSince(t)) / 20;
  tf.dispose([f, y]);
  disposeOptimizer(opt);
  model.mode = 'finetune';

  const support = fineTuneSupport();
  const bf16Support = nativeBf16Support();
  const { rates: paired, firstForwardMs } = await pairedReps(
    model,
    bf16Support.ok ? ['fp32', 'bf16'] : ['fp32'],
    support.ok,
    rounds,
    partners,
  );
  const medianOrNull = (v: number[]): number | null => (v.length ? median(v) : null);
  forward[8] = median(paired.fp32.forward);
  const trainImgS8 = medianOrNull(paired.fp32.train);
  const bf16: ModelBenchResult['bf16'] = bf16Support.ok
    ? { forwardImgS8: median(paired.bf16.forward), trainImgS8: medianOrNull(paired.bf16.train) }
    : { reason: bf16Support.reason };
  const gradientInputs = await compareGradientInputs(model, rounds);
  const batchNormRelu = await compareFusion(model, rounds, batchNormReluFused, setBatchNormReluFusion);
  const addRelu = await compareFusion(model, rounds, addReluFused, setAddReluFusion);
  const gradientSums = await compareFusion(
    model,
    rounds,
    () => addReluFused() && summedGradientsOn(),
    setSummedGradients,
  );
  const storage = await compareFusion(model, rounds, bf16StorageOn, setBf16Storage);
  const gradientLayouts = await compareGradientLayouts(model, rounds);
  const peakRssTrainMb = support.ok ? peakRssMb() : null;
  let accumulated: ModelBenchResult['accumulated128'];
  if (support.ok && options.accumulated128) {
    const plan = fineTunePasses(128, undefined, tf.getBackend(), 224, false);
    const passes = plan.accumulate ?? 1;
    const run = await trainModel(
      model,
      { train: new RandomImages(passes, plan.size), val: new RandomImages(1) },
      { epochs: 1, accumulate: plan.accumulate },
    );
    accumulated = {
      seconds: run.history[0].seconds,
      peakRssMb: peakRssMb(),
      heapMb: wasmHeapMb(),
      passes,
      passSize: plan.size,
    };
  }
  let wasmOnly: ModelBenchResult['wasmOnly'];
  if (setNativeKernels(false)) {
    try {
      // One rep each: wasm alone is several times slower, and this is context, not a target.
      wasmOnly = {
        forwardImgS8: await timeForward(model, 8, 1),
        trainImgS8: support.ok ? timeTrainStep(model, 1) : null,
      };
    } finally {
      setNativeKernels(true);
    }
  }
  model.dispose();
  return {
    forward: Object.fromEntries(batches.map((b) => [b, forward[b]])),
    forwardFlopsPerImage,
    paired: { rounds, fp32: paired.fp32, bf16: bf16Support.ok ? paired.bf16 : null },
    firstForwardMs: medianOrNull(firstForwardMs),
    folding,
    filterCache,
    gradientInputs,
    batchNormRelu,
    addRelu,
    gradientSums,
    bf16Storage: storage && { packedImgS8: storage.fusedImgS8, unpackedImgS8: storage.separateImgS8 },
    gradientLayouts,
    headStepMs,
    trainImgS8,
    trainSkipped: support.ok ? undefined : support.reason,
    peakRssForwardMb,
    peakRssTrainMb,
    accumulated128: accumulated,
    wasmOnly,
    bf16,
  };
}

export interface TorchRates {
  forward_img_s: number;
  train_img_s: number;
}

export interface TorchBenchResult extends TorchRates {
  torch_version: string;
  /** 2 × the multiply-adds of its convolutions and linear layers per image (torchvision's ResNet50 is v1.5). */
  forward_flops_per_image?: number;
  threads: number;
  batch: number;
  params: number;
  /** fp32 NCHW (PyTorch's default; also the top-level rates), fp32 channels_last, bf16 autocast + channels_last. */
  configs: { nchw: TorchRates; channels_last: TorchRates; bf16_channels_last: TorchRates };
}

/** The script's JSON line, checked: a missing or non-numeric rate is an error, not a NaN ratio. */
export function parseTorchResult(line: string): TorchBenchResult {
  return checkTorchResult(JSON.parse(line));
}

export function checkTorchResult(result: unknown): TorchBenchResult {
  const r = result as TorchBenchResult;
  const rates = (t: TorchRates | undefined, name: string): void => {
    for (const k of ['forward_img_s', 'train_img_s'] as const)
      if (typeof t?.[k] !== 'number' || !(t[k] > 0)) throw new Error(`PyTorch result lacks ${name}.${k}`);
  };
  rates(r, 'the top level');
  for (const name of ['nchw', 'channels_last', 'bf16_channels_last'] as const) rates(r.configs?.[name], name);
  return r;
}

/** Ours ÷ PyTorch, in the bench JSON's keys (the fp32 NCHW ones as before). */
export function torchComparisonKeys(
  ours: { forward: number; train: number | null; forwardBf16: number | null; trainBf16: number | null },
  torch: TorchBenchResult,
): Record<string, number | string | null> {
  const per = (a: number | null, b: number): number | null => (a === null ? null : a / b);
  const { nchw, channels_last: cl, bf16_channels_last: bf16 } = torch.configs;
  return {
    torch_version: torch.torch_version,
    torch_params: torch.params,
    torch_forward_img_s_b8: nchw.forward_img_s,
    torch_train_img_s_b8: nchw.train_img_s,
    forward_ratio_b8: per(ours.forward, nchw.forward_img_s),
    train_ratio_b8: per(ours.train, nchw.train_img_s),
    torch_cl_forward_img_s_b8: cl.forward_img_s,
    torch_cl_train_img_s_b8: cl.train_img_s,
    forward_ratio_cl_b8: per(ours.forward, cl.forward_img_s),
    train_ratio_cl_b8: per(ours.train, cl.train_img_s),
    torch_bf16_forward_img_s_b8: bf16.forward_img_s,
    torch_bf16_train_img_s_b8: bf16.train_img_s,
    forward_ratio_bf16_b8: per(ours.forwardBf16, bf16.forward_img_s),
    train_ratio_bf16_b8: per(ours.trainBf16, bf16.train_img_s),
  };
}
