/**
 * The settings of a `boat train` run that its result depends on, beyond the training loop's own
 * (resumeSettings in train.ts adds lr, seed, accumulate, optimizer, class weights): recorded in the
 * checkpoint and compared on --resume, so that a resume with other data, another model or other batches
 * is refused instead of silently continuing a different run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { activePrecision } from '../engine/precision';
import type { ImageFolder, RandAugmentOptions } from '../images';
import type { BoatModel, TrainingMode } from '../model';
import { sha256Hex } from '../util';

export interface RunSettingsInput {
  mode: TrainingMode;
  batchSize: number;
  /** The train and val folders as scanned. */
  folders: ImageFolder[];
  model: BoatModel;
  /** The saved model the run started from (--init), if any. */
  init?: string;
  views: number;
  unfreezeStages: number | null;
  freezeBatchNorm: boolean;
  /** RandAugment on the fine-tune's training crops, if on. */
  randAugment?: RandAugmentOptions;
}

/** One line per setting, named as the CLI spells it; a new option that changes the result is one more line. */
export function runSettings(input: RunSettingsInput): Record<string, unknown> {
  const fe = input.mode === 'feature-extractor';
  return {
    mode: input.mode,
    data: fileListHash(input.folders),
    'batch-size': input.batchSize,
    // The saved model's metadata lists the SHA-256 of each of its files, so its hash stands for all of them.
    init: input.init
      ? `model ${sha256Hex(fs.readFileSync(path.join(input.init, 'metadata.json'))).slice(0, 16)}`
      : null,
    weights: `${input.model.info.weightsId} ${input.model.info.weightsChecksum.slice(0, 16)}`,
    'input-size': input.model.info.inputSize,
    unfreeze: fe ? null : (input.unfreezeStages ?? 'all'),
    'freeze-bn': fe ? null : input.freezeBatchNorm,
    views: fe ? input.views : null,
    // Only when on, so that checkpoints written before RandAugment existed still resume.
    ...(input.randAugment ? { 'rand-augment': randAugmentFlag(input.randAugment) } : {}),
    // Only when not fp32, so that checkpoints written before precisions existed still resume.
    ...(activePrecision() === 'fp32' ? {} : { precision: activePrecision() }),
  };
}

/** RandAugment's settings as `--rand-augment` spells them: "2,9". */
export function randAugmentFlag(r: RandAugmentOptions): string {
  return `${r.numOps},${r.magnitude}`;
}

/**
 * SHA-256 of the file list: every sample's path relative to its folder, class and size. Cheap (no file
 * is read), and it changes when a photo is added, removed, moved to another class or replaced by one
 * of another size; an edit that keeps the size is not seen.
 */
export function fileListHash(folders: ImageFolder[]): string {
  const lines = folders.flatMap((folder) =>
    folder.samples.map((s) => {
      let size = -1;
      try {
        size = fs.statSync(s.file).size;
      } catch {
        // A file that vanished since the scan: the loaders report it; here it hashes as size -1.
      }
      return `${path.basename(folder.root)}/${path.relative(folder.root, s.file)}\t${folder.classes[s.label]}\t${size}`;
    }),
  );
  return sha256Hex(lines.join('\n')).slice(0, 16);
}
