import * as fs from 'node:fs';
import * as path from 'node:path';

import { annotatePrediction, evaluateModel, EvaluationResult, formatMetrics, metricsOf, predictImage } from '../evaluate';
import { formatConfused, mostConfused, topLosses, topLossesLines, topLossesPng } from '../explain';
import { loadBoatModel, readModelMetadata, saveBoatModel, selectBackend, TRAINING_MODES, TrainingMode } from '../model';
import { resizeFor } from '../images';
import { confusionMatrixPng } from '../plot/confusion';
import { makeSoup, runExperiment, SoupRecipe } from '../train';
import { distinctOutputNames, requireWritableDirectory, UserError, writeFileAtomic, writeJsonAtomic } from '../util';
import { intFlag, parseFlags, requiredString, stringFlag } from './args';
import { printSkipped } from './data-commands';

export const MODEL_USAGE = `  boat train --mode finetune|feature-extractor --data data --out models/NAME [--epochs 24] [--resume]
             [--seed 0] [--batch-size 32] [--accumulate K] [--lr 0.001] [--optimizer sgd|adam]
             [--views K] [--input-size 224] [--cache .cache/features] [--unfreeze N] [--class-weights balanced]
             [--init models/NAME] [--freeze-bn]
             (--unfreeze N: fine-tune only the last N of ResNet50's 5 stages; --init: start from a saved
             model instead of ImageNet's weights; --freeze-bn: BatchNorm keeps its moving statistics)
  boat evaluate --model models/NAME --data data/test [--out DIR] [--tta] [--top-losses 9] [--input-size N]
  boat predict --model models/NAME IMAGE... [--top 3] [--json] [--png DIR]
  boat soup MODEL... --out models/NAME [--data data/val] [--recipe greedy|uniform]
             (averages the weights of models fine-tuned from the same start into one model;
             greedy keeps an ingredient only if val accuracy does not drop)`;

function floatFlag(flags: Record<string, string | boolean | undefined>, name: string): number | undefined {
  const v = stringFlag(flags, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UserError(`--${name} must be a positive number, got "${v}"`);
  return n;
}

/**
 * --unfreeze N: fine-tune only the last N of ResNet50's 5 stages. Absent (or "all", where allowed)
 * means the whole network, returned as undefined.
 */
export function unfreezeStagesFlag(flags: Record<string, string | boolean | undefined>, allowAll = false): number | undefined {
  const v = stringFlag(flags, 'unfreeze');
  if (v === undefined || (allowAll && v === 'all')) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 5) throw new UserError(`--unfreeze must be 1 to 5 (ResNet50 has 5 stages)${allowAll ? ' or "all"' : ''}, got "${v}"`);
  return n;
}

export async function trainCommand(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, {
    mode: { type: 'string' }, data: { type: 'string', default: 'data' }, out: { type: 'string' }, epochs: { type: 'string' },
    resume: { type: 'boolean', default: false }, seed: { type: 'string' }, 'batch-size': { type: 'string' }, accumulate: { type: 'string' },
    lr: { type: 'string' }, optimizer: { type: 'string' }, views: { type: 'string' }, 'input-size': { type: 'string' }, cache: { type: 'string' },
    unfreeze: { type: 'string' }, 'class-weights': { type: 'string' }, init: { type: 'string' }, 'freeze-bn': { type: 'boolean', default: false },
  });
  const mode = requiredString(flags, 'mode') as TrainingMode;
  if (!TRAINING_MODES.includes(mode)) throw new UserError(`--mode must be finetune or feature-extractor, got "${mode}"`);
  const unfreezeStages = unfreezeStagesFlag(flags);
  if (unfreezeStages !== undefined && mode !== 'finetune') throw new UserError('--unfreeze applies to --mode finetune only');
  if (flags['freeze-bn'] === true && mode !== 'finetune') throw new UserError('--freeze-bn applies to --mode finetune only');
  const classWeights = stringFlag(flags, 'class-weights') ?? 'none';
  if (classWeights !== 'none' && classWeights !== 'balanced') throw new UserError(`--class-weights must be none or balanced, got "${classWeights}"`);
  const optimizer = stringFlag(flags, 'optimizer') ?? 'sgd';
  if (optimizer !== 'sgd' && optimizer !== 'adam') throw new UserError(`--optimizer must be sgd or adam, got "${optimizer}"`);
  let interrupted = false;
  const onSigint = (): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\nInterrupted: stopping after this epoch\'s checkpoint (Ctrl-C again to quit now)\n');
  };
  process.on('SIGINT', onSigint);
  try {
    const result = await runExperiment({
      mode,
      data: requiredString(flags, 'data'),
      out: requiredString(flags, 'out'),
      epochs: intFlag(flags, 'epochs'),
      resume: flags.resume === true,
      seed: intFlag(flags, 'seed'),
      batchSize: intFlag(flags, 'batch-size'),
      accumulate: intFlag(flags, 'accumulate'),
      lr: floatFlag(flags, 'lr'),
      optimizer,
      views: intFlag(flags, 'views'),
      inputSize: intFlag(flags, 'input-size'),
      unfreezeStages,
      balanceClasses: classWeights === 'balanced',
      init: stringFlag(flags, 'init'),
      freezeBatchNorm: flags['freeze-bn'] === true,
      cacheDir: stringFlag(flags, 'cache'),
      shouldStop: () => interrupted,
      onCheckpoint: (epoch) => {
        // For the crash-and-resume tests: die as if killed right after this epoch's checkpoint.
        if (process.env.BOAT_TEST_KILL_AFTER_EPOCH === String(epoch + 1)) process.kill(process.pid, 'SIGKILL');
      },
    });
    if (mode === 'feature-extractor' && result.timing.recomputeEstimateSeconds === undefined) {
      console.log('Feature extractor time: all features came from the cache, so only the head trained; a run with an empty cache (--cache elsewhere) measures the backbone and compares with recomputing it every epoch');
    } else if (result.timing.recomputeEstimateSeconds !== undefined) {
      console.log(`Feature extractor time: ${result.timing.totalSeconds.toFixed(1)} s with cached features (backbone ${result.timing.extractSeconds.toFixed(1)} s, head ${result.timing.trainSeconds.toFixed(1)} s); recomputing the backbone every epoch as the tutorial does would take about ${result.timing.recomputeEstimateSeconds.toFixed(0)} s here (estimated from this run's backbone speed; the tutorial took 12m 23s on a GPU)`);
    }
    result.model.dispose();
  } finally {
    process.off('SIGINT', onSigint);
  }
}

export async function evaluateCommand(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, { model: { type: 'string' }, data: { type: 'string', default: 'data/test' }, out: { type: 'string' }, tta: { type: 'boolean', default: false }, 'top-losses': { type: 'string' }, 'input-size': { type: 'string' } });
  const modelDir = requiredString(flags, 'model');
  const data = requiredString(flags, 'data');
  const out = stringFlag(flags, 'out') ?? path.join(modelDir, 'evaluation');
  const topN = intFlag(flags, 'top-losses') ?? 9;
  requireWritableDirectory(out);
  console.log((await selectBackend()).line);
  const inputSize = intFlag(flags, 'input-size');
  const model = await loadBoatModel(modelDir, undefined, { inputSize });
  if (inputSize !== undefined) console.log(`Input size ${inputSize} (Resize(${resizeFor(inputSize)}) + CenterCrop(${inputSize})); the model was trained at ${readModelMetadata(modelDir).inputSize}`);
  const result = await evaluateModel(model, data);
  console.log(formatMetrics(result));
  printSkipped(result.skipped);
  let tta: EvaluationResult | undefined;
  if (flags.tta === true) {
    tta = await evaluateModel(model, data, { tta: true });
    const change = tta.accuracy - result.accuracy;
    console.log(`test-time augmentation (${tta.views} views: centre, mirror, 4 corners): accuracy ${tta.accuracy.toFixed(4)} vs ${result.accuracy.toFixed(4)} (${change >= 0 ? '+' : ''}${change.toFixed(4)})`);
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
  writeFileAtomic(path.join(out, 'predictions.csv'), ['file,actual,predicted,probability', ...result.files.map((f, i) => `"${f.replace(/"/g, '""')}",${model.classes[result.actual[i]]},${model.classes[result.predicted[i]]},${result.probabilities[i][result.predicted[i]].toFixed(6)}`)].join('\n') + '\n');
  writeFileAtomic(path.join(out, 'confusion_matrix.png'), await confusionMatrixPng(result));
  writeFileAtomic(path.join(out, 'confusion_matrix_normalized.png'), await confusionMatrixPng(result, { normalize: true }));
  if (losses.length > 0) writeFileAtomic(path.join(out, 'top_losses.png'), await topLossesPng(losses));
  console.log(`Wrote ${path.join(out, 'metrics.json')}, predictions.csv, confusion_matrix.png, confusion_matrix_normalized.png${losses.length > 0 ? ' and top_losses.png' : ''}`);
  model.dispose();
}

export async function predictCommand(argv: string[]): Promise<void> {
  const { flags, positionals } = parseFlags(argv, { model: { type: 'string' }, top: { type: 'string' }, json: { type: 'boolean', default: false }, png: { type: 'string' } }, true);
  if (positionals.length === 0) throw new UserError('give one or more image files to predict');
  const quiet = flags.json === true;
  const png = stringFlag(flags, 'png');
  if (png) requireWritableDirectory(png);
  const backend = await selectBackend();
  if (!quiet) console.log(backend.line);
  const model = await loadBoatModel(requiredString(flags, 'model'));
  const k = intFlag(flags, 'top') ?? 3;
  const results: Array<{ file: string; top?: Array<{ class: string; probability: number }>; png?: string; error?: string }> = [];
  // Named over the files that exist: a missing one draws nothing, so it does not move the common folder.
  const found = positionals.filter((f) => fs.existsSync(f));
  const pngNames = new Map(distinctOutputNames(found, '.prediction.png').map((name, i) => [found[i], name]));
  for (const file of positionals) {
    try {
      if (!fs.existsSync(file)) throw new Error('file not found');
      const p = await predictImage(model, file, k);
      const drawn = png ? path.join(png, pngNames.get(file)!) : undefined;
      if (drawn) writeFileAtomic(drawn, await annotatePrediction(file, p.top[0].class));
      results.push(drawn ? { ...p, png: drawn } : p);
      if (!quiet) console.log(`${file}: ${p.top.map((t) => `${t.class} ${(100 * t.probability).toFixed(1)}%`).join(', ')}${drawn ? ` → ${drawn}` : ''}`);
    } catch (err) {
      const reason = (err as Error).message.split('\n')[0];
      results.push({ file, error: reason });
      if (!quiet) console.log(`${file}: skipped (${reason})`);
    }
  }
  if (quiet) console.log(JSON.stringify(results, null, 2));
  model.dispose();
}

export async function soupCommand(argv: string[]): Promise<void> {
  const { flags, positionals } = parseFlags(argv, { out: { type: 'string' }, data: { type: 'string', default: 'data/val' }, recipe: { type: 'string', default: 'greedy' } }, true);
  const out = requiredString(flags, 'out');
  const data = requiredString(flags, 'data');
  const recipe = requiredString(flags, 'recipe') as SoupRecipe;
  if (recipe !== 'greedy' && recipe !== 'uniform') throw new UserError(`--recipe must be greedy or uniform, got "${recipe}"`);
  const models = positionals.map((p) => path.resolve(p));
  for (const dir of models) if (!fs.existsSync(dir)) throw new UserError(`model not found: ${dir}`);
  if (models.includes(path.resolve(out))) throw new UserError(`--out ${out} is one of the models to average; choose a new folder`);
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
      steps: result.steps.map((s) => ({ model: s.model, val_acc: s.valAcc, soup_val_acc: s.soupValAcc ?? null, kept: s.kept })),
    };
    await saveBoatModel(result.model, out, { soup: summary }, `${recipe} soup of ${result.ingredients.length} models`, { 'soup.json': JSON.stringify(summary, null, 2) + '\n' });
    console.log(`${recipe} soup of ${result.ingredients.length} of ${models.length} models: val accuracy ${result.valAcc.toFixed(4)} (best single model ${Math.max(...result.steps.map((s) => s.valAcc)).toFixed(4)})`);
    console.log(`Wrote ${out} (evaluate it on test with: boat evaluate --model ${out} --data data/test)`);
  } finally {
    result.model.dispose();
  }
}
