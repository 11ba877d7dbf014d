/**
 * Model soups (Wortsman et al., ICML 2022, "Model soups: averaging weights of multiple fine-tuned
 * models improves accuracy without increasing inference time"). Fine-tuning runs that start from the
 * same weights (other seeds, learning rates, class weights) end in one basin of the loss, and the
 * element-wise average of their weights is one network of the same size, usually more accurate than
 * the runs it mixes.
 *
 * - uniform soup: the average of every ingredient;
 * - greedy soup: ingredients sorted by val accuracy, best first; each is added only if the soup's val
 *   accuracy does not drop (the paper's Algorithm 1).
 *
 * All weights are averaged, BatchNorm's moving statistics included (as the paper averages the whole
 * state dict). Ingredients must share classes, mode, input size and backbone weights; averaging runs
 * that did not start from the same weights (two heads from different random inits) gives a poor soup,
 * which greedy mode then rejects on val accuracy.
 */
import * as tf from '../engine/tf';

import { evaluateModel } from '../evaluate';
import { BoatModel, loadBoatModel, ModelMetadata, readModelMetadata, WeightsSource } from '../model';
import { UserError } from '../util';

export type SoupRecipe = 'uniform' | 'greedy';

export interface SoupStep {
  model: string;
  /** The ingredient's own val accuracy. */
  valAcc: number;
  /** The soup's val accuracy with this ingredient added (greedy: every step; uniform: the first, alone, and the last). */
  soupValAcc?: number;
  kept: boolean;
}

export interface SoupResult {
  /** The soup, loaded and ready (the caller disposes it). */
  model: BoatModel;
  recipe: SoupRecipe;
  /** In the order they were tried: by val accuracy for greedy, as given for uniform. */
  steps: SoupStep[];
  /** Models averaged into the soup. */
  ingredients: string[];
  valAcc: number;
}

export interface SoupOptions {
  recipe?: SoupRecipe;
  weights?: WeightsSource;
  /** A line per evaluated model or soup, for progress output. */
  onLine?: (line: string) => void;
}

/** One model's every weight (backbone and head, trainable or not), copied out of the tensor engine (asynchronously: webgpu cannot read synchronously). */
async function weightValues(model: BoatModel): Promise<Float32Array[]> {
  return Promise.all(model.allWeights().map(async (w) => (await w.read().data()) as Float32Array));
}

function checkCompatible(dirs: string[]): ModelMetadata[] {
  const metas = dirs.map((dir) => readModelMetadata(dir));
  const first = metas[0];
  metas.forEach((m, i) => {
    const other = (what: string, a: unknown, b: unknown): UserError =>
      new UserError(`cannot average ${dirs[i]} with ${dirs[0]}: ${what} differ (${String(b)} vs ${String(a)})`);
    if (m.classes.join(',') !== first.classes.join(','))
      throw other('classes', first.classes.join(','), m.classes.join(','));
    if (m.mode !== first.mode) throw other('training modes', first.mode, m.mode);
    if (m.inputSize !== first.inputSize) throw other('input sizes', first.inputSize, m.inputSize);
    if (m.weightsId !== first.weightsId || m.weightsChecksum !== first.weightsChecksum)
      throw other('backbone weights', first.weightsId, m.weightsId);
  });
  return metas;
}

/** Writes sum / count into the model's weights. */
function writeAverage(model: BoatModel, sum: Float64Array[], count: number): void {
  model.allWeights().forEach((v, i) => {
    const mean = new Float32Array(sum[i].length);
    for (let j = 0; j < mean.length; j++) mean[j] = sum[i][j] / count;
    const t = tf.tensor(mean, v.read().shape, 'float32');
    v.write(t);
    t.dispose();
  });
}

function addInto(sum: Float64Array[], values: Float32Array[], from: string): void {
  if (values.length !== sum.length)
    throw new UserError(`cannot average ${from}: it has ${values.length} weight tensors, the soup ${sum.length}`);
  values.forEach((v, i) => {
    if (v.length !== sum[i].length)
      throw new UserError(`cannot average ${from}: weight ${i} has ${v.length} values, the soup's ${sum[i].length}`);
    for (let j = 0; j < v.length; j++) sum[i][j] += v[j];
  });
}

async function valAccuracy(model: BoatModel, valData: string): Promise<number> {
  return (await evaluateModel(model, valData)).accuracy;
}

/**
 * Averages the weights of saved models into one (see the file comment). `valData` is a class folder
 * (data/val): every ingredient and the soup are scored on it, and greedy mode chooses with it.
 */
export async function makeSoup(dirs: string[], valData: string, options: SoupOptions = {}): Promise<SoupResult> {
  const recipe = options.recipe ?? 'greedy';
  const log = options.onLine ?? ((): void => undefined);
  if (dirs.length < 2) throw new UserError('a soup needs at least two models');
  if (new Set(dirs).size !== dirs.length) throw new UserError('a model is listed twice');
  // A feature extractor's backbone is the pretrained one in every ingredient, so it stays unsaved.
  const backboneSaved = checkCompatible(dirs).some((m) => m.backbone === 'saved');

  // Score each ingredient alone (one model in memory at a time: a fine-tuned ResNet50 is 100 MB).
  const scored: Array<{ dir: string; valAcc: number }> = [];
  for (const dir of dirs) {
    const model = await loadBoatModel(dir, options.weights);
    try {
      const valAcc = await valAccuracy(model, valData);
      scored.push({ dir, valAcc });
      log(`${dir}: val accuracy ${valAcc.toFixed(4)}`);
    } finally {
      model.dispose();
    }
  }
  // Greedy tries the best first; a stable sort keeps the given order among equals.
  const order = recipe === 'greedy' ? [...scored].sort((a, b) => b.valAcc - a.valAcc) : scored;

  // The soup lives in the first ingredient's model; the running sum stays outside the tensor engine.
  const soup = await loadBoatModel(order[0].dir, options.weights);
  try {
    let sum = (await weightValues(soup)).map((v) => Float64Array.from(v));
    let count = 1;
    let soupAcc = order[0].valAcc;
    const steps: SoupStep[] = [{ model: order[0].dir, valAcc: order[0].valAcc, soupValAcc: soupAcc, kept: true }];
    for (const candidate of order.slice(1)) {
      const model = await loadBoatModel(candidate.dir, options.weights);
      let values: Float32Array[];
      try {
        values = await weightValues(model);
      } finally {
        model.dispose();
      }
      if (recipe === 'uniform') {
        addInto(sum, values, candidate.dir);
        count++;
        steps.push({ model: candidate.dir, valAcc: candidate.valAcc, kept: true });
        continue;
      }
      const trial = sum.map((s) => Float64Array.from(s));
      addInto(trial, values, candidate.dir);
      writeAverage(soup, trial, count + 1);
      const acc = await valAccuracy(soup, valData);
      const kept = acc >= soupAcc;
      log(
        `+ ${candidate.dir}: soup val accuracy ${acc.toFixed(4)} (${kept ? 'kept' : `dropped; stays ${soupAcc.toFixed(4)}`})`,
      );
      steps.push({ model: candidate.dir, valAcc: candidate.valAcc, soupValAcc: acc, kept });
      if (kept) {
        sum = trial;
        count++;
        soupAcc = acc;
      }
    }
    writeAverage(soup, sum, count);
    soup.backboneChanged = soup.backboneChanged || backboneSaved;
    // Greedy has scored these very weights already (the last kept step); uniform scores them now.
    if (recipe === 'uniform') {
      soupAcc = await valAccuracy(soup, valData);
      steps[steps.length - 1].soupValAcc = soupAcc;
      log(`uniform soup of ${count}: val accuracy ${soupAcc.toFixed(4)}`);
    }
    return {
      model: soup,
      recipe,
      steps,
      ingredients: steps.filter((s) => s.kept).map((s) => s.model),
      valAcc: soupAcc,
    };
  } catch (err) {
    soup.dispose();
    throw err;
  }
}
