/**
 * Model benchmarks: ResNet50 forward throughput at several batch sizes, the head's training step on
 * cached features, and the same forward/train measurements in PyTorch (Debian's) when it is installed.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../engine/tf';

import { BoatModel, createBoatModel, nllLoss } from '../model';
import { fineTuneSupport, nativeBf16Support, selectBackend, setNativeKernels } from '../engine';
import { BatchSource, disposeOptimizer, TrainBatch, trainModel } from '../train';
import { now, peakRssMb, secondsSince } from '../util';

export interface ModelBenchResult {
  /** Inference img/s by batch size, as features, evaluate and predict run it: BatchNorm folded. */
  forward: Record<number, number>;
  /**
   * Forward at batch 8 folded and unfolded (foldBatchNorm off), one pass of each in turn so that both see
   * the same load; null where folding does not apply.
   */
  folding: { foldedImgS8: number; unfoldedImgS8: number } | null;
  headStepMs: number;
  /** Train step img/s at batch 8, or null with the reason when the backend cannot train convolutions. */
  trainImgS8: number | null;
  trainSkipped?: string;
  /** Peak RSS (MB) after the forward passes (what feature extraction needs) and after training steps. */
  peakRssForwardMb: number;
  peakRssTrainMb: number | null;
  /** The tutorial's batch 128 as 16 accumulated micro-batches of 8 through the trainer: seconds and peak RSS. */
  accumulated128?: { seconds: number; peakRssMb: number };
  /** With native kernels in use: forward and train step at batch 8 with wasm's kernels alone, in the same run. */
  wasmOnly?: { forwardImgS8: number; trainImgS8: number | null };
  /** Forward and train step at batch 8 in bf16 precision, in the same run; or why not (no native bf16). */
  bf16: { forwardImgS8: number; trainImgS8: number | null } | { reason: string };
}

/** 16 micro-batches of 8 random images: one accumulated step of the tutorial's batch 128. */
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

/** Folded and unfolded forward img/s at batch 8, taking turns after one warm-up pass of each. */
async function compareFolding(model: BoatModel, reps: number): Promise<{ foldedImgS8: number; unfoldedImgS8: number }> {
  const x = tf.randomNormal<tf.Rank.R4>([8, 224, 224, 3], 0, 50, 'float32', 1);
  const seconds = { folded: 0, unfolded: 0 };
  try {
    for (let i = 0; i <= reps; i++) {
      for (const fold of [true, false]) {
        model.foldBatchNorm = fold;
        const t = now();
        const out = model.forward(x);
        await out.data();
        out.dispose();
        if (i > 0) seconds[fold ? 'folded' : 'unfolded'] += secondsSince(t);
      }
    }
  } finally {
    model.foldBatchNorm = true;
    x.dispose();
  }
  return { foldedImgS8: (8 * reps) / seconds.folded, unfoldedImgS8: (8 * reps) / seconds.unfolded };
}

/** Fine-tune step img/s at batch 8 (forward + backward + SGD), after one warm-up step. */
function timeTrainStep(model: BoatModel, reps: number): number {
  model.mode = 'finetune';
  const x = tf.randomNormal<tf.Rank.R4>([8, 224, 224, 3], 0, 50);
  const y = tf.tensor1d([0, 1, 2, 3, 4, 0, 1, 2], 'int32');
  const optimizer = tf.train.momentum(0.001, 0.9);
  const step = (): void =>
    tf.dispose(
      optimizer.minimize(() => nllLoss(model.forward(x, true), y), true, model.trainableVariables()) ?? undefined,
    );
  step();
  const t = now();
  for (let i = 0; i < reps; i++) step();
  const imgS = (8 * reps) / secondsSince(t);
  tf.dispose([x, y]);
  disposeOptimizer(optimizer);
  return imgS;
}

export async function benchModel(batches: number[], reps: number, accumulated128 = false): Promise<ModelBenchResult> {
  const model = await createBoatModel({ classes: ['a', 'b', 'c', 'd', 'e'], mode: 'finetune' });
  const forward: Record<number, number> = {};
  for (const b of batches) forward[b] = await timeForward(model, b, reps);
  const folding = model.folding ? await compareFolding(model, reps) : null;
  const peakRssForwardMb = peakRssMb();
  // Head step: batch 32 of cached 2048-d features, SGD with momentum.
  model.mode = 'feature-extractor';
  const f = tf.randomNormal<tf.Rank.R2>([32, 2048]);
  const y = tf.tensor1d(
    Array.from({ length: 32 }, (_, i) => i % 5),
    'int32',
  );
  const opt = tf.train.momentum(0.001, 0.9);
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

  let trainImgS8: number | null = null;
  let trainSkipped: string | undefined;
  let peakRssTrainMb: number | null = null;
  let accumulated: ModelBenchResult['accumulated128'];
  const support = fineTuneSupport();
  if (support.ok) {
    trainImgS8 = timeTrainStep(model, reps);
    peakRssTrainMb = peakRssMb();
    if (accumulated128) {
      const run = await trainModel(
        model,
        { train: new RandomImages(16), val: new RandomImages(1) },
        { epochs: 1, accumulate: 16 },
      );
      accumulated = { seconds: run.history[0].seconds, peakRssMb: peakRssMb() };
    }
  } else {
    trainSkipped = support.reason;
  }
  let bf16: ModelBenchResult['bf16'];
  const bf16Support = nativeBf16Support();
  if (bf16Support.ok) {
    const before = (await selectBackend()).precision;
    await selectBackend(undefined, 'bf16');
    try {
      bf16 = {
        forwardImgS8: await timeForward(model, 8, reps),
        trainImgS8: support.ok ? timeTrainStep(model, reps) : null,
      };
    } finally {
      await selectBackend(undefined, before);
    }
  } else {
    bf16 = { reason: bf16Support.reason };
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
    forward,
    folding,
    headStepMs,
    trainImgS8,
    trainSkipped,
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
  threads: number;
  batch: number;
  params: number;
  /** fp32 NCHW (PyTorch's default; also the top-level rates), fp32 channels_last, bf16 autocast + channels_last. */
  configs: { nchw: TorchRates; channels_last: TorchRates; bf16_channels_last: TorchRates };
}

/** The script's JSON line, checked: a missing or non-numeric rate is an error, not a NaN ratio. */
export function parseTorchResult(line: string): TorchBenchResult {
  const r = JSON.parse(line) as TorchBenchResult;
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

/** Runs bench/torch_resnet50.py with Debian's Python, or returns why it could not. */
export function benchTorch(threads: number, batch: number, reps: number): TorchBenchResult | { missing: string } {
  const script = path.resolve(__dirname, '..', '..', '..', 'bench', 'torch_resnet50.py');
  if (!fs.existsSync('/usr/bin/python3')) return { missing: '/usr/bin/python3 not found' };
  const r = spawnSync('/usr/bin/python3', [script, String(threads), String(batch), String(reps)], {
    encoding: 'utf8',
    timeout: 1_800_000, // three configurations, each with two warm-ups
  });
  if (r.status !== 0) {
    const why = /No module named '?(torch\w*)/.exec(r.stderr ?? '')?.[1];
    return {
      missing: why
        ? `PyTorch not installed (no module ${why}; apt-get install python3-torch python3-torchvision)`
        : `PyTorch run failed: ${(r.stderr ?? '').trim().split('\n').pop()}`,
    };
  }
  return parseTorchResult(r.stdout.trim().split('\n').pop()!);
}
