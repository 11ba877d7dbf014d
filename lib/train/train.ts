/**
 * The tutorial's train_model: every epoch a train phase then a val phase, loss and accuracy per phase,
 * the best weights by val accuracy kept and restored at the end, SGD (lr 0.001, momentum 0.9) with
 * StepLR (step 7, gamma 0.1) for 24 epochs by default.
 *
 * Additions: gradient accumulation (the tutorial's batch 128 in small micro-batches), a checkpoint
 * after every epoch (weights, optimizer state, best weights, history) written atomically, and an exact
 * resume. All randomness (data order, augmentation, dropout, MixUp/CutMix) is a function of (seed, epoch,
 * step), so the checkpoint needs no generator state beyond the epoch number.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../engine/tf';
import { momentumOptimizer } from '../engine/momentum';

import type { BoatModel, TrainingMode } from '../model';
import { nllLoss } from '../model';
import {
  now,
  Random,
  recoverInterruptedSave,
  replaceOwnedDirectory,
  secondsSince,
  UserError,
  writeJsonAtomic,
} from '../util';
import { majorityLabels, mixedNllLoss, mixForStep, mixingOn, resolveMixing } from './mixing';
import { applyScaledGradients } from './rates';
import { checkSchedule, LrSchedule, scheduledLr } from './schedule';
import { checkLabelSmoothing } from './smoothing';
import { readTensors, writeTensors } from './tensors-file';

/** One batch of inputs (images for fine-tuning, backbone features for a feature extractor). */
export interface TrainBatch {
  x: tf.Tensor;
  y: tf.Tensor1D;
}

/** What the loop trains on: a number of samples and a deterministic stream of batches per epoch. */
export interface BatchSource {
  readonly size: number;
  batches(epoch: number): AsyncGenerator<TrainBatch>;
}

export type Phase = 'train' | 'val';

export interface HistoryRow {
  epoch: number;
  phase: Phase;
  loss: number;
  acc: number;
  lr: number;
  seconds: number;
  imagesPerSecond: number;
}

export interface TrainOptions {
  epochs?: number;
  optimizer?: 'sgd' | 'adam';
  lr?: number;
  momentum?: number;
  stepSize?: number;
  gamma?: number;
  /**
   * A warm-up schedule stepped at every optimizer step, peaking at `lr`, instead of StepLR (stepSize and
   * gamma are then unused). It spans `epochs`, which a resume must therefore keep.
   */
  schedule?: LrSchedule;
  /** Per-variable rate multipliers keyed by variable name (SGD only: see rates.ts), e.g. stageRateMultipliers. */
  rateMultipliers?: Record<string, number>;
  /** Batches from the source are micro-batches; gradients of this many are summed into one step. */
  accumulate?: number;
  /** Per-class weights of the training loss (e.g. balancedClassWeights); val loss stays the plain NLL. */
  classWeights?: number[];
  /**
   * Label smoothing x, 0 ≤ x < 1, of the training loss (PyTorch's CrossEntropyLoss(label_smoothing=x), see
   * nllLoss): the target is (1 − x)·one-hot + x / classes. 0 (the default) is the plain loss; val loss stays plain.
   */
  labelSmoothing?: number;
  /**
   * MixUp's α (torchvision.transforms.v2.MixUp, see mixing.ts): each training batch of images is mixed with
   * itself rolled by one, λ ~ Beta(α, α). 0 (the default) is off; fine-tuning only; val stays unmixed.
   */
  mixupAlpha?: number;
  /** CutMix's α (transforms.v2.CutMix), likewise; with both on, one of the two per batch. */
  cutmixAlpha?: number;
  seed?: number;
  /**
   * Progressive resizing: the square input size of each epoch (at least `epochs` of them). Each epoch
   * switches the model to its size (BoatModel.setInputSize), so the batch sources must yield that size in
   * it; the model ends at the size of the epoch whose weights are kept. Unset: the model's own size throughout.
   */
  inputSizes?: number[];
  /** Folder for the per-epoch checkpoint; none when undefined. */
  checkpointDir?: string;
  /** Continue from the checkpoint in checkpointDir. */
  resume?: boolean;
  /**
   * Everything else the result depends on (data, model, batch size...), recorded in the checkpoint
   * beside this loop's own settings; a resume with any of them different is refused (resumeSettings).
   */
  settings?: Record<string, unknown>;
  /** Called after every batch, for progress bars. */
  onBatch?: (info: { epoch: number; phase: Phase; done: number; total: number; seconds: number }) => void;
  /** Called after every phase. */
  onPhase?: (row: HistoryRow) => void;
  /** Called after each epoch's checkpoint is written (tests use it to simulate a crash). */
  onCheckpoint?: (epoch: number) => void;
  /** Checked between batches; when it returns true, training stops after the current epoch's checkpoint. */
  shouldStop?: () => boolean;
}

export interface TrainResult {
  history: HistoryRow[];
  bestValAcc: number;
  bestEpoch: number;
  /** Training time (epochs, train and val phases), including `secondsBefore`. */
  seconds: number;
  /** Training time of the earlier runs a --resume continued (0 otherwise). */
  secondsBefore: number;
  /** True when shouldStop ended training early. */
  stopped: boolean;
}

const DEFAULTS = {
  epochs: 24,
  optimizer: 'sgd' as 'sgd' | 'adam',
  lr: 0.001,
  momentum: 0.9,
  stepSize: 7,
  gamma: 0.1,
  accumulate: 1,
  seed: 0,
  labelSmoothing: 0,
  mixupAlpha: 0,
  cutmixAlpha: 0,
};

/** StepLR: lr · gamma^floor(epoch / stepSize). */
export function stepLr(lr: number, epoch: number, stepSize: number, gamma: number): number {
  return lr * Math.pow(gamma, Math.floor(epoch / stepSize));
}

interface CheckpointState {
  epoch: number;
  bestValAcc: number;
  bestEpoch: number;
  history: HistoryRow[];
  mode: TrainingMode;
  options: Record<string, unknown>;
  /** resumeSettings() of the run that wrote it: a resume must match every one. */
  settings: Record<string, unknown>;
  seconds: number;
  /** SHA-256 of every tensor file beside state.json (written last), checked on load. */
  files: Record<string, string>;
}

function withDefaults(options: TrainOptions): typeof DEFAULTS & TrainOptions {
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as TrainOptions;
  return { ...DEFAULTS, ...given };
}

/**
 * What a resumed run must share with the run that wrote the checkpoint for the resume to be exact: one
 * line per setting, named as the CLI spells it where it has a flag. --epochs is not here: a finished run may be given more.
 */
export function resumeSettings(options: TrainOptions): Record<string, unknown> {
  const o = withDefaults(options);
  // Only runs with a schedule or multipliers record them, so older checkpoints still resume.
  const scheduled = o.schedule
    ? {
        schedule: o.schedule.kind,
        'pct-start': o.schedule.pctStart,
        div: o.schedule.div,
        'div-final': o.schedule.divFinal,
        epochs: o.epochs,
      }
    : { 'step-size': o.stepSize, gamma: o.gamma };
  return {
    optimizer: o.optimizer,
    lr: o.lr,
    momentum: o.momentum,
    ...scheduled,
    ...(o.rateMultipliers ? { 'rate-multipliers': multiplierDigest(o.rateMultipliers) } : {}),
    accumulate: o.accumulate,
    seed: o.seed,
    'class-weights': o.classWeights ?? null,
    'label-smoothing': o.labelSmoothing,
    'mixup-alpha': o.mixupAlpha,
    'cutmix-alpha': o.cutmixAlpha,
    ...(o.inputSizes ? { 'input-sizes': o.inputSizes.join(',') } : {}),
    ...o.settings,
  };
}

/** The distinct multipliers and how many variables have each: short enough to print in a refusal. */
function multiplierDigest(multipliers: Record<string, number>): string {
  const counts = new Map<string, number>();
  for (const k of Object.values(multipliers)) counts.set(k.toPrecision(6), (counts.get(k.toPrecision(6)) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${k}x${n}`).join(' ');
}

/** The settings a checkpoint was written with (what resumeSettings recorded), e.g. to reuse a rate it chose. */
export function checkpointSettings(dir: string): Record<string, unknown> {
  return readCheckpointState(dir).settings;
}

/** Refuses, in one line naming every difference, a resume whose settings are not the checkpoint's. */
export function checkResumeSettings(dir: string, current: Record<string, unknown>): void {
  // runSettings records fp32 by leaving precision out, so that is what a missing precision means; a
  // checkpoint from before label smoothing, MixUp or CutMix existed trained without them.
  const normalised = (s: Record<string, unknown>): Record<string, unknown> => ({
    ...s,
    precision: s.precision ?? 'fp32',
    'label-smoothing': s['label-smoothing'] ?? 0,
    'mixup-alpha': s['mixup-alpha'] ?? 0,
    'cutmix-alpha': s['cutmix-alpha'] ?? 0,
  });
  const saved = normalised(readCheckpointState(dir).settings);
  const now = normalised(current);
  const show = (v: unknown): string =>
    v === undefined ? 'unset' : v === null ? 'none' : typeof v === 'string' ? v : JSON.stringify(v);
  const names = [...new Set([...Object.keys(saved), ...Object.keys(now)])];
  const differ = names.filter((k) => show(saved[k]) !== show(now[k]));
  if (differ.length > 0) {
    // The settings a plain `--resume` can change without the user changing anything: the precision (the
    // CPU's), and the micro-batches a batch runs as (planned from the engine's heap: older checkpoints ran
    // every batch above 8 as micro-batches of 8).
    const hints = [
      ...(differ.includes('precision')
        ? [`--precision ${show(saved.precision)}, or BOAT_PRECISION=${show(saved.precision)} for the notebooks`]
        : []),
      ...(differ.includes('accumulate') && typeof saved.accumulate === 'number'
        ? [`--accumulate ${saved.accumulate}`]
        : []),
    ];
    const hint = hints.length ? ` (${hints.join('; ')})` : '';
    throw new UserError(
      `cannot resume from ${dir}: ${differ.map((k) => `${k} ${show(now[k])} (checkpoint: ${show(saved[k])})`).join(', ')}; ` +
        `resume with the checkpoint's settings${hint}, or start again without --resume`,
    );
  }
}

function readCheckpointState(dir: string): CheckpointState {
  recoverInterruptedSave(dir);
  const stateFile = path.join(dir, 'state.json');
  if (!fs.existsSync(stateFile)) throw new UserError(`no checkpoint to resume from in ${dir}`);
  let state: CheckpointState;
  try {
    state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as CheckpointState;
  } catch {
    throw new UserError(`checkpoint damaged: ${stateFile} is not valid JSON`);
  }
  if (!state.files)
    throw new UserError(
      `checkpoint in ${dir} was written by an older version (no file hashes); start again without --resume`,
    );
  if (!state.settings)
    throw new UserError(
      `checkpoint in ${dir} was written by an older version (no record of its settings); start again without --resume`,
    );
  return state;
}

export async function trainModel(
  model: BoatModel,
  data: { train: BatchSource; val: BatchSource },
  options: TrainOptions = {},
): Promise<TrainResult> {
  const o = withDefaults(options);
  if (o.schedule) checkSchedule(o.schedule);
  checkLabelSmoothing(o.labelSmoothing);
  resolveMixing(o);
  if (mixingOn(o) && model.mode !== 'finetune')
    throw new UserError('MixUp and CutMix mix images: they apply to fine-tuning only, not to cached features');
  if (o.rateMultipliers && o.optimizer === 'adam')
    throw new UserError('per-layer learning rates need SGD: Adam divides each step by its gradient scale');
  if (o.inputSizes && o.inputSizes.length < o.epochs)
    throw new UserError(`${o.inputSizes.length} input sizes for ${o.epochs} epochs: give one per epoch`);
  const variables = model.trainableVariables();
  const sgd = o.optimizer === 'adam' ? null : momentumOptimizer(o.lr, o.momentum);
  const optimizer = sgd ?? tf.train.adam(o.lr);
  // SGD steps with a cached scalar that only setLearningRate replaces; writing the learningRate field
  // alone (which Adam reads) would leave SGD at its first rate, with no StepLR decay.
  const setLr = (lr: number): void => {
    if (sgd) sgd.setLearningRate(lr);
    else (optimizer as unknown as { learningRate: number }).learningRate = lr;
  };

  let history: HistoryRow[] = [];
  let best: tf.Tensor[] = model.trainedWeights().map((w) => w.read().clone());
  let bestValAcc = -1;
  let bestEpoch = -1;
  let startEpoch = 0;
  let secondsBefore = 0;

  if (o.resume) {
    if (!o.checkpointDir) throw new UserError('--resume needs a checkpoint folder');
    checkResumeSettings(o.checkpointDir, resumeSettings(o));
    const state = await loadCheckpoint(o.checkpointDir, model, optimizer);
    tf.dispose(best);
    best = state.best;
    ({ history, bestValAcc, bestEpoch } = state.state);
    startEpoch = state.state.epoch + 1;
    secondsBefore = state.state.seconds;
  }

  const started = now();
  const elapsed = (): number => secondsBefore + secondsSince(started);
  let stopped = false;
  for (let epoch = startEpoch; epoch < o.epochs && !stopped; epoch++) {
    const size = Math.max(1, data.train.size);
    const schedule = o.schedule;
    // A schedule's rate at the step that starts after `seen` samples of this epoch; StepLR's for the epoch.
    const rateAt = (seen: number): number =>
      schedule
        ? scheduledLr(schedule, o.lr, (epoch + seen / size) / o.epochs)
        : stepLr(o.lr, epoch, o.stepSize, o.gamma);
    // The history's lr column: the rate of the epoch's first step.
    const lr = rateAt(0);
    setLr(lr);
    if (o.inputSizes) model.setInputSize(o.inputSizes[epoch]);
    for (const phase of ['train', 'val'] as const) {
      const source = phase === 'train' ? data.train : data.val;
      const t0 = now();
      let lossSum = 0;
      let correct = 0;
      let seen = 0;
      let step = 0;
      let pending: { grads: tf.NamedTensorMap; count: number } | null = null;
      let stepStart = 0;
      const total = source.size;
      const stepOptimizer = (p: { grads: tf.NamedTensorMap; count: number }): null => {
        if (schedule) setLr(rateAt(stepStart));
        return applyPending(optimizer, p, o.rateMultipliers);
      };
      for await (const { x, y } of source.batches(epoch)) {
        const n = y.shape[0];
        if (phase === 'train') {
          // MixUp / CutMix (or null): new tensors, disposed once the gradients are taken.
          const mixed = mixForStep(o, epoch, step, x, y);
          model.setDropoutSeed(Random.derive(o.seed, 'dropout', epoch, step++).int(0, 2 ** 31 - 1));
          let hits: tf.Scalar | null = null;
          const { value, grads } = tf.variableGrads(() => {
            const logProbs = forwardAny(model, mixed?.x ?? x, true);
            hits = tf.keep(countCorrect(logProbs, majorityLabels(y, mixed)));
            // Weighted by batch size so that accumulated micro-batches average like one big batch.
            return tf.mul<tf.Scalar>(mixedNllLoss(logProbs, y, mixed, o.classWeights, o.labelSmoothing), n);
          }, variables);
          mixed?.dispose();
          lossSum += (await value.data())[0];
          correct += (await hits!.data())[0];
          tf.dispose([value, hits!]);
          if (!pending) stepStart = seen;
          pending = accumulate(pending, grads, n);
          if (step % o.accumulate === 0) pending = stepOptimizer(pending);
        } else {
          // Read asynchronously: the webgpu backend cannot read synchronously in Node.
          const [loss, hits] = tf.tidy(() => {
            const logProbs = forwardAny(model, x, false);
            return [nllLoss(logProbs, y), countCorrect(logProbs, y)];
          });
          lossSum += (await loss.data())[0] * n;
          correct += (await hits.data())[0];
          tf.dispose([loss, hits]);
        }
        tf.dispose([x, y]);
        seen += n;
        o.onBatch?.({ epoch, phase, done: seen, total, seconds: secondsSince(t0) });
        // Let the event loop run (signals such as Ctrl-C, output, notebook display updates).
        await new Promise((resolve) => setImmediate(resolve));
        if (o.shouldStop?.()) stopped = true;
      }
      if (pending) pending = stepOptimizer(pending);
      const seconds = secondsSince(t0);
      const row: HistoryRow = {
        epoch,
        phase,
        loss: lossSum / Math.max(1, seen),
        acc: correct / Math.max(1, seen),
        lr,
        seconds,
        imagesPerSecond: seen / Math.max(seconds, 1e-9),
      };
      history.push(row);
      o.onPhase?.(row);
      if (phase === 'val' && row.acc > bestValAcc) {
        bestValAcc = row.acc;
        bestEpoch = epoch;
        tf.dispose(best);
        best = model.trainedWeights().map((w) => w.read().clone());
      }
    }
    if (o.checkpointDir) {
      await saveCheckpoint(o.checkpointDir, model, optimizer, best, {
        epoch,
        bestValAcc,
        bestEpoch,
        history,
        mode: model.mode,
        options: publicOptions(o),
        settings: resumeSettings(o),
        seconds: elapsed(),
      });
      o.onCheckpoint?.(epoch);
    }
  }
  if (!stopped) {
    model.trainedWeights().forEach((w, i) => w.write(best[i]));
    if (o.inputSizes && bestEpoch >= 0) model.setInputSize(o.inputSizes[bestEpoch]);
  }
  tf.dispose(best);
  disposeOptimizer(optimizer);
  return { history, bestValAcc, bestEpoch, seconds: elapsed(), secondsBefore, stopped };
}

/** The model's log-probabilities for images [n,h,w,3] or, in feature-extractor mode, cached features [n,2048]. */
export function forwardAny(model: BoatModel, x: tf.Tensor, training: boolean): tf.Tensor2D {
  return x.rank === 2 ? model.forwardHead(x as tf.Tensor2D, training) : model.forward(x as tf.Tensor4D, training);
}

function countCorrect(logProbs: tf.Tensor2D, y: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => tf.sum(tf.equal(tf.argMax(logProbs, 1).toInt(), y).toInt()));
}

function accumulate(
  pending: { grads: tf.NamedTensorMap; count: number } | null,
  grads: tf.NamedTensorMap,
  n: number,
): { grads: tf.NamedTensorMap; count: number } {
  if (!pending) return { grads, count: n };
  for (const name of Object.keys(grads)) {
    const sum = tf.add(pending.grads[name], grads[name]);
    tf.dispose([pending.grads[name], grads[name]]);
    pending.grads[name] = sum;
  }
  return { grads: pending.grads, count: pending.count + n };
}

/** One optimizer step with the mean gradient over the accumulated samples. */
function applyPending(
  optimizer: tf.Optimizer,
  pending: { grads: tf.NamedTensorMap; count: number },
  multipliers?: Record<string, number>,
): null {
  const mean: tf.NamedTensorMap = {};
  for (const [name, g] of Object.entries(pending.grads)) {
    mean[name] = tf.div(g, pending.count);
    g.dispose();
  }
  try {
    applyScaledGradients(optimizer, mean, multipliers);
  } finally {
    tf.dispose(Object.values(mean));
  }
  return null;
}

/** tfjs' MomentumOptimizer.dispose forgets the learning-rate scalar (`c`) that SGDOptimizer keeps. */
export function disposeOptimizer(optimizer: tf.Optimizer): void {
  optimizer.dispose();
  // (instanceof is no test here: tfjs optimizers answer it by duck typing.)
  if (optimizer.getClassName() === 'Momentum') {
    const rate = (optimizer as unknown as { c?: tf.Tensor }).c;
    if (rate && !rate.isDisposed) rate.dispose();
  }
}

/** The options a run's record names, in this order. */
const PUBLIC_OPTIONS = [
  'epochs',
  'optimizer',
  'lr',
  'momentum',
  'stepSize',
  'gamma',
  'accumulate',
  'seed',
  'classWeights',
  'labelSmoothing',
  'mixupAlpha',
  'cutmixAlpha',
  'schedule',
] as const;

function publicOptions(o: typeof DEFAULTS & TrainOptions): Record<string, unknown> {
  return Object.fromEntries(PUBLIC_OPTIONS.map((key) => [key, o[key]]));
}

async function saveCheckpoint(
  dir: string,
  model: BoatModel,
  optimizer: tf.Optimizer,
  best: tf.Tensor[],
  state: Omit<CheckpointState, 'files'>,
): Promise<void> {
  const keep = model.trainedWeights();
  // getWeights() returns the optimizer's own slot variables plus a new scalar of its step count ("iter"),
  // which is ours to dispose: left alone, it leaked one tensor per checkpoint.
  const slots = await optimizer.getWeights();
  try {
    await replaceOwnedDirectory(dir, { kind: 'boat-checkpoint' }, async (tmp) => {
      const files = {
        ...(await writeTensors(
          tmp,
          'weights',
          keep.map((w) => ({ name: w.name, tensor: w.read() })),
        )),
        ...(await writeTensors(
          tmp,
          'best',
          best.map((t, i) => ({ name: keep[i].name, tensor: t })),
        )),
        ...(await writeTensors(tmp, 'optimizer', slots)),
      };
      writeJsonAtomic(path.join(tmp, 'state.json'), { ...state, files });
    });
  } finally {
    tf.dispose(slots.filter((s) => s.name === 'iter').map((s) => s.tensor));
  }
}

async function loadCheckpoint(
  dir: string,
  model: BoatModel,
  optimizer: tf.Optimizer,
): Promise<{ state: CheckpointState; best: tf.Tensor[] }> {
  const state = readCheckpointState(dir);
  if (state.mode !== model.mode)
    throw new UserError(`checkpoint in ${dir} is for ${state.mode} training, not ${model.mode}`);
  const keep = model.trainedWeights();
  const weights = readTensors(dir, 'weights', state.files);
  const best = readTensors(dir, 'best', state.files);
  if (weights.length !== keep.length || best.length !== keep.length)
    throw new UserError(`checkpoint in ${dir} does not match this model's weights`);
  keep.forEach((w, i) => w.write(weights[i].tensor));
  tf.dispose(weights.map((w) => w.tensor));
  // Optimizer slot variables are created lazily; setWeights creates them with the saved values. Its
  // variables share (and reference-count) the read tensors' data, so the tensors themselves are disposed.
  const slots = readTensors(dir, 'optimizer', state.files);
  try {
    await optimizer.setWeights(slots);
  } finally {
    tf.dispose(slots.map((s) => s.tensor));
  }
  return { state, best: best.map((b) => b.tensor) };
}
