/**
 * `boat train --recipe two-stage`: transfer learning as fastai's `fine_tune` does it, in one command.
 *
 * Stage 1 trains the head alone on cached backbone features (the backbone runs once per image), at the
 * rate the learning-rate finder suggests, with a one-cycle schedule. Stage 2 then trains the whole network
 * from that head with BatchNorm frozen (it keeps normalising with ImageNet's statistics, which the
 * head's inputs were computed with), discriminative rates per ResNet stage, and a warm-up schedule, at
 * half stage 1's rate (fastai halves it too). The best val epoch of each stage is kept; if stage 2's best
 * is below stage 1's on val, stage 1's model is the result.
 *
 * Each stage has its own checkpoint (<out>.stage1.checkpoint, <out>.checkpoint), so --resume continues
 * either; everything random is a function of (seed, epoch, step), so a resumed run ends where an
 * uninterrupted one does.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../engine/tf';

import { skippedLines, type Skipped } from '../data/scan';
import { EvaluationResult, evaluateModel, metricsOf, misclassifiedOf } from '../evaluate/evaluate';
import { formatMetrics, Metrics } from '../evaluate/metrics';
import { DataLoader, evalTransforms, ImageFolder, trainTransforms, type RandAugmentOptions } from '../images';
import { balancedClassWeights, BoatModel, checkClassesMatch, createBoatModel, saveBoatModel } from '../model';
import { selectBackend } from '../engine';
import { displayPath, recoverInterruptedSave, toCsv, UserError } from '../util';
import { uniqueSkips, withOutputLock } from './experiment';
import { FeatureRun, FeatureSet } from './features';
import { fineTunePasses } from './micro-batches';
import { findLearningRate, LrFinderResult } from './lr-finder';
import { MixingOptions, mixingLine, mixingOn, resolveMixing } from './mixing';
import { checkRandAugment, randAugmentLine } from './rand-augment';
import { terminalProgress, ProgressSink } from './progress';
import { groupMultipliers, RateGroup, stageRateMultipliers } from './rates';
import { runSettings } from './run-settings';
import { LrSchedule, ScheduleKind } from './schedule';
import { checkLabelSmoothing, labelSmoothingLine } from './smoothing';
import { FeatureSource, LoaderSource, SizedSource } from './sources';
import { checkpointSettings, checkResumeSettings, HistoryRow, resumeSettings, trainModel, TrainOptions } from './train';

export const RECIPES = ['two-stage'] as const;
export type Recipe = (typeof RECIPES)[number];

/** The recipe's defaults: fastai's fine_tune where it has one (lr_mult, pct_start, div), else as documented. */
export const TWO_STAGE_DEFAULTS = {
  headEpochs: 10,
  epochs: 3,
  lrMult: 100,
  /**
   * Stage 2's peak rate for the head is stage 1's rate times this. fastai's fine_tune halves it; on the real
   * photos 0.5 put stage 2 well below stage 1 on val, and of 0.1 and 0.02 (two seeds each) 0.1 scored higher
   * on val (docs/training.md).
   */
  lrFactor: 0.1,
  /**
   * Both stages' input size. On the real photos the whole recipe at 320 px kept a higher val accuracy than at
   * 224 on both datasets (five seeds each, docs/training.md), at about twice stage 2's time.
   */
  inputSize: 320,
  schedule: 'one-cycle' as ScheduleKind,
  pctStart: 0.3,
  div: 5,
  finderSteps: 100,
  momentum: 0.9,
};

/** Stage 1's schedule: fastai's fit_one_cycle defaults (many cheap epochs on cached features). */
export const STAGE1_SCHEDULE: LrSchedule = { kind: 'one-cycle', pctStart: 0.25, div: 25, divFinal: 1e5 };
const DIV_FINAL = 1e5;

export interface TwoStageOptions {
  data: string;
  out: string;
  seed?: number;
  /** Stage 2's epochs. */
  epochs?: number;
  /** Stage 1's epochs (the head on cached features). */
  headEpochs?: number;
  batchSize?: number;
  /** Stage 2: micro-batches per step (default: as needed for the wasm heap). */
  accumulate?: number;
  /** Stage 1's input size, and stage 2's unless stage2Sizes is given (default TWO_STAGE_DEFAULTS.inputSize). */
  inputSize?: number;
  /**
   * Progressive resizing: stage 2's input size per epoch (e.g. [224, 224, 320]); their number is stage 2's
   * epochs. The saved model takes the size of the epoch it keeps (stage 1's size when stage 1 is kept).
   */
  stage2Sizes?: number[];
  cacheDir?: string;
  /** Stage 1: augmented views of the training set to cache (0: the eval transform only). */
  views?: number;
  balanceClasses?: boolean;
  /** Label smoothing of both stages' training loss (TrainOptions.labelSmoothing); default 0, off. */
  labelSmoothing?: number;
  /** Stage 2's MixUp α (TrainOptions.mixupAlpha); stage 1 trains on cached features, which cannot be mixed. */
  mixupAlpha?: number;
  /** Stage 2's CutMix α (TrainOptions.cutmixAlpha), likewise. */
  cutmixAlpha?: number;
  /** Stage 2: RandAugment on each training crop (off when unset); stage 1 trains on cached features. */
  randAugment?: RandAugmentOptions;
  /** Stage 2: the earliest stage trains at lr / lrMult. */
  lrMult?: number;
  /** Stage 2's peak rate (the head's) is stage 1's times this. */
  lrFactor?: number;
  schedule?: ScheduleKind;
  pctStart?: number;
  div?: number;
  /** Steps of the learning-rate finder. */
  finderSteps?: number;
  resume?: boolean;
  /** One sink for both stages, or one made per stage (a notebook shows each stage in its own display). */
  progress?: ProgressSink | ((stage: 1 | 2, epochs: number) => ProgressSink);
  log?: (line: string) => void;
  shouldStop?: () => boolean;
  /** After each epoch's checkpoint; `epoch` counts from 0 within its stage. */
  onCheckpoint?: (stage: 1 | 2, epoch: number) => void;
}

export interface StageSummary {
  valAcc: number;
  /** Best epoch within the stage, from 0. */
  bestEpoch: number;
  /** Test accuracy of the stage's best model (when data/test exists and the stage finished). */
  testAcc?: number;
  /** Peak rate (stage 2: the head's). */
  lr: number;
  seconds: number;
}

export interface TwoStageResult {
  model: BoatModel;
  stage1: StageSummary;
  stage2?: StageSummary;
  /** Which stage's model was saved. */
  kept?: 'stage1' | 'stage2';
  /** The kept model's test metrics. */
  test?: Metrics;
  recipe: Record<string, unknown>;
  history: Array<HistoryRow & { stage: 1 | 2 }>;
  /** Seconds spent computing backbone features for stage 1 (0 when all came from the cache). */
  featureSeconds: number;
  stopped: boolean;
  out: string;
  skipped: Skipped[];
}

export async function runTwoStage(options: TwoStageOptions): Promise<TwoStageResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  return withOutputLock(options.data, options.out, log, () => runLocked(options, log));
}

function stageProgress(progress: TwoStageOptions['progress'], stage: 1 | 2, epochs: number): ProgressSink {
  if (progress === undefined) return terminalProgress(epochs);
  return typeof progress === 'function' ? progress(stage, epochs) : progress;
}

/** The checkpoint folders: stage 1's, and stage 2's (the place a plain `boat train` uses). */
export function twoStageCheckpoints(out: string): { stage1: string; stage2: string } {
  const base = path.resolve(out);
  return { stage1: `${base}.stage1.checkpoint`, stage2: `${base}.checkpoint` };
}

const hasState = (dir: string): boolean => fs.existsSync(path.join(dir, 'state.json'));

/** True when a recipe run into `out` left a checkpoint that `resume` can continue. */
export function hasTwoStageCheckpoint(out: string): boolean {
  return hasState(twoStageCheckpoints(out).stage1);
}

async function runLocked(options: TwoStageOptions, log: (line: string) => void): Promise<TwoStageResult> {
  const started = Date.now();
  const o = { ...TWO_STAGE_DEFAULTS, ...definedOnly(options) };
  const stage2Sizes = options.stage2Sizes;
  if (stage2Sizes !== undefined) {
    checkStage2Sizes(stage2Sizes);
    if (options.epochs !== undefined && options.epochs !== stage2Sizes.length)
      throw new UserError(
        `--stage2-sizes gives ${stage2Sizes.length} sizes (one per stage 2 epoch) but --epochs is ${options.epochs}: leave --epochs out, or give as many sizes`,
      );
    o.epochs = stage2Sizes.length;
  }
  const seed = options.seed ?? 0;
  const batchSize = options.batchSize ?? 32;
  const views = options.views ?? 0;
  const labelSmoothing = options.labelSmoothing ?? 0;
  checkLabelSmoothing(labelSmoothing);
  const mixing = resolveMixing(options);
  const randAugment = checkRandAugment(options.randAugment);
  const schedule2: LrSchedule = { kind: o.schedule, pctStart: o.pctStart, div: o.div, divFinal: DIV_FINAL };
  const trainDir = path.join(options.data, 'train');
  const valDir = path.join(options.data, 'val');
  const testDir = path.join(options.data, 'test');
  const hasTest = fs.existsSync(testDir);
  const checkpoints = twoStageCheckpoints(options.out);
  recoverInterruptedSave(checkpoints.stage1);
  recoverInterruptedSave(checkpoints.stage2);
  if (options.resume && !hasState(checkpoints.stage1))
    throw new UserError(`nothing to resume: no checkpoint in ${checkpoints.stage1}`);

  const backend = await selectBackend();
  log(backend.line);
  const trainFolder = new ImageFolder(trainDir, evalTransforms());
  const valFolder = new ImageFolder(valDir, evalTransforms());
  const classes = trainFolder.classes;
  checkClassesMatch(classes, valFolder.classes, valDir);
  const classWeights = options.balanceClasses
    ? balancedClassWeights(
        trainFolder.samples.map((s) => s.label),
        classes.length,
      )
    : undefined;
  const model = await createBoatModel({ classes, mode: 'feature-extractor', inputSize: o.inputSize, seed });
  // Stage 1's weights, by variable: a backbone's weight order changes with its trainable flag.
  const snapshot: Array<{ weight: tf.LayerVariable; value: tf.Tensor }> = [];
  try {
    const { preprocessing: pre, inputSize: size } = model.info;
    // Stage 2: One size throughout unless progressive resizing gives one per epoch.
    const sizes2 = stage2Sizes ?? Array.from({ length: o.epochs }, () => size);
    const folders = [trainFolder, valFolder];
    const shared = {
      recipe: 'two-stage',
      'head-epochs': o.headEpochs,
      'finder-steps': o.finderSteps,
      'lr-mult': o.lrMult,
      'lr-factor': o.lrFactor,
    };
    // Stage 1's settings; the rate (and the finder's record) comes from its checkpoint on --resume.
    const settings1Base = {
      ...runSettings({
        mode: 'feature-extractor',
        batchSize,
        folders,
        model,
        views,
        unfreezeStages: null,
        freezeBatchNorm: false,
      }),
      ...shared,
    };
    const resume1 = options.resume === true;
    const stage1Options = (lr: number, settings: Record<string, unknown>): TrainOptions => ({
      epochs: o.headEpochs,
      lr,
      momentum: o.momentum,
      schedule: STAGE1_SCHEDULE,
      seed,
      classWeights,
      labelSmoothing,
      checkpointDir: checkpoints.stage1,
      resume: resume1,
      settings,
    });
    let finder: Record<string, unknown> | undefined;
    let lr1: number | undefined;
    if (resume1) {
      const saved = checkpointSettings(checkpoints.stage1);
      if (typeof saved.lr === 'number' && saved['lr-finder'] && typeof saved['lr-finder'] === 'object') {
        lr1 = saved.lr;
        finder = saved['lr-finder'] as Record<string, unknown>;
      } else {
        throw new UserError(`cannot resume from ${checkpoints.stage1}: it is not a two-stage recipe's checkpoint`);
      }
      const check: TrainOptions = stage1Options(lr1, { ...settings1Base, 'lr-finder': finder });
      checkResumeSettings(checkpoints.stage1, resumeSettings(check));
    }

    const progress1 = stageProgress(options.progress, 1, o.headEpochs);
    const features = new FeatureRun(model, {
      cacheDir: options.cacheDir ?? path.resolve('.cache', 'features'),
      seed,
      log,
      onProgress: (done, total) => progress1.batch({ epoch: -1, phase: 'train', done, total, seconds: 0 }),
    });
    const datasets = features.datasets;
    if (labelSmoothing > 0) log(labelSmoothingLine(labelSmoothing, classes.length));
    log(`Stage 1: the head on cached backbone features, ${o.headEpochs} epochs`);
    const trainViews =
      views > 0
        ? await Promise.all(
            Array.from({ length: views }, (_, v) =>
              features.extract(trainDir, `train view ${v + 1}/${views}`, true, v),
            ),
          )
        : [await features.extract(trainDir, 'train', false, 0)];
    const featureTrain = new FeatureSource(trainViews, batchSize, true, seed);
    const featureVal = new FeatureSource([await features.extract(valDir, 'val', false, 0)], batchSize, false, seed);
    // Test features now, while the backbone is still the pretrained one that keys the cache.
    const testFeatures = hasTest ? await features.extract(testDir, 'test', false, 0) : undefined;

    if (lr1 === undefined) {
      // On the plain loss, as with class weights: the rate it picks is then the same with or without smoothing.
      const found = await findLearningRate(model, featureTrain, { steps: o.finderSteps, momentum: o.momentum });
      lr1 = found.suggestedLr;
      finder = finderRecord(found, o.finderSteps);
      log(
        `learning-rate finder: loss lowest at ${found.minLossLr.toExponential(2)}, so stage 1 peaks at ${lr1.toExponential(2)} (that / 10)${found.diverged ? '' : '; the loss never diverged within the sweep, so the suggestion may be high'}`,
      );
    } else {
      log(`stage 1 rate ${lr1.toExponential(2)}, found by the learning-rate finder of the run being resumed`);
    }
    const settings1 = { ...settings1Base, 'lr-finder': finder };
    const stage1Done = resume1 && stageFinished(checkpoints.stage1, o.headEpochs);
    if (resume1) log(`Resuming stage 1 from ${checkpoints.stage1}`);
    const r1 = await trainModel(
      model,
      { train: featureTrain, val: featureVal },
      {
        ...stage1Options(lr1, settings1),
        onBatch: (info) => progress1.batch(info),
        onPhase: (row) => progress1.phase(row),
        onCheckpoint: (epoch) => options.onCheckpoint?.(1, epoch),
        shouldStop: options.shouldStop,
      },
    );
    const history: Array<HistoryRow & { stage: 1 | 2 }> = r1.history.map((r) => ({ ...r, stage: 1 }));
    const stage1: StageSummary = {
      valAcc: r1.bestValAcc,
      bestEpoch: r1.bestEpoch,
      lr: lr1,
      seconds: r1.seconds,
      testAcc: testFeatures && !r1.stopped ? await headAccuracy(model, testFeatures, batchSize) : undefined,
    };
    const multipliers = groupMultipliers(o.lrMult);
    const lr2 = lr1 * o.lrFactor;
    const recipe = resolvedRecipe({
      o,
      lr1,
      lr2,
      finder: finder!,
      schedule2,
      multipliers,
      batchSize,
      inputSize: size,
      stage2Sizes: sizes2,
      views,
      classWeights: classWeights !== undefined,
      labelSmoothing,
      mixing,
      randAugment,
    });
    const skippedOf = (): Skipped[] => uniqueSkips(datasets.flatMap((d) => d.skipped));
    const result = (rest: Pick<TwoStageResult, 'stopped'> & Partial<TwoStageResult>): TwoStageResult => ({
      model,
      stage1,
      recipe,
      history,
      featureSeconds: features.seconds,
      out: path.resolve(options.out),
      skipped: skippedOf(),
      ...rest,
    });
    if (r1.stopped) {
      log(
        `Stopped in stage 1; the checkpoint is in ${checkpoints.stage1}. Resume with the same command plus --resume.`,
      );
      return result({ stopped: true });
    }
    log(
      `Stage 1 done: best val acc ${stage1.valAcc.toFixed(4)} (epoch ${stage1.bestEpoch + 1})${stage1.testAcc !== undefined ? `, test acc ${stage1.testAcc.toFixed(4)}` : ''}`,
    );

    // Stage 2, from stage 1's best head; its weights are kept aside in case stage 2 ends lower on val.
    for (const weight of model.allWeights()) snapshot.push({ weight, value: weight.read().clone() });
    model.mode = 'finetune';
    model.batchNormFrozen = true;
    const rateMultipliers = stageRateMultipliers(model, o.lrMult);
    const micro = fineTunePasses(batchSize, options.accumulate, backend.name, Math.max(size, ...sizes2), true);
    const progress2 = stageProgress(options.progress, 2, o.epochs);
    const settings2 = {
      ...runSettings({
        mode: 'finetune',
        batchSize,
        folders,
        model,
        views: 0,
        unfreezeStages: null,
        freezeBatchNorm: true,
        randAugment,
      }),
      ...shared,
      'stage1-lr': lr1,
    };
    const options2: TrainOptions = {
      epochs: o.epochs,
      lr: lr2,
      momentum: o.momentum,
      schedule: schedule2,
      rateMultipliers,
      accumulate: micro.accumulate,
      seed,
      classWeights,
      labelSmoothing,
      ...mixing,
      inputSizes: stage2Sizes,
      checkpointDir: checkpoints.stage2,
      // Stage 2's checkpoint continues only a run whose stage 1 had finished before this one began.
      resume: stage1Done && hasState(checkpoints.stage2),
      settings: settings2,
      onCheckpoint: (epoch) => options.onCheckpoint?.(2, epoch),
      shouldStop: options.shouldStop,
    };
    if (options2.resume) checkResumeSettings(checkpoints.stage2, resumeSettings(options2));
    const ratesLine = (['stage1', 'stage5', 'head'] as RateGroup[])
      .map((g) => `${g} ${(lr2 * multipliers[g]).toExponential(2)}`)
      .join(', ');
    log(
      `Stage 2: the whole network, BatchNorm frozen, ${o.epochs} epochs, ${o.schedule} schedule (warm-up ${o.pctStart} from lr/${o.div}); peak rates ${ratesLine} (geometric per stage, lr-mult ${o.lrMult})`,
    );
    if (micro.note) log(micro.note);
    if (mixingOn(mixing)) log(`${mixingLine(mixing)} (stage 2 only: stage 1 trained on cached features)`);
    if (randAugment) log(`${randAugmentLine(randAugment)} (stage 2 only)`);
    if (stage2Sizes) log(`Progressive resizing: stage 2's epochs at ${stage2Sizes.join(', ')} px`);
    if (options2.resume) log(`Resuming stage 2 from ${checkpoints.stage2}`);
    const trainBySize = new Map<number, LoaderSource>();
    const valBySize = new Map<number, LoaderSource>();
    for (const s of new Set(sizes2)) {
      const trainSet = new ImageFolder(trainDir, trainTransforms(pre, s, randAugment));
      const valSet = new ImageFolder(valDir, evalTransforms(pre, s));
      datasets.push(trainSet, valSet);
      trainBySize.set(s, new LoaderSource(new DataLoader(trainSet, { batchSize: micro.size, shuffle: true, seed })));
      valBySize.set(s, new LoaderSource(new DataLoader(valSet, { batchSize: micro.size, seed })));
    }
    const r2 = await trainModel(
      model,
      { train: new SizedSource(trainBySize, sizes2), val: new SizedSource(valBySize, sizes2) },
      { ...options2, onBatch: (info) => progress2.batch(info), onPhase: (row) => progress2.phase(row) },
    );
    history.push(...r2.history.map((r) => ({ ...r, stage: 2 as const })));
    const stage2: StageSummary = { valAcc: r2.bestValAcc, bestEpoch: r2.bestEpoch, lr: lr2, seconds: r2.seconds };
    if (r2.stopped) {
      log(
        `Stopped in stage 2; the checkpoints are in ${checkpoints.stage1} and ${checkpoints.stage2}. Resume with the same command plus --resume.`,
      );
      return result({ stage2, stopped: true });
    }
    // --epochs 0: stage 1 alone (its model is kept below, as when stage 2 ends lower).
    const trained2 = r2.history.length > 0;
    const evaluations: Skipped[] = [];
    let test: Metrics | undefined;
    let testEvaluation: EvaluationResult | undefined;
    if (hasTest && trained2) {
      const evaluation = await evaluateModel(model, testDir);
      evaluations.push(...evaluation.skipped);
      test = metricsOf(evaluation);
      testEvaluation = evaluation;
      stage2.testAcc = test.accuracy;
    }
    if (trained2)
      log(
        `Stage 2 done: best val acc ${stage2.valAcc.toFixed(4)} (epoch ${stage2.bestEpoch + 1})${stage2.testAcc !== undefined ? `, test acc ${stage2.testAcc.toFixed(4)}` : ''}`,
      );
    let kept: 'stage1' | 'stage2' = 'stage2';
    if (stage2.valAcc < stage1.valAcc) {
      kept = 'stage1';
      for (const { weight, value } of snapshot) weight.write(value);
      model.batchNormFrozen = false;
      model.mode = 'feature-extractor';
      model.setInputSize(size);
      // Every weight is back to stage 1's, the backbone the pretrained one: it is saved and cached as such.
      model.backboneChanged = false;
      log(
        trained2
          ? `Stage 2's best val acc ${stage2.valAcc.toFixed(4)} is below stage 1's ${stage1.valAcc.toFixed(4)}: keeping stage 1's model`
          : "Stage 2 trained no epochs (--epochs 0): keeping stage 1's model",
      );
      if (hasTest) {
        testEvaluation = await evaluateModel(model, testDir);
        test = metricsOf(testEvaluation);
      }
    } else {
      log(`Keeping stage 2's model (val ${stage2.valAcc.toFixed(4)} ≥ stage 1's ${stage1.valAcc.toFixed(4)})`);
    }
    recipe.kept = kept;
    if (test) log(`Test: ${formatMetrics(test).split('\n')[0]}`);
    const skipped = uniqueSkips([...skippedOf(), ...evaluations]);
    for (const line of skippedLines(skipped, 20, ' (listed in metrics.json)')) log(line);

    const keptStage = kept === 'stage1' ? stage1 : stage2;
    const totalSeconds = (Date.now() - started) / 1000 + r1.secondsBefore + r2.secondsBefore;
    const metrics = {
      best_val_acc: keptStage.valAcc,
      best_epoch: keptStage.bestEpoch,
      test_acc: test?.accuracy ?? null,
      test,
      test_misclassified: testEvaluation ? misclassifiedOf(testEvaluation, options.data) : undefined,
      kept,
      stages: {
        stage1: stageJson(stage1),
        stage2: stageJson(stage2),
      },
      recipe,
      timing: {
        extractSeconds: features.seconds,
        stage1Seconds: r1.seconds,
        stage2Seconds: r2.seconds,
        trainSeconds: r1.seconds + r2.seconds,
        totalSeconds,
      },
      backend: backend.line,
      skipped,
    };
    const config = {
      ...options,
      progress: undefined,
      log: undefined,
      shouldStop: undefined,
      onCheckpoint: undefined,
      mode: model.mode,
      recipe,
      classWeights,
      labelSmoothing,
      ...mixing,
      classes,
      backend: backend.name,
      precision: backend.precision,
      checkpointDir: checkpoints.stage2,
      stage1CheckpointDir: checkpoints.stage1,
      weights: model.info,
    };
    await saveBoatModel(
      model,
      options.out,
      metrics,
      `two-stage recipe (${kept === 'stage2' ? 'stage 2: the whole network' : 'stage 1: the head on the pretrained backbone'})`,
      {
        'history.csv': toCsv(
          ['stage', 'epoch', 'phase', 'loss', 'acc', 'lr', 'seconds', 'images_per_second'],
          history.map((r) => [r.stage, r.epoch, r.phase, r.loss, r.acc, r.lr, r.seconds, r.imagesPerSecond]),
        ),
        'metrics.json': JSON.stringify(metrics, null, 2) + '\n',
        'config.json': JSON.stringify(config, null, 2) + '\n',
      },
    );
    log(`Saved ${displayPath(options.out)} (metadata.json, weights, history.csv, metrics.json, config.json)`);
    return result({ stage2, kept, test, stopped: false, skipped });
  } catch (err) {
    model.dispose();
    throw err;
  } finally {
    tf.dispose(snapshot.map((s) => s.value));
  }
}

/** Each size an integer of at least 32, as --input-size. */
function checkStage2Sizes(sizes: number[]): void {
  if (sizes.length === 0) throw new UserError('--stage2-sizes needs at least one size');
  const bad = sizes.find((s) => !Number.isInteger(s) || s < 32);
  if (bad !== undefined) throw new UserError(`--stage2-sizes: each size must be an integer of at least 32, got ${bad}`);
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** True when the checkpoint holds `epochs` finished epochs (a resume of it trains nothing more). */
function stageFinished(dir: string, epochs: number): boolean {
  try {
    const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as { epoch?: number };
    return typeof state.epoch === 'number' && state.epoch + 1 >= epochs;
  } catch {
    return false;
  }
}

/** Accuracy of the head on cached features (stage 1's test score, without running the backbone again). */
async function headAccuracy(model: BoatModel, set: FeatureSet, batchSize: number): Promise<number> {
  let correct = 0;
  for await (const { x, y } of new FeatureSource([set], batchSize, false, 0).batches(0)) {
    const hits = tf.tidy(() => tf.sum(tf.equal(tf.argMax(model.forwardHead(x as tf.Tensor2D), 1).toInt(), y).toInt()));
    correct += (await hits.data())[0];
    tf.dispose([hits, x, y]);
  }
  return correct / Math.max(1, set.labels.length);
}

function finderRecord(found: LrFinderResult, steps: number): Record<string, unknown> {
  return {
    steps,
    'min-loss-lr': found.minLossLr,
    'suggested-lr': found.suggestedLr,
    diverged: found.diverged,
    rule: 'the rate at the smoothed loss minimum / 10',
  };
}

function stageJson(s: StageSummary): Record<string, unknown> {
  // A stage that trained no epoch has no val accuracy (the loop reports -1).
  const trained = s.bestEpoch >= 0;
  return {
    val_acc: trained ? s.valAcc : null,
    best_epoch: trained ? s.bestEpoch : null,
    test_acc: s.testAcc ?? null,
    lr: s.lr,
    seconds: s.seconds,
  };
}

function resolvedRecipe(input: {
  o: typeof TWO_STAGE_DEFAULTS;
  lr1: number;
  lr2: number;
  finder: Record<string, unknown>;
  schedule2: LrSchedule;
  multipliers: Record<RateGroup, number>;
  batchSize: number;
  inputSize: number;
  stage2Sizes: number[];
  views: number;
  classWeights: boolean;
  labelSmoothing: number;
  mixing: MixingOptions;
  randAugment?: RandAugmentOptions;
}): Record<string, unknown> {
  const { o, lr1, lr2, finder, schedule2, multipliers } = input;
  return {
    name: 'two-stage',
    stage1: {
      trains: 'the head, on cached backbone features',
      epochs: o.headEpochs,
      optimizer: 'sgd',
      momentum: o.momentum,
      lr: lr1,
      lr_from: 'learning-rate finder',
      lr_finder: finder,
      schedule: STAGE1_SCHEDULE,
      views: input.views,
      input_size: input.inputSize,
    },
    stage2: {
      trains: 'the whole network, BatchNorm frozen',
      epochs: o.epochs,
      optimizer: 'sgd',
      momentum: o.momentum,
      lr: lr2,
      lr_from: `stage 1's rate x ${o.lrFactor}`,
      lr_factor: o.lrFactor,
      lr_mult: o.lrMult,
      rates: Object.fromEntries(Object.entries(multipliers).map(([g, k]) => [g, lr2 * k])),
      schedule: schedule2,
      input_sizes: input.stage2Sizes,
      mixup_alpha: input.mixing.mixupAlpha,
      cutmix_alpha: input.mixing.cutmixAlpha,
      rand_augment: input.randAugment
        ? { num_ops: input.randAugment.numOps, magnitude: input.randAugment.magnitude }
        : null,
    },
    batch_size: input.batchSize,
    class_weights: input.classWeights ? 'balanced' : 'none',
    label_smoothing: input.labelSmoothing,
    kept: null,
  };
}
