/**
 * Value parsers for the commander specs of lib/cli/*-commands.ts. They throw commander's
 * InvalidArgumentError, so a bad value reads "option '--top <n>' argument 'five' is invalid. Expected an
 * integer." and exits with the usage code like every other parse error.
 */
import { Command, InvalidArgumentError, Option } from 'commander';

import { PRECISION_CHOICES, PrecisionChoice, requestPrecision } from '../engine';
import { RandAugment } from '../images';

/** A whole number, possibly negative (a seed may be). */
export function integer(value: string): number {
  if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError('Expected an integer.');
  return Number(value);
}

/** A whole number of at least 0: epochs (0 trains nothing more), views, how many top losses to draw. */
export function nonNegativeInteger(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('Expected an integer of at least 0.');
  return Number(value);
}

/** A whole number of at least 1: counts such as images, steps or the batch size. */
export function positiveInteger(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('Expected an integer of at least 1.');
  return Number(value);
}

/** A TCP port, 0 to 65535 (0: the system picks a free one). */
export function port(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 65535) throw new InvalidArgumentError('Expected a port from 0 to 65535.');
  return Number(value);
}

/** A finite number above zero: learning rates. */
export function positiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError('Expected a number above 0.');
  return n;
}

/** --unfreeze N: the last N of ResNet50's 5 stages. */
export function unfreezeStages(value: string): number {
  if (!/^[1-5]$/.test(value)) throw new InvalidArgumentError('Expected 1 to 5 (ResNet50 has 5 stages).');
  return Number(value);
}

/**
 * --unfreeze N or "all" (the whole network). "all" stays a string: commander turns a parser's undefined
 * into '' for an option that takes a value.
 */
export function unfreezeStagesOrAll(value: string): number | 'all' {
  if (value === 'all') return 'all';
  if (!/^[1-5]$/.test(value)) throw new InvalidArgumentError('Expected 1 to 5 (ResNet50 has 5 stages) or "all".');
  return Number(value);
}

/** A comma-separated list, empty items dropped: --only 01,02. */
export function commaList(value: string): string[] {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (items.length === 0) throw new InvalidArgumentError('Expected a comma-separated list.');
  return items;
}

/** A share from 0 to 1: the warm-up part of a schedule. */
export function fraction(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !(n >= 0 && n <= 1)) throw new InvalidArgumentError('Expected a number from 0 to 1.');
  return n;
}

/** A number from 0 up to but not including 1: label smoothing (at 1 the target would be uniform). */
export function belowOne(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !(n >= 0 && n < 1))
    throw new InvalidArgumentError('Expected a number from 0 up to (not including) 1.');
  return n;
}

/** A finite number of at least 0: MixUp's and CutMix's α (0: off). */
export function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError('Expected a number of at least 0.');
  return n;
}

/** A finite number of at least 1: ratios between learning rates. */
export function atLeastOne(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 1)
    throw new InvalidArgumentError('Expected a number of at least 1.');
  return n;
}

/** --seeds 1,2,3: distinct integers, at least one. */
export function seedList(value: string): number[] {
  const items = value.split(',').map((s) => s.trim());
  if (items.length === 0 || items.some((s) => !/^-?\d+$/.test(s)))
    throw new InvalidArgumentError('Expected comma-separated integers, e.g. 1,2,3.');
  const seeds = items.map(Number);
  if (new Set(seeds).size !== seeds.length) throw new InvalidArgumentError('Expected distinct seeds.');
  return seeds;
}

/** --stage2-sizes 224,224,320: input sizes of at least 32 px, one per epoch. */
export function sizeList(value: string): number[] {
  const items = value.split(',').map((s) => s.trim());
  if (items.some((s) => !/^\d+$/.test(s) || Number(s) < 32))
    throw new InvalidArgumentError('Expected comma-separated sizes of at least 32, e.g. 224,224,320.');
  return items.map(Number);
}

/** --rand-augment 2,9: RandAugment's number of operations (1-14) and magnitude bin (0-30). */
export function randAugmentPair(value: string): { numOps: number; magnitude: number } {
  const m = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(value);
  const [numOps, magnitude] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
  try {
    new RandAugment(numOps, magnitude); // its own bounds, so that the flag and the library agree
  } catch {
    throw new InvalidArgumentError(
      "Expected operations (1-14) and a magnitude (0-30), e.g. 2,9 (torchvision's defaults).",
    );
  }
  return { numOps, magnitude };
}

/** --precision, for the commands that run the network; add `.hook('preAction', usePrecisionFlag)` with it. */
export function precisionOption(): Option {
  return new Option(
    '--precision <p>',
    'convolutions and matrix products in fp32, bf16 (CPUs with native bf16 only) or auto (bf16 where native, else fp32; default: BOAT_PRECISION, else auto)',
  ).choices(PRECISION_CHOICES);
}

/** Hands --precision to the engine before the action runs, so that its selectBackend() applies it. */
export function usePrecisionFlag(command: Command): void {
  const value = command.opts().precision as PrecisionChoice | undefined;
  if (value) requestPrecision(value);
}
