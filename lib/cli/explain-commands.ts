/** `boat explain` (Grad-CAM heatmaps) and `boat lr-find` (learning-rate finder for the head). */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { gradCam, gradCamPng } from '../explain';
import { evalTransforms, ImageFolder } from '../images';
import { createBoatModel, loadBoatModel, selectBackend } from '../model';
import { lrFinderSpec, vegaLiteToPng } from '../plot';
import { extractFeatures, FeatureSource, findLearningRate } from '../train';
import { distinctOutputNames, requireDirectory, requireWritableDirectory, toCsv, UserError, writeFileAtomic } from '../util';
import { intFlag, parseFlags, requiredString, stringFlag } from './args';

export const EXPLAIN_USAGE = `  boat explain --model models/NAME IMAGE... [--class NAME] [--out DIR]   Grad-CAM heatmap PNGs
  boat lr-find --data data [--steps 100] [--cache .cache/features] [--out runs/lr-find]   learning-rate finder (head)`;

export async function explainCommand(argv: string[]): Promise<void> {
  const { flags, positionals } = parseFlags(argv, { model: { type: 'string' }, class: { type: 'string' }, out: { type: 'string' } }, true);
  if (positionals.length === 0) throw new UserError('give one or more image files to explain');
  const modelDir = requiredString(flags, 'model');
  const out = stringFlag(flags, 'out') ?? path.join(modelDir, 'explain');
  requireWritableDirectory(out);
  console.log((await selectBackend()).line);
  const model = await loadBoatModel(modelDir);
  const className = stringFlag(flags, 'class');
  const classIndex = className === undefined ? undefined : model.classes.indexOf(className);
  if (classIndex === -1) throw new UserError(`--class ${className} is not one of the model's classes: ${model.classes.join(', ')}`);
  // Named over the files that exist, as predict --png does: a missing one draws nothing.
  const found = positionals.filter((f) => fs.existsSync(f));
  const names = new Map(distinctOutputNames(found, '.gradcam.png').map((name, i) => [found[i], name]));
  for (const file of positionals) {
    try {
      const cam = await gradCam(model, file, classIndex);
      const png = path.join(out, names.get(file) ?? `${path.parse(file).name}.gradcam.png`);
      writeFileAtomic(png, await gradCamPng(cam));
      console.log(`${file}: predicted ${cam.predicted.className} ${(100 * cam.predicted.probability).toFixed(1)}%; heatmap for ${cam.className} → ${png}`);
    } catch (err) {
      if (err instanceof UserError) throw err;
      console.log(`${file}: skipped (${(err as Error).message.split('\n')[0]})`);
    }
  }
  model.dispose();
}

export async function lrFindCommand(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, { data: { type: 'string', default: 'data' }, steps: { type: 'string' }, cache: { type: 'string' }, out: { type: 'string', default: 'runs/lr-find' }, seed: { type: 'string' } });
  const trainDir = path.join(requiredString(flags, 'data'), 'train');
  requireDirectory(trainDir, 'training folder');
  const out = requiredString(flags, 'out');
  requireWritableDirectory(out);
  console.log((await selectBackend()).line);
  const classes = new ImageFolder(trainDir, evalTransforms()).classes;
  const seed = intFlag(flags, 'seed') ?? 0;
  const model = await createBoatModel({ classes, mode: 'feature-extractor', seed });
  const set = await extractFeatures(model, trainDir, { cacheDir: stringFlag(flags, 'cache') ?? path.resolve('.cache', 'features'), transform: evalTransforms(model.info.preprocessing, model.info.inputSize) });
  console.log(`features train: ${set.labels.length} images, ${set.computed} computed in ${set.seconds.toFixed(1)} s`);
  const result = await findLearningRate(model, new FeatureSource([set], 32, true, seed), { steps: intFlag(flags, 'steps') ?? 100 });
  writeFileAtomic(path.join(out, 'lr_find.csv'), toCsv(['lr', 'loss', 'smoothed'], result.points.map((p) => [p.lr, p.loss, p.smoothed])));
  writeFileAtomic(path.join(out, 'lr_find.png'), await vegaLiteToPng(lrFinderSpec(result)));
  console.log(`${result.points.length} steps${result.diverged ? ' (stopped: the loss diverged)' : ''}; lowest smoothed loss at lr ${result.minLossLr.toExponential(2)}`);
  if (!result.diverged) console.log('note: the loss never diverged, so the sweep may have stopped short of the useful range; more training images (or --steps) make the suggestion more reliable');
  console.log(`suggested learning rate for the head: ${result.suggestedLr.toExponential(2)} (boat train --mode feature-extractor --lr ${Number(result.suggestedLr.toPrecision(2))})`);
  console.log(`Wrote ${path.join(out, 'lr_find.png')} and lr_find.csv`);
  model.dispose();
}
