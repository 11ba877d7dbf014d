/**
 * The main job: the tutorial end to end, headless. It uses the data in data/boats (the user's
 * prepared Kaggle photos) and makes the embedded synthetic demo set there when the folder is empty or
 * missing. Everything it produces goes under runs/main/.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { auditDataset, buildFileIndex, classCounts, formatAudit, makeDemoDataset, sizeSummary, splitDataset } from '../data';
import { createBoatModel, selectBackend } from '../model';
import { readOwnedMarker, requireWritableDirectory, toCsv, writeFileAtomic, writeJsonAtomic } from '../util';
import { parseFlags, stringFlag, intFlag } from './args';
import { printSkipped, printSplit } from './data-commands';

export async function mainJob(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, { data: { type: 'string' }, out: { type: 'string', default: 'runs/main' }, seed: { type: 'string' }, top: { type: 'string' } });
  const out = path.resolve(stringFlag(flags, 'out') ?? 'runs/main');
  requireWritableDirectory(out);
  const seed = intFlag(flags, 'seed') ?? 38;
  const top = intFlag(flags, 'top') ?? 5;

  const data = path.resolve(stringFlag(flags, 'data') ?? 'data/boats');
  if (!stringFlag(flags, 'data') && !hasEntries(data)) {
    const made = await makeDemoDataset({ out: data, perClass: 40, seed: 0 });
    console.log(`[1/5] Data: no data in ${data}, so made the embedded SYNTHETIC demo set there (${made.images} drawn images, not photos)`);
    console.log('      For the real photos: boat data prepare --source boat-types-recognition.zip --out data/boats');
  } else {
    const synthetic = readOwnedMarker(data)?.kind === 'demo-dataset';
    console.log(`[1/5] Data: using ${data}${synthetic ? ' (the SYNTHETIC demo set)' : ''}`);
  }

  const index = await buildFileIndex(data);
  writeFileAtomic(path.join(out, 'index.csv'), toCsv(['category', 'filepath', 'width', 'height'], index.rows.map((r) => [r.category, r.filepath, r.width, r.height])));
  const counts = classCounts(index.rows);
  writeFileAtomic(path.join(out, 'class_counts.csv'), toCsv(['category', 'count'], counts.map((c) => [c.category, c.count])));
  writeFileAtomic(path.join(out, 'image_sizes.csv'), toCsv(['statistic', 'width', 'height'], sizeSummary(index.rows).map((s) => [s.statistic, s.width, s.height])));
  console.log(`[2/5] Explore: ${index.rows.length} images; ${counts.map((c) => `${c.category} ${c.count}`).join(', ')}`);
  printSkipped(index.skipped);

  const split = await splitDataset({ data, out: path.join(out, 'data'), top, seed });
  console.log(`[3/5] Split (top ${top}, seed ${seed}):`);
  printSplit(split.out, split.classes, split.counts, split.dropped, split.linked, split.copied);

  const audit = await auditDataset({ data, split: split.csv });
  writeJsonAtomic(path.join(out, 'audit.json'), audit);
  writeFileAtomic(path.join(out, 'audit.txt'), formatAudit(audit) + '\n');
  console.log(`[4/5] Audit: ${audit.duplicates.length} duplicate group(s), ${audit.leakage?.length ?? 0} leaking across subsets, ${audit.unreadable.length} unreadable`);

  const backend = await selectBackend();
  const model = await createBoatModel({ classes: split.classes, mode: 'feature-extractor' });
  const frozen = model.paramCounts();
  model.mode = 'finetune';
  const tuned = model.paramCounts();
  model.dispose();
  console.log(`[5/5] Model: ${backend.line}`);
  console.log(`      ResNet50 (ImageNet weights) + head for ${split.classes.length} classes: ${fmt(tuned.total)} parameters;`);
  console.log(`      trainable: ${fmt(tuned.trainable)} when fine-tuning, ${fmt(frozen.trainable)} as a feature extractor`);
  writeJsonAtomic(path.join(out, 'model.json'), { backend: backend.line, classes: split.classes, finetune: tuned, featureExtractor: frozen });
  console.log(`Outputs in ${out}: index.csv, class_counts.csv, image_sizes.csv, data/{train,val,test}, data/split.csv, audit.json, audit.txt, model.json`);
}

function hasEntries(dir: string): boolean {
  return fs.existsSync(dir) && fs.readdirSync(dir).length > 0;
}

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}
