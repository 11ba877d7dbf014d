/**
 * One experiment of the tutorial, as `boat train` runs it: build ResNet50 + head for the classes of
 * data/train, train (from cached features for a feature extractor, from images when fine-tuning),
 * keep the best epoch by val accuracy, evaluate on data/test when present, and save everything under
 * the output folder, with a checkpoint beside it (<out>.checkpoint) for --resume and extra epochs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { displayPath } from '../util/paths';
import { skippedLines, type Skipped } from '../data/scan';
import { evaluateModel, metricsOf, Misclassified, misclassifiedOf } from '../evaluate/evaluate';
import { formatMetrics, Metrics } from '../evaluate/metrics';
import { DataLoader, evalTransforms, ImageFolder, trainTransforms, type RandAugmentOptions } from '../images';
import {
  balancedClassWeights,
  BoatModel,
  checkClassesMatch,
  createBoatModel,
  loadBoatModel,
  saveBoatModel,
  TrainingMode,
} from '../model';
import { selectBackend } from '../engine';
import {
  acquireLock,
  minutesAndSeconds,
  recoverInterruptedSave,
  requireDirectory,
  requireWritableDirectory,
  toCsv,
  UserError,
} from '../util';
import { FeatureRun } from './features';
import { mixingLine, mixingOn, resolveMixing } from './mixing';
import { terminalProgress, ProgressSink } from './progress';
import { checkRandAugment, randAugmentLine } from './rand-augment';
import { runSettings } from './run-settings';
import { FeatureSource, LoaderSource } from './sources';
import { checkLabelSmoothing, labelSmoothingLine } from './smoothing';
import { fineTunePasses } from './micro-batches';
import { BatchSource, checkResumeSettings, HistoryRow, resumeSettings, trainModel, TrainOptions } from './train';

export interface ExperimentOptions extends Omit<TrainOptions, 'checkpointDir' | 'onBatch' | 'onPhase' | 'settings'> {
  mode: TrainingMode;
  /** Folder holding train/, val/ and optionally test/. */
  data: string;
  out: string;
  batchSize?: number;
  /** Feature extractor: augmented views of the training set (0 = the eval transform only). */
  views?: number;
  /** Fine-tune: RandAugment on each training crop (off when unset). */
  randAugment?: RandAugmentOptions;
  cacheDir?: string;
  inputSize?: number;
  /** Fine-tune: train only the last N of ResNet50's 5 stages (default: the whole network). */
  unfreezeStages?: number;
  /** Weight the training loss by balanced class weights (for unbalanced data such as all 9 Kaggle classes). */
  balanceClasses?: boolean;
  /**
   * Start from a saved model's weights instead of ImageNet's plus a fresh head: e.g. fine-tune a trained
   * feature extractor (the two-stage recipe, whose head no longer sends random gradients into the backbone).
   */
  init?: string;
  /** Fine-tune: BatchNorm keeps normalising with its moving statistics (see BoatModel.batchNormFrozen). */
  freezeBatchNorm?: boolean;
  progress?: ProgressSink;
  log?: (line: string) => void;
}

export interface ExperimentResult {
  model: BoatModel;
  history: HistoryRow[];
  bestValAcc: number;
  bestEpoch: number;
  test?: Metrics;
  /** Seconds: backbone feature extraction (feature extractor), training loop, and the whole run (both with the training time of earlier runs when resumed). */
  timing: { extractSeconds: number; trainSeconds: number; totalSeconds: number; recomputeEstimateSeconds?: number };
  stopped: boolean;
  out: string;
  /** Files left out of train, val and test, each with its one-line reason. */
  skipped: Skipped[];
}

/** A saved model to continue from, checked against the data's classes and the asked input size. */
async function initialModel(
  dir: string,
  classes: readonly string[],
  mode: TrainingMode,
  inputSize: number | undefined,
  log: (line: string) => void,
): Promise<BoatModel> {
  requireDirectory(dir, 'model to start from (--init)');
  const model = await loadBoatModel(dir);
  try {
    checkClassesMatch(model.classes, classes, dir);
    if (inputSize !== undefined && inputSize !== model.info.inputSize)
      throw new UserError(`--input-size ${inputSize} differs from ${dir}'s ${model.info.inputSize}`);
  } catch (err) {
    model.dispose();
    throw err;
  }
  log(`Starting from ${displayPath(dir)} (a ${model.mode} model), not from ImageNet's weights and a fresh head`);
  model.mode = mode;
  return model;
}

/**
 * Runs one experiment. The output (and its checkpoint beside it) is locked for the whole run by
 * <out>.lock, holding this process' pid: a second run on the same --out is refused while this one lives.
 */
export async function runExperiment(options: ExperimentOptions): Promise<ExperimentResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  return withOutputLock(options.data, options.out, log, () => runLocked(options, log));
}

/**
 * Checks the data's train/ and val/ and the output's parent, then runs `run` holding <out>.lock (this
 * process' pid): a second run on the same output is refused while this one lives.
 */
export async function withOutputLock<T>(
  data: string,
  outDir: string,
  log: (line: string) => void,
  run: () => Promise<T>,
): Promise<T> {
  requireDirectory(path.join(data, 'train'), 'training folder');
  requireDirectory(path.join(data, 'val'), 'validation folder');
  requireWritableDirectory(path.dirname(path.resolve(outDir)));
  const out = path.join(fs.realpathSync(path.dirname(path.resolve(outDir))), path.basename(path.resolve(outDir)));
  const lock = acquireLock(`${out}.lock`, `the output ${outDir}`);
  if (lock.tookOverFrom !== undefined)
    log(`note: took over ${lock.file}, left by pid ${lock.tookOverFrom}, which is no longer running`);
  try {
    return await run();
  } finally {
    lock.release();
  }
}

async function runLocked(options: ExperimentOptions, log: (line: string) => void): Promise<ExperimentResult> {
  const started = Date.now();
  const trainDir = path.join(options.data, 'train');
  const valDir = path.join(options.data, 'val');
  const testDir = path.join(options.data, 'test');
  const checkpointDir = `${path.resolve(options.out)}.checkpoint`;
  const labelSmoothing = options.labelSmoothing ?? 0;
  checkLabelSmoothing(labelSmoothing);
  const mixing = resolveMixing(options, options.mode);
  const randAugment = checkRandAugment(options.randAugment, options.mode);
  recoverInterruptedSave(checkpointDir);
  if (options.resume && !fs.existsSync(path.join(checkpointDir, 'state.json')))
    throw new UserError(`nothing to resume: no checkpoint in ${checkpointDir}`);

  const backend = await selectBackend();
  log(backend.line);
  const trainFolder = new ImageFolder(trainDir, evalTransforms());
  const valFolder = new ImageFolder(valDir, evalTransforms());
  const classes = trainFolder.classes;
  checkClassesMatch(classes, valFolder.classes, valDir);
  const seed = options.seed ?? 0;
  const batchSize = options.batchSize ?? 32;
  const classWeights = options.balanceClasses
    ? balancedClassWeights(
        trainFolder.samples.map((s) => s.label),
        classes.length,
      )
    : options.classWeights;

  const model = options.init
    ? await initialModel(options.init, classes, options.mode, options.inputSize, log)
    : await createBoatModel({ classes, mode: options.mode, inputSize: options.inputSize, seed: options.seed });
  if (options.mode === 'finetune' && options.unfreezeStages !== undefined)
    model.unfrozenStages = options.unfreezeStages;
  if (options.mode === 'finetune' && options.freezeBatchNorm) model.batchNormFrozen = true;
  // Fine-tuning keeps the pass's activations for backprop, which on wasm must fit its heap.
  const passes =
    options.mode === 'finetune'
      ? fineTunePasses(batchSize, options.accumulate, backend.name, model.info.inputSize, model.batchNormFrozen)
      : { size: batchSize, accumulate: options.accumulate };
  const accumulate = passes.accumulate;
  const views = options.views ?? 0;
  const progress = options.progress ?? terminalProgress(options.epochs ?? 24);
  const settings = runSettings({
    mode: options.mode,
    batchSize,
    folders: [trainFolder, valFolder],
    model,
    init: options.init,
    views,
    unfreezeStages: model.unfrozenStages,
    freezeBatchNorm: model.batchNormFrozen,
    randAugment,
  });
  const trainOptions: TrainOptions = {
    ...options,
    accumulate,
    classWeights,
    labelSmoothing,
    ...mixing,
    checkpointDir,
    settings,
    onBatch: (info) => progress.batch(info),
    onPhase: (row) => progress.phase(row),
  };
  try {
    // Before any features are extracted: a resume with other settings is refused at once.
    if (options.resume) checkResumeSettings(checkpointDir, resumeSettings(trainOptions));
  } catch (err) {
    model.dispose();
    throw err;
  }
  const counts = model.paramCounts();
  const scope = model.unfrozenStages === null ? '' : ` (last ${model.unfrozenStages} of 5 stages unfrozen)`;
  log(
    `ResNet50 + head, ${options.mode}${scope}: ${counts.total.toLocaleString('en-US')} parameters, ${counts.trainable.toLocaleString('en-US')} trainable`,
  );
  if (model.batchNormFrozen)
    log(
      'BatchNorm frozen: it normalises with its moving (ImageNet) statistics and leaves them as they are; gamma and beta train',
    );
  const { preprocessing: pre, inputSize: size } = model.info;

  const datasets: ImageFolder[] = [];
  let train: BatchSource;
  let val: BatchSource;
  let extractSeconds = 0;
  let recomputePerEpoch = 0;
  if (options.mode === 'feature-extractor') {
    const features = new FeatureRun(model, {
      cacheDir: options.cacheDir ?? path.resolve('.cache', 'features'),
      seed,
      log,
      onProgress: (done, total) => progress.batch({ epoch: -1, phase: 'train', done, total, seconds: 0 }),
    });
    const trainViews =
      views > 0
        ? await Promise.all(
            Array.from({ length: views }, (_, v) =>
              features.extract(trainDir, `train view ${v + 1}/${views}`, true, v),
            ),
          )
        : [await features.extract(trainDir, 'train', false, 0)];
    // Recomputing per epoch, as the tutorial does, runs one training view and the val set every epoch.
    const trainRecompute = features.recomputePerEpoch / Math.max(1, views);
    const trainOnly = features.recomputePerEpoch;
    train = new FeatureSource(trainViews, batchSize, true, seed);
    val = new FeatureSource([await features.extract(valDir, 'val', false, 0)], batchSize, false, seed);
    recomputePerEpoch = trainRecompute + (features.recomputePerEpoch - trainOnly);
    extractSeconds = features.seconds;
    datasets.push(...features.datasets);
  } else {
    if (passes.note) log(passes.note);
    const micro = passes.size;
    const [trainSet, valSet] = [
      new ImageFolder(trainDir, trainTransforms(pre, size, randAugment)),
      new ImageFolder(valDir, evalTransforms(pre, size)),
    ];
    datasets.push(trainSet, valSet);
    train = new LoaderSource(new DataLoader(trainSet, { batchSize: micro, shuffle: true, seed }));
    val = new LoaderSource(new DataLoader(valSet, { batchSize: micro, seed }));
  }

  if (classWeights) log(`class weights: ${classes.map((c, i) => `${c} ${classWeights[i].toFixed(2)}`).join(', ')}`);
  if (labelSmoothing > 0) log(labelSmoothingLine(labelSmoothing, classes.length));
  if (mixingOn(mixing)) log(mixingLine(mixing));
  if (randAugment) log(randAugmentLine(randAugment));
  if (options.resume) log(`Resuming from ${displayPath(checkpointDir)}`);
  const result = await trainModel(model, { train, val }, trainOptions);
  log(
    `Training complete in ${minutesAndSeconds(result.seconds)}; best val acc ${result.bestValAcc.toFixed(4)} (epoch ${result.bestEpoch + 1})`,
  );

  let test: Metrics | undefined;
  let testMisclassified: Misclassified[] | undefined;
  const skippedLists: Skipped[][] = datasets.map((d) => d.skipped);
  if (!result.stopped && fs.existsSync(testDir)) {
    const evaluation = await evaluateModel(model, testDir);
    skippedLists.push(evaluation.skipped);
    test = metricsOf(evaluation);
    testMisclassified = misclassifiedOf(evaluation, options.data);
    log(`Test: ${formatMetrics(test).split('\n')[0]}`);
  }
  const skipped = uniqueSkips(skippedLists.flat());
  for (const line of skippedLines(skipped, 20, ' (listed in metrics.json)')) log(line);
  // A resumed run's total counts the training its earlier runs did (their setup and evaluation are not recorded).
  const totalSeconds = (Date.now() - started) / 1000 + result.secondsBefore;
  const epochs = options.epochs ?? 24;
  const headSeconds = result.history.reduce((s, r) => s + r.seconds, 0);
  const timing = {
    extractSeconds,
    trainSeconds: result.seconds,
    totalSeconds,
    recomputeEstimateSeconds:
      options.mode === 'feature-extractor' && recomputePerEpoch > 0
        ? recomputePerEpoch * epochs + headSeconds
        : undefined,
  };
  if (!result.stopped) {
    const metrics = {
      best_val_acc: result.bestValAcc,
      best_epoch: result.bestEpoch,
      test_acc: test?.accuracy ?? null,
      test,
      test_misclassified: testMisclassified,
      timing,
      backend: backend.line,
      skipped,
    };
    const config = {
      ...options,
      accumulate,
      classWeights,
      labelSmoothing,
      ...mixing,
      progress: undefined,
      log: undefined,
      classes,
      backend: backend.name,
      precision: backend.precision,
      checkpointDir,
      weights: model.info,
    };
    await saveBoatModel(model, options.out, metrics, '', {
      'history.csv': toCsv(
        ['epoch', 'phase', 'loss', 'acc', 'lr', 'seconds', 'images_per_second'],
        result.history.map((r) => [r.epoch, r.phase, r.loss, r.acc, r.lr, r.seconds, r.imagesPerSecond]),
      ),
      'metrics.json': JSON.stringify(metrics, null, 2) + '\n',
      'config.json': JSON.stringify(config, null, 2) + '\n',
    });
    log(`Saved ${displayPath(options.out)} (metadata.json, weights, history.csv, metrics.json, config.json)`);
  } else {
    log(
      `Stopped after epoch ${(result.history.at(-1)?.epoch ?? -1) + 1}; the checkpoint is in ${checkpointDir}. Resume with the same command plus --resume.`,
    );
  }
  return {
    model,
    history: result.history,
    bestValAcc: result.bestValAcc,
    bestEpoch: result.bestEpoch,
    test,
    timing,
    stopped: result.stopped,
    out: path.resolve(options.out),
    skipped,
  };
}

/** Each skipped file once (train, val and test scans may each list it). */
export function uniqueSkips(list: Skipped[]): Skipped[] {
  const seen = new Set<string>();
  return list.filter((s) => !seen.has(s.path) && (seen.add(s.path), true));
}
