/** RandAugment as a training setting: its checks, and the line a run logs when it is on. */
import { RandAugment, type RandAugmentOptions } from '../images';
import type { TrainingMode } from '../model';
import { UserError } from '../util';

/**
 * RandAugment's settings checked (undefined: off). With `mode`, it is refused for a feature extractor: its
 * inputs are cached features of the eval crop, not augmented images.
 */
export function checkRandAugment(
  r: RandAugmentOptions | undefined,
  mode?: TrainingMode,
): RandAugmentOptions | undefined {
  if (r === undefined) return undefined;
  try {
    new RandAugment(r.numOps, r.magnitude);
  } catch (err) {
    throw new UserError(`--rand-augment: ${(err as Error).message}`);
  }
  if (mode !== undefined && mode !== 'finetune')
    throw new UserError(
      '--rand-augment augments images: it applies to --mode finetune (and stage 2 of --recipe two-stage) only, not to cached features',
    );
  return { numOps: r.numOps, magnitude: r.magnitude };
}

/** The line a run logs when RandAugment is on, so that its log says what it trained on. */
export function randAugmentLine(r: RandAugmentOptions): string {
  return `RandAugment(num_ops=${r.numOps}, magnitude=${r.magnitude}) on every training crop, as torchvision's (${r.numOps} of its 14 operations per image, magnitude bin ${r.magnitude} of 0-30); val and test unaugmented`;
}
