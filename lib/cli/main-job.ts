/**
 * The main job: the tutorial end to end, headless. It uses the data in data/boats (the user's
 * prepared Kaggle photos) and makes the embedded synthetic demo set there when the folder is empty or
 * missing; a --data folder is used as given and never filled. Everything it produces goes under
 * --out (runs/main/), a folder it made or marked as its own.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Command } from 'commander';

import {
  auditDataset,
  buildFileIndex,
  classCounts,
  ensureDataset,
  formatAudit,
  indexCsv,
  sizeSummary,
  splitDataset,
} from '../data';
import { annotatePrediction, predictImage } from '../evaluate';
import { createBoatModel } from '../model';
import { fineTuneSupport, precisionAsked, requestedPrecision, selectBackend } from '../engine';
import { confusionMatrixPng } from '../plot/confusion';
import { runExperiment } from '../train';
import { claimOutputDirectory, requireDirectory, toCsv, writeFileAtomic, writeJsonAtomic } from '../util';
import {
  integer,
  nonNegativeInteger,
  positiveInteger,
  unfreezeStagesOrAll,
  precisionOption,
  usePrecisionFlag,
} from './options';
import { runNotebooks } from './notebooks';
import { printSkipped, printSplit } from './data-commands';

export function registerMainJob(program: Command): void {
  program
    .command('main')
    .description(
      'the whole tutorial, headless: explore, split, audit, train both ways, predict, then run the notebooks (makes the SYNTHETIC demo set when there is no data)',
    )
    .option(
      '--data <dir>',
      'the class folders (default data/boats, where the demo set is made when it is missing or empty; a folder given here must exist)',
    )
    .option('--out <dir>', 'where everything goes', 'runs/main')
    .option('--seed <n>', 'random seed (split and training)', integer, 38)
    .option('--top <n>', 'keep the N largest classes', positiveInteger, 5)
    .option('--epochs <n>', 'feature-extractor epochs', nonNegativeInteger, 24)
    .option('--finetune-epochs <n>', 'fine-tuning epochs (default: 2, or --epochs when smaller)', nonNegativeInteger)
    .option('--unfreeze <n>', "fine-tune the last n of ResNet50's 5 stages, or all", unfreezeStagesOrAll, 1)
    .option('--demo-per-class <n>', 'images per class when the demo set is made', positiveInteger, 40)
    .option('--copy', 'the split copies the photos instead of hard-linking them')
    .option('--no-notebooks', 'stop after the predictions, without executing the notebooks (step 8)')
    .addOption(precisionOption())
    .hook('preAction', usePrecisionFlag)
    .action(mainJob);
}

export interface MainJobFlags {
  data?: string;
  out: string;
  seed: number;
  top: number;
  epochs: number;
  finetuneEpochs?: number;
  /** Fine-tune the last N stages, or all of them. */
  unfreeze: number | 'all';
  demoPerClass: number;
  copy?: boolean;
  /** false with --no-notebooks. */
  notebooks?: boolean;
}

/**
 * The environment the main job adds for its notebooks (runNotebooks puts it over the inherited one): its data,
 * models and training settings, and BOAT_PRECISION only when the precision was asked for (--precision, or an
 * inherited BOAT_PRECISION). A defaulted run's notebooks then default too, and their backend line reads as the CLI's.
 */
export function notebookSettings(run: {
  out: string;
  epochs: number;
  finetuneEpochs: number;
  unfreeze: number | undefined;
  seed: number;
}): Record<string, string> {
  return {
    BOAT_DATA_ROOT: path.join(run.out, 'notebooks-data'),
    BOAT_MODELS: path.join(run.out, 'notebooks-models'),
    BOAT_EPOCHS: String(run.epochs),
    BOAT_FT_EPOCHS: String(run.finetuneEpochs),
    BOAT_UNFREEZE: String(run.unfreeze ?? 0),
    BOAT_SEED: String(run.seed),
    BOAT_CACHE_DIR: path.resolve('.cache', 'features'),
    ...(precisionAsked() ? { BOAT_PRECISION: requestedPrecision() } : {}),
  };
}

export async function mainJob(flags: MainJobFlags): Promise<void> {
  const given = flags.data;
  if (given !== undefined) requireDirectory(given, 'data folder');
  const out = path.resolve(flags.out);
  claimOutputDirectory(flags.out, 'main-run');
  const { seed, top, epochs } = flags;
  const unfreeze = flags.unfreeze === 'all' ? undefined : flags.unfreeze;
  const finetuneEpochs = flags.finetuneEpochs ?? Math.min(epochs, 2);

  const ready = await ensureDataset(given ?? 'data/boats', flags.demoPerClass, 0, { makeDemo: given === undefined });
  const data = ready.dir;
  if (ready.made) {
    console.log(
      `[1/8] Data: no data in ${data} (the default when --data is not given), so made the embedded SYNTHETIC demo set there (drawn images, not photos)`,
    );
    console.log('      For the real photos: boat data prepare --source boat-types-recognition.zip --out data/boats');
  } else {
    console.log(`[1/8] Data: using ${data}${ready.synthetic ? ' (the SYNTHETIC demo set)' : ''}`);
  }

  const index = await buildFileIndex(data);
  writeFileAtomic(path.join(out, 'index.csv'), indexCsv(index.rows));
  const counts = classCounts(index.rows);
  writeFileAtomic(
    path.join(out, 'class_counts.csv'),
    toCsv(
      ['category', 'count'],
      counts.map((c) => [c.category, c.count]),
    ),
  );
  writeFileAtomic(
    path.join(out, 'image_sizes.csv'),
    toCsv(
      ['statistic', 'width', 'height'],
      sizeSummary(index.rows).map((s) => [s.statistic, s.width, s.height]),
    ),
  );
  console.log(
    `[2/8] Explore: ${index.rows.length} images; ${counts.map((c) => `${c.category} ${c.count}`).join(', ')}`,
  );
  printSkipped(index.skipped);

  const split = await splitDataset({ data, out: path.join(out, 'data'), top, seed, copy: flags.copy === true });
  console.log(`[3/8] Split (top ${top}, seed ${seed}):`);
  printSplit(split.out, split.classes, split.counts, split.dropped, split.linked, split.copied);

  const audit = await auditDataset({ data, split: split.csv });
  writeJsonAtomic(path.join(out, 'audit.json'), audit);
  writeFileAtomic(path.join(out, 'audit.txt'), formatAudit(audit) + '\n');
  console.log(
    `[4/8] Audit: ${audit.duplicates.length} duplicate group(s), ${audit.leakage?.length ?? 0} leaking across subsets, ${audit.unreadable.length} unreadable`,
  );

  const backend = await selectBackend();
  const model = await createBoatModel({ classes: split.classes, mode: 'feature-extractor' });
  const frozen = model.paramCounts();
  model.mode = 'finetune';
  const tuned = model.paramCounts();
  model.dispose();
  console.log(`[5/8] Model: ${backend.line}`);
  console.log(
    `      ResNet50 (ImageNet weights) + head for ${split.classes.length} classes: ${fmt(tuned.total)} parameters;`,
  );
  console.log(
    `      trainable: ${fmt(tuned.trainable)} when fine-tuning, ${fmt(frozen.trainable)} as a feature extractor`,
  );
  writeJsonAtomic(path.join(out, 'model.json'), {
    backend: backend.line,
    classes: split.classes,
    finetune: tuned,
    featureExtractor: frozen,
  });

  // Section 8: the two ways of transfer learning. Fine-tuning a whole ResNet50 on a CPU takes hours for
  // the tutorial's 24 epochs, so the main job runs a short one by default (--finetune-epochs, --unfreeze)
  // and says so; `boat train --mode finetune` runs the full one.
  const experiments: Array<{ name: string; mode: 'feature-extractor' | 'finetune'; epochs: number }> = [
    { name: 'resnet50_conv', mode: 'feature-extractor', epochs },
  ];
  const fineTune = fineTuneSupport();
  if (fineTune.ok) experiments.unshift({ name: 'resnet50_ft', mode: 'finetune', epochs: finetuneEpochs });
  else console.log(`[6/8] Fine-tuning: skipped: ${fineTune.reason}`);
  const summary: Record<string, unknown> = {};
  for (const { name, mode, epochs: runEpochs } of experiments) {
    const scope =
      mode === 'finetune'
        ? unfreeze === undefined
          ? ', whole network'
          : `, last ${unfreeze} of 5 stages unfrozen; --unfreeze all for the whole network`
        : '';
    console.log(`[6/8] Training ${name} (${mode}, ${runEpochs} epochs${scope}):`);
    const result = await runExperiment({
      mode,
      data: split.out,
      out: path.join(out, 'models', name),
      epochs: runEpochs,
      seed,
      unfreezeStages: unfreeze,
      cacheDir: path.resolve('.cache', 'features'),
      log: (line) => console.log(`      ${line}`),
    });
    summary[name] = {
      mode,
      epochs: runEpochs,
      unfrozen_stages: mode === 'finetune' ? (unfreeze ?? 5) : 0,
      best_val_acc: result.bestValAcc,
      test_acc: result.test?.accuracy ?? null,
      seconds: result.timing.totalSeconds,
      recompute_estimate_seconds: result.timing.recomputeEstimateSeconds ?? null,
    };
    if (result.test) {
      writeFileAtomic(
        path.join(out, `${name}_confusion_matrix.png`),
        await confusionMatrixPng(result.test, { title: `${name}: test accuracy ${result.test.accuracy.toFixed(3)}` }),
      );
      writeFileAtomic(
        path.join(out, `${name}_confusion_matrix_normalized.png`),
        await confusionMatrixPng(result.test, {
          normalize: true,
          title: `${name}: test accuracy ${result.test.accuracy.toFixed(3)}`,
        }),
      );
    }
    // Section 8.6: predict one test photo per class and draw the answer on it.
    const lines: string[] = [];
    for (const cls of split.classes) {
      const row = split.rows.find((r) => r.class === cls && r.subset === 'test');
      if (!row) continue;
      const file = path.resolve(split.out, row.path);
      const prediction = await predictImage(result.model, file, 1);
      writeFileAtomic(
        path.join(out, 'predictions', `${name}_${cls}.png`),
        await annotatePrediction(file, prediction.top[0].class),
      );
      lines.push(`${cls} → ${prediction.top[0].class} (${(100 * prediction.top[0].probability).toFixed(1)}%)`);
    }
    console.log(`[7/8] Predictions (${name}): ${lines.join('; ')}`);
    result.model.dispose();
  }
  writeJsonAtomic(path.join(out, 'summary.json'), summary);
  const outputs = `Outputs in ${out}: index.csv, class_counts.csv, image_sizes.csv, data/{train,val,test}, data/split.csv, audit.json, audit.txt, model.json, models/, *_confusion_matrix*.png, predictions/, summary.json`;
  if (flags.notebooks === false) {
    console.log('[8/8] Notebooks: skipped (--no-notebooks)');
    console.log(outputs);
    return;
  }

  // The same story as notebooks, executed headless; their data and models live beside the CLI's.
  const env = notebookSettings({ out, epochs, finetuneEpochs, unfreeze, seed });
  const nbData = env.BOAT_DATA_ROOT;
  fs.mkdirSync(nbData, { recursive: true });
  const link = path.join(nbData, 'boats');
  // Only the link a previous run made is replaced.
  if (fs.lstatSync(link, { throwIfNoEntry: false })?.isSymbolicLink()) fs.rmSync(link);
  fs.symlinkSync(data, link);
  console.log('[8/8] Notebooks: executing notebooks/*.ipynb with the tslab kernel');
  runNotebooks({
    out: path.join(out, 'notebooks'),
    env,
    log: (line) => console.log(`      ${line}`),
  });
  console.log(`${outputs}, notebooks/ (executed .ipynb, .html, figures/)`);
}

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}
