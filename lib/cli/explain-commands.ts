/** `boat explain` (Grad-CAM heatmaps) and `boat lr-find` (learning-rate finder for the head). */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Command, Option } from 'commander';

import { gradCam, gradCamPng } from '../explain';
import { evalTransforms, ImageFolder } from '../images';
import { createBoatModel, loadBoatModel } from '../model';
import { selectBackend } from '../engine';
import { lrFinderSpec, vegaLiteToPng } from '../plot';
import { extractFeatures, FeatureSource, findLearningRate } from '../train';
import {
  distinctOutputNames,
  errorLine,
  requireDirectory,
  requireWritableDirectory,
  toCsv,
  UserError,
  writeFileAtomic,
} from '../util';
import { integer, positiveInteger, precisionOption, usePrecisionFlag } from './options';
import { required } from './program';

export function registerExplainCommands(program: Command): void {
  program
    .command('explain')
    .description('Grad-CAM heatmap over each photo: where the model looked (<name>.gradcam.png)')
    .argument('<image...>', 'image files')
    .addOption(required(new Option('--model <dir>', 'a model saved by boat train or boat soup')))
    .option('--class <name>', "the class to explain (default: each image's predicted class)")
    .option('--out <dir>', 'where the heatmaps go (default: <model>/explain)')
    .addOption(precisionOption())
    .hook('preAction', usePrecisionFlag)
    .action(explainCommand);
  program
    .command('lr-find')
    .description('learning-rate finder for the head on cached features: lr_find.png, lr_find.csv and a suggested --lr')
    .option('--data <dir>', 'folder holding train/', 'data')
    .option(
      '--steps <n>',
      'learning rates to try, log-spaced from 1e-7 to 10 (stops early when the loss diverges)',
      positiveInteger,
      100,
    )
    .option('--seed <n>', 'random seed (head initialisation and batch order)', integer, 0)
    .option('--cache <dir>', 'feature cache', '.cache/features')
    .option('--out <dir>', 'where lr_find.png and lr_find.csv go', 'runs/lr-find')
    .addOption(precisionOption())
    .hook('preAction', usePrecisionFlag)
    .action(lrFindCommand);
}

export interface ExplainFlags {
  model: string;
  class?: string;
  out?: string;
}

export async function explainCommand(images: string[], flags: ExplainFlags): Promise<void> {
  const modelDir = flags.model;
  const out = flags.out ?? path.join(modelDir, 'explain');
  requireWritableDirectory(out);
  console.log((await selectBackend()).line);
  const model = await loadBoatModel(modelDir);
  const className = flags.class;
  const classIndex = className === undefined ? undefined : model.classes.indexOf(className);
  if (classIndex === -1)
    throw new UserError(`--class ${className} is not one of the model's classes: ${model.classes.join(', ')}`);
  // Named over the files that exist, as predict --png does: a missing one draws nothing.
  const found = images.filter((f) => fs.existsSync(f));
  const names = new Map(distinctOutputNames(found, '.gradcam.png').map((name, i) => [found[i], name]));
  for (const file of images) {
    try {
      const cam = await gradCam(model, file, classIndex);
      const png = path.join(out, names.get(file) ?? `${path.parse(file).name}.gradcam.png`);
      writeFileAtomic(png, await gradCamPng(cam));
      console.log(
        `${file}: predicted ${cam.predicted.className} ${(100 * cam.predicted.probability).toFixed(1)}%; heatmap for ${cam.className} → ${png}`,
      );
    } catch (err) {
      if (err instanceof UserError) throw err;
      console.log(`${file}: skipped (${errorLine(err)})`);
    }
  }
  model.dispose();
}

export interface LrFindFlags {
  data: string;
  steps: number;
  seed: number;
  cache: string;
  out: string;
}

export async function lrFindCommand(flags: LrFindFlags): Promise<void> {
  const trainDir = path.join(flags.data, 'train');
  requireDirectory(trainDir, 'training folder');
  const out = flags.out;
  requireWritableDirectory(out);
  console.log((await selectBackend()).line);
  const classes = new ImageFolder(trainDir, evalTransforms()).classes;
  const seed = flags.seed;
  const model = await createBoatModel({ classes, mode: 'feature-extractor', seed });
  const set = await extractFeatures(model, trainDir, {
    cacheDir: path.resolve(flags.cache),
    transform: evalTransforms(model.info.preprocessing, model.info.inputSize),
  });
  console.log(`features train: ${set.labels.length} images, ${set.computed} computed in ${set.seconds.toFixed(1)} s`);
  const result = await findLearningRate(model, new FeatureSource([set], 32, true, seed), { steps: flags.steps });
  writeFileAtomic(
    path.join(out, 'lr_find.csv'),
    toCsv(
      ['lr', 'loss', 'smoothed'],
      result.points.map((p) => [p.lr, p.loss, p.smoothed]),
    ),
  );
  writeFileAtomic(path.join(out, 'lr_find.png'), await vegaLiteToPng(lrFinderSpec(result)));
  console.log(
    `${result.points.length} steps${result.diverged ? ' (stopped: the loss diverged)' : ''}; lowest smoothed loss at lr ${result.minLossLr.toExponential(2)}`,
  );
  if (!result.diverged)
    console.log(
      'note: the loss never diverged, so the sweep may have stopped short of the useful range; more training images (or --steps) make the suggestion more reliable',
    );
  console.log(
    `suggested learning rate for the head: ${result.suggestedLr.toExponential(2)} (boat train --mode feature-extractor --lr ${Number(result.suggestedLr.toPrecision(2))})`,
  );
  console.log(`Wrote ${path.join(out, 'lr_find.png')} and lr_find.csv`);
  model.dispose();
}
