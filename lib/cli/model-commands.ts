import * as fs from 'node:fs';
import * as path from 'node:path';

import { Command, Option } from 'commander';

import {
  annotatePrediction,
  evaluateModel,
  EvaluationResult,
  formatMetrics,
  metricsOf,
  predictImage,
} from '../evaluate';
import { isExportFolder, loadAnyModel } from '../export';
import { formatConfused, mostConfused, topLosses, topLossesLines, topLossesPng } from '../explain';
import { readModelMetadata, saveBoatModel, TRAINING_MODES, TrainingMode } from '../model';
import { selectBackend } from '../engine';
import { resizeFor } from '../images';
import { confusionMatrixPng } from '../plot/confusion';
import {
  checkRandAugment,
  makeSoup,
  Recipe,
  RECIPES,
  resolveMixing,
  runExperiment,
  runTwoStage,
  SCHEDULE_KINDS,
  ScheduleKind,
  SoupRecipe,
  TWO_STAGE_DEFAULTS,
} from '../train';
import {
  distinctOutputNames,
  errorLine,
  requireWritableDirectory,
  UserError,
  writeFileAtomic,
  writeJsonAtomic,
} from '../util';
import { crashTestAfterEpoch } from '../util/test-hooks';
import {
  atLeastOne,
  belowOne,
  fraction,
  integer,
  nonNegativeInteger,
  nonNegativeNumber,
  positiveInteger,
  positiveNumber,
  randAugmentPair,
  sizeList,
  unfreezeStages,
  precisionOption,
  usePrecisionFlag,
} from './options';
import { required } from './program';
import { printSkipped } from './data-commands';

export function registerModelCommands(program: Command): void {
  program
    .command('train')
    .description(
      "train ResNet50 + the tutorial's head; the best epoch by val accuracy is saved to --out, with a checkpoint beside it for --resume",
    )
    .addOption(
      new Option(
        '--mode <mode>',
        'fine-tune the network, or train the head on a frozen backbone (required, unless --recipe)',
      ).choices(TRAINING_MODES),
    )
    .addOption(
      new Option(
        '--recipe <name>',
        'two-stage: the head on cached features at the rate the lr finder picks, then the whole network with BatchNorm frozen, per-stage rates and warm-up (docs/training.md)',
      ).choices(RECIPES),
    )
    .option('--data <dir>', 'folder holding train/, val/ and optionally test/', 'data')
    .addOption(required(new Option('--out <dir>', 'where the model goes, e.g. models/NAME')))
    .option(
      '--epochs <n>',
      `epochs (with --resume: the total to reach; two-stage: stage 2's, default ${TWO_STAGE_DEFAULTS.epochs})`,
      nonNegativeInteger,
      24,
    )
    .option('--resume', 'continue from the checkpoint in <out>.checkpoint')
    .option('--seed <n>', 'random seed (data order, augmentation, dropout, head initialisation)', integer, 0)
    .option('--batch-size <n>', 'images per step', positiveInteger, 32)
    .option(
      '--accumulate <k>',
      'split each batch into k accumulated micro-batches (default: as needed to fit the wasm heap when fine-tuning)',
      positiveInteger,
    )
    .option('--lr <x>', 'learning rate (StepLR: x0.1 every 7 epochs)', positiveNumber, 0.001)
    .addOption(
      new Option('--optimizer <name>', "SGD with momentum 0.9 (the tutorial's) or Adam")
        .choices(['sgd', 'adam'])
        .default('sgd'),
    )
    .option(
      '--views <k>',
      'feature extractor: augmented views of the training set to cache (0: the eval transform only)',
      nonNegativeInteger,
      0,
    )
    .option(
      '--input-size <n>',
      `crop size in pixels (default: 224, or the --init model's; two-stage: ${TWO_STAGE_DEFAULTS.inputSize})`,
      integer,
    )
    .option('--cache <dir>', 'feature cache (feature extractor)', '.cache/features')
    .option(
      '--unfreeze <n>',
      "fine-tune only the last n of ResNet50's 5 stages (default: the whole network)",
      unfreezeStages,
    )
    .addOption(
      new Option('--class-weights <kind>', 'weight the loss by balanced class weights, for unbalanced data')
        .choices(['none', 'balanced'])
        .default('none'),
    )
    .option(
      '--label-smoothing <x>',
      "train on targets (1-x)·one-hot + x/classes, as PyTorch's CrossEntropyLoss(label_smoothing=x); both stages of --recipe; val loss stays plain (0: off)",
      belowOne,
      0,
    )
    .option(
      '--mixup-alpha <a>',
      "fine-tune: blend each training image with the previous one in its batch, λ ~ Beta(a, a), the loss λ·NLL(y) + (1-λ)·NLL(y'), as torchvision's transforms.v2.MixUp; stage 2 only of --recipe (0: off)",
      nonNegativeNumber,
      0,
    )
    .option(
      '--cutmix-alpha <a>',
      "fine-tune: paste a box of the previous image in the batch over each training image (1-λ of its area, λ ~ Beta(a, a)), as torchvision's transforms.v2.CutMix; with --mixup-alpha, one of the two per batch; stage 2 only of --recipe (0: off)",
      nonNegativeNumber,
      0,
    )
    .option(
      '--rand-augment <n,m>',
      "fine-tune: torchvision's RandAugment on every training crop, n of its 14 operations per image at magnitude m of 0-30, e.g. 2,9 (its defaults); stage 2 only of --recipe (default: off)",
      randAugmentPair,
    )
    .option('--init <dir>', "start from a saved model's weights instead of ImageNet's and a fresh head")
    .option(
      '--freeze-bn',
      'fine-tune: BatchNorm keeps normalising with its moving statistics, which it keeps (gamma and beta train)',
    )
    .option(
      '--head-epochs <n>',
      `two-stage: stage 1's epochs (the head on cached features; default ${TWO_STAGE_DEFAULTS.headEpochs})`,
      positiveInteger,
    )
    .option(
      '--lr-mult <x>',
      `two-stage: ResNet's first stage trains at lr/x, the head at lr, geometric in between (default ${TWO_STAGE_DEFAULTS.lrMult})`,
      atLeastOne,
    )
    .option(
      '--lr-factor <x>',
      `two-stage: stage 2's peak rate (the head's) is stage 1's times x (default ${TWO_STAGE_DEFAULTS.lrFactor}, chosen on val; fastai's is 0.5)`,
      positiveNumber,
    )
    .addOption(
      new Option('--schedule <kind>', `two-stage: stage 2's schedule (default ${TWO_STAGE_DEFAULTS.schedule})`).choices(
        SCHEDULE_KINDS,
      ),
    )
    .option(
      '--pct-start <x>',
      `two-stage: share of stage 2 spent warming up (default ${TWO_STAGE_DEFAULTS.pctStart})`,
      fraction,
    )
    .option('--div <x>', `two-stage: stage 2 warms up from lr/x (default ${TWO_STAGE_DEFAULTS.div})`, atLeastOne)
    .option(
      '--stage2-sizes <list>',
      "two-stage: progressive resizing, stage 2's input size per epoch, e.g. 224,224,320 (as many as its epochs; stage 1 stays at --input-size)",
      sizeList,
    )
    .addOption(precisionOption())
    .hook('preAction', usePrecisionFlag)
    .action(trainCommand);
  program
    .command('evaluate')
    .description('accuracy, confusion matrix (text and PNG), per-class scores, most confused pairs and top losses')
    .addOption(required(new Option('--model <dir>', 'a model saved by boat train or boat soup')))
    .option('--data <dir>', 'an ImageFolder of class folders', 'data/test')
    .option('--out <dir>', 'where metrics.json, predictions.csv and the PNGs go (default: <model>/evaluation)')
    .option('--tta', 'also evaluate with test-time augmentation (centre, mirror, 4 corners) and report the change')
    .option('--top-losses <n>', 'the n most confidently wrong images to list and draw', nonNegativeInteger, 9)
    .option(
      '--input-size <n>',
      'rebuild the network for n px crops (Resize(round(n*256/224)) + CenterCrop(n)) whatever size it was trained at',
      integer,
    )
    .addOption(precisionOption())
    .hook('preAction', usePrecisionFlag)
    .action(evaluateCommand);
  program
    .command('predict')
    .description('the top classes for each image, optionally drawn on the photo')
    .argument('<image...>', 'image files')
    .addOption(required(new Option('--model <dir>', 'a model saved by boat train or boat soup')))
    .option('--top <k>', 'classes to list per image', positiveInteger, 3)
    .option('--json', 'print the results as JSON only')
    .option('--png <dir>', 'also write each photo annotated with its prediction (<name>.prediction.png)')
    .addOption(precisionOption())
    .hook('preAction', usePrecisionFlag)
    .action(predictCommand);
  program
    .command('soup')
    .description(
      'average the weights of models fine-tuned from the same start into one model (model soup); writes the model and soup.json',
    )
    .argument('<model...>', 'model folders to average')
    .addOption(required(new Option('--out <dir>', 'where the soup goes, e.g. models/NAME (a new folder)')))
    .option('--data <dir>', 'val data that scores the ingredients', 'data/val')
    .addOption(
      new Option('--recipe <recipe>', 'uniform: average all; greedy: add a model only if val accuracy does not drop')
        .choices(['greedy', 'uniform'])
        .default('greedy'),
    )
    .action(soupCommand);
}

export interface TrainFlags {
  mode?: TrainingMode;
  recipe?: Recipe;
  headEpochs?: number;
  lrMult?: number;
  lrFactor?: number;
  schedule?: ScheduleKind;
  pctStart?: number;
  div?: number;
  stage2Sizes?: number[];
  data: string;
  out: string;
  epochs: number;
  resume?: boolean;
  seed: number;
  batchSize: number;
  accumulate?: number;
  lr: number;
  optimizer: 'sgd' | 'adam';
  views: number;
  inputSize?: number;
  cache: string;
  unfreeze?: number;
  classWeights: 'none' | 'balanced';
  labelSmoothing?: number;
  mixupAlpha?: number;
  cutmixAlpha?: number;
  randAugment?: { numOps: number; magnitude: number };
  init?: string;
  freezeBn?: boolean;
}

/** Flags that only the two-stage recipe reads, and flags it decides itself (so refuses). */
const RECIPE_ONLY = ['headEpochs', 'lrMult', 'lrFactor', 'schedule', 'pctStart', 'div', 'stage2Sizes'] as const;
const RECIPE_DECIDES = ['mode', 'lr', 'optimizer', 'init', 'unfreeze', 'freezeBn'] as const;

const flagName = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

export async function trainCommand(flags: TrainFlags, command?: Command): Promise<void> {
  // Given on the command line (not a default): commander knows; in-process callers pass no command.
  const given = (key: string): boolean =>
    command
      ? command.getOptionValueSource(key) === 'cli'
      : (flags as unknown as Record<string, unknown>)[key] !== undefined;
  if (flags.recipe !== undefined) {
    const decided = RECIPE_DECIDES.filter(given);
    if (decided.length > 0)
      throw new UserError(
        `--recipe ${flags.recipe} chooses ${decided.map(flagName).join(', ')} itself; leave ${decided.length > 1 ? 'them' : 'it'} out`,
      );
    return twoStageCommand(flags, given('epochs') ? flags.epochs : undefined);
  }
  const recipeOnly = RECIPE_ONLY.filter((k) => flags[k] !== undefined);
  if (recipeOnly.length > 0)
    throw new UserError(`${recipeOnly.map(flagName).join(', ')} applies to --recipe two-stage only`);
  if (flags.mode === undefined)
    throw new UserError('--mode is required (feature-extractor or finetune), unless --recipe two-stage is given');
  const mode = flags.mode;
  if (flags.unfreeze !== undefined && mode !== 'finetune')
    throw new UserError('--unfreeze applies to --mode finetune only');
  if (flags.freezeBn === true && mode !== 'finetune')
    throw new UserError('--freeze-bn applies to --mode finetune only');
  // Before the output is locked or anything loads; runExperiment checks the same for library callers.
  resolveMixing(flags, mode);
  checkRandAugment(flags.randAugment, mode);
  const result = await withInterrupt((interrupted) =>
    runExperiment({
      mode,
      data: flags.data,
      out: flags.out,
      epochs: flags.epochs,
      resume: flags.resume === true,
      seed: flags.seed,
      batchSize: flags.batchSize,
      accumulate: flags.accumulate,
      lr: flags.lr,
      optimizer: flags.optimizer,
      views: flags.views,
      inputSize: flags.inputSize,
      unfreezeStages: flags.unfreeze,
      balanceClasses: flags.classWeights === 'balanced',
      labelSmoothing: flags.labelSmoothing,
      mixupAlpha: flags.mixupAlpha,
      cutmixAlpha: flags.cutmixAlpha,
      randAugment: flags.randAugment,
      init: flags.init,
      freezeBatchNorm: flags.freezeBn === true,
      cacheDir: flags.cache,
      shouldStop: interrupted,
      onCheckpoint: (epoch) => crashTestAfterEpoch(epoch + 1),
    }),
  );
  try {
    if (mode === 'feature-extractor' && result.timing.recomputeEstimateSeconds === undefined) {
      console.log(
        'Feature extractor time: all features came from the cache, so only the head trained; a run with an empty cache (--cache elsewhere) measures the backbone and compares with recomputing it every epoch',
      );
    } else if (result.timing.recomputeEstimateSeconds !== undefined) {
      console.log(
        `Feature extractor time: ${result.timing.totalSeconds.toFixed(1)} s with cached features (backbone ${result.timing.extractSeconds.toFixed(1)} s, head ${result.timing.trainSeconds.toFixed(1)} s); recomputing the backbone every epoch as the tutorial does would take about ${result.timing.recomputeEstimateSeconds.toFixed(0)} s here (estimated from this run's backbone speed; the tutorial took 12m 23s on a GPU)`,
      );
    }
  } finally {
    result.model.dispose();
  }
}

/** Ctrl-C stops after the current epoch's checkpoint; a second one quits at once. */
async function withInterrupt<T>(run: (interrupted: () => boolean) => Promise<T>): Promise<T> {
  let interrupted = false;
  const onSigint = (): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write("\nInterrupted: stopping after this epoch's checkpoint (Ctrl-C again to quit now)\n");
  };
  process.on('SIGINT', onSigint);
  try {
    return await run(() => interrupted);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

async function twoStageCommand(flags: TrainFlags, epochs: number | undefined): Promise<void> {
  const result = await withInterrupt((interrupted) =>
    runTwoStage({
      data: flags.data,
      out: flags.out,
      seed: flags.seed,
      epochs,
      headEpochs: flags.headEpochs,
      batchSize: flags.batchSize,
      accumulate: flags.accumulate,
      inputSize: flags.inputSize,
      cacheDir: flags.cache,
      views: flags.views,
      balanceClasses: flags.classWeights === 'balanced',
      labelSmoothing: flags.labelSmoothing,
      mixupAlpha: flags.mixupAlpha,
      cutmixAlpha: flags.cutmixAlpha,
      randAugment: flags.randAugment,
      lrMult: flags.lrMult,
      lrFactor: flags.lrFactor,
      schedule: flags.schedule,
      pctStart: flags.pctStart,
      div: flags.div,
      stage2Sizes: flags.stage2Sizes,
      resume: flags.resume === true,
      shouldStop: interrupted,
      // The crash-test hook counts epochs across both stages, stage 1's first.
      onCheckpoint: (stage, epoch) =>
        crashTestAfterEpoch(stage === 1 ? epoch + 1 : (flags.headEpochs ?? TWO_STAGE_DEFAULTS.headEpochs) + epoch + 1),
    }),
  );
  try {
    if (!result.stopped) {
      const acc = (x: number | undefined): string => (x === undefined || x < 0 ? 'n/a' : x.toFixed(4));
      console.log(
        `Two-stage recipe: stage 1 val ${acc(result.stage1.valAcc)} test ${acc(result.stage1.testAcc)}; stage 2 val ${acc(result.stage2?.valAcc)} test ${acc(result.stage2?.testAcc)}; kept ${result.kept === 'stage1' ? "stage 1's model" : "stage 2's model"}`,
      );
    }
  } finally {
    result.model.dispose();
  }
}

export interface EvaluateFlags {
  model: string;
  data: string;
  out?: string;
  tta?: boolean;
  topLosses: number;
  inputSize?: number;
}

export async function evaluateCommand(flags: EvaluateFlags): Promise<void> {
  const modelDir = flags.model;
  const data = flags.data;
  // An exported folder is a web site as it stands: reports go elsewhere.
  if (flags.out === undefined && isExportFolder(modelDir))
    throw new UserError(`${modelDir} is an exported web folder; give --out for the evaluation reports`);
  const out = flags.out ?? path.join(modelDir, 'evaluation');
  const topN = flags.topLosses;
  requireWritableDirectory(out);
  console.log((await selectBackend()).line);
  const inputSize = flags.inputSize;
  const model = await loadAnyModel(modelDir, { inputSize });
  if (inputSize !== undefined)
    console.log(
      `Input size ${inputSize} (Resize(${resizeFor(inputSize)}) + CenterCrop(${inputSize})); the model was trained at ${readModelMetadata(modelDir).inputSize}`,
    );
  const result = await evaluateModel(model, data);
  console.log(formatMetrics(result));
  printSkipped(result.skipped);
  let tta: EvaluationResult | undefined;
  if (flags.tta === true) {
    tta = await evaluateModel(model, data, { tta: true });
    const change = tta.accuracy - result.accuracy;
    console.log(
      `test-time augmentation (${tta.views} views: centre, mirror, 4 corners): accuracy ${tta.accuracy.toFixed(4)} vs ${result.accuracy.toFixed(4)} (${change >= 0 ? '+' : ''}${change.toFixed(4)})`,
    );
  }
  const confused = mostConfused(result);
  console.log(formatConfused(confused));
  const losses = topLosses(result, model.classes, topN);
  console.log(topLossesLines(losses));
  writeJsonAtomic(path.join(out, 'metrics.json'), {
    data: path.resolve(data),
    input_size: model.info.inputSize,
    ...metricsOf(result),
    ...(tta ? { tta: metricsOf(tta) } : {}),
    most_confused: confused,
    top_losses: losses,
    skipped: result.skipped,
  });
  writeFileAtomic(
    path.join(out, 'predictions.csv'),
    [
      'file,actual,predicted,probability',
      ...result.files.map(
        (f, i) =>
          `"${f.replace(/"/g, '""')}",${model.classes[result.actual[i]]},${model.classes[result.predicted[i]]},${result.probabilities[i][result.predicted[i]].toFixed(6)}`,
      ),
    ].join('\n') + '\n',
  );
  writeFileAtomic(path.join(out, 'confusion_matrix.png'), await confusionMatrixPng(result));
  writeFileAtomic(
    path.join(out, 'confusion_matrix_normalized.png'),
    await confusionMatrixPng(result, { normalize: true }),
  );
  if (losses.length > 0) writeFileAtomic(path.join(out, 'top_losses.png'), await topLossesPng(losses));
  console.log(
    `Wrote ${path.join(out, 'metrics.json')}, predictions.csv, confusion_matrix.png, confusion_matrix_normalized.png${losses.length > 0 ? ' and top_losses.png' : ''}`,
  );
  model.dispose();
}

export interface PredictFlags {
  model: string;
  top: number;
  json?: boolean;
  png?: string;
}

export async function predictCommand(images: string[], flags: PredictFlags): Promise<void> {
  const quiet = flags.json === true;
  const png = flags.png;
  if (png) requireWritableDirectory(png);
  const backend = await selectBackend();
  if (!quiet) console.log(backend.line);
  const model = await loadAnyModel(flags.model);
  const k = flags.top;
  const results: Array<{
    file: string;
    top?: Array<{ class: string; probability: number }>;
    png?: string;
    error?: string;
  }> = [];
  // Named over the files that exist: a missing one draws nothing, so it does not move the common folder.
  const found = images.filter((f) => fs.existsSync(f));
  const pngNames = new Map(distinctOutputNames(found, '.prediction.png').map((name, i) => [found[i], name]));
  for (const file of images) {
    try {
      if (!fs.existsSync(file)) throw new Error('file not found');
      const p = await predictImage(model, file, k);
      const drawn = png ? path.join(png, pngNames.get(file)!) : undefined;
      if (drawn) writeFileAtomic(drawn, await annotatePrediction(file, p.top[0].class));
      results.push(drawn ? { ...p, png: drawn } : p);
      if (!quiet)
        console.log(
          `${file}: ${p.top.map((t) => `${t.class} ${(100 * t.probability).toFixed(1)}%`).join(', ')}${drawn ? ` → ${drawn}` : ''}`,
        );
    } catch (err) {
      const reason = errorLine(err);
      results.push({ file, error: reason });
      if (!quiet) console.log(`${file}: skipped (${reason})`);
    }
  }
  if (quiet) console.log(JSON.stringify(results, null, 2));
  model.dispose();
}

export interface SoupFlags {
  out: string;
  data: string;
  recipe: SoupRecipe;
}

export async function soupCommand(modelDirs: string[], flags: SoupFlags): Promise<void> {
  const { out, data, recipe } = flags;
  const models = modelDirs.map((p) => path.resolve(p));
  for (const dir of models) if (!fs.existsSync(dir)) throw new UserError(`model not found: ${dir}`);
  if (models.includes(path.resolve(out)))
    throw new UserError(`--out ${out} is one of the models to average; choose a new folder`);
  if (!fs.existsSync(data)) throw new UserError(`val data not found: ${data}`);
  requireWritableDirectory(path.dirname(path.resolve(out)));
  console.log((await selectBackend()).line);
  const result = await makeSoup(models, data, { recipe, onLine: (line) => console.log(line) });
  try {
    const summary = {
      recipe,
      data: path.resolve(data),
      val_acc: result.valAcc,
      ingredients: result.ingredients,
      steps: result.steps.map((s) => ({
        model: s.model,
        val_acc: s.valAcc,
        soup_val_acc: s.soupValAcc ?? null,
        kept: s.kept,
      })),
    };
    await saveBoatModel(result.model, out, { soup: summary }, `${recipe} soup of ${result.ingredients.length} models`, {
      'soup.json': JSON.stringify(summary, null, 2) + '\n',
    });
    console.log(
      `${recipe} soup of ${result.ingredients.length} of ${models.length} models: val accuracy ${result.valAcc.toFixed(4)} (best single model ${Math.max(...result.steps.map((s) => s.valAcc)).toFixed(4)})`,
    );
    console.log(`Wrote ${out} (evaluate it on test with: boat evaluate --model ${out} --data data/test)`);
  } finally {
    result.model.dispose();
  }
}
