/**
 * torchvision's RandAugment (Cubuk et al. 2019) on PIL images: `numOps` operations drawn uniformly from 14,
 * each at one shared `magnitude` of 0–30 (its 31 bins), with a random sign where the operation has one.
 * The operations, magnitudes and draws are torchvision.transforms.RandAugment's (NEAREST interpolation,
 * black fill); the pixels are Pillow's (pillow.ts).
 */
import type { Random } from '../util';
import {
  affineNearest,
  autocontrast,
  blend,
  equalize,
  grayToRgb,
  inverseAffineMatrix,
  luma,
  meanLuma,
  posterize,
  rotateNearest,
  smooth,
  solarize,
} from './pillow';
import { decodeRgb } from './sample';
import type { RgbImage, Sample, Transform, TransformSpec } from './types';

const BINS = 31;
const f32 = Math.fround;

/** torchvision's _augmentation_space, in its order: each operation's magnitude at bin m of 0–30, and whether it takes a random sign. */
const OPERATIONS: ReadonlyArray<{
  name: string;
  magnitude: (m: number, width: number, height: number) => number;
  signed: boolean;
}> = [
  { name: 'Identity', magnitude: () => 0, signed: false },
  { name: 'ShearX', magnitude: (m) => linspace(0, 0.3, m), signed: true },
  { name: 'ShearY', magnitude: (m) => linspace(0, 0.3, m), signed: true },
  { name: 'TranslateX', magnitude: (m, w) => linspace(0, (150 / 331) * w, m), signed: true },
  { name: 'TranslateY', magnitude: (m, _w, h) => linspace(0, (150 / 331) * h, m), signed: true },
  { name: 'Rotate', magnitude: (m) => linspace(0, 30, m), signed: true },
  { name: 'Brightness', magnitude: (m) => linspace(0, 0.9, m), signed: true },
  { name: 'Color', magnitude: (m) => linspace(0, 0.9, m), signed: true },
  { name: 'Contrast', magnitude: (m) => linspace(0, 0.9, m), signed: true },
  { name: 'Sharpness', magnitude: (m) => linspace(0, 0.9, m), signed: true },
  { name: 'Posterize', magnitude: (m) => 8 - Math.round(m / ((BINS - 1) / 4)), signed: false },
  { name: 'Solarize', magnitude: (m) => linspace(255, 0, m), signed: false },
  { name: 'AutoContrast', magnitude: () => 0, signed: false },
  { name: 'Equalize', magnitude: () => 0, signed: false },
];

/** RandAugment's operations, in torchvision's order. */
export const RAND_AUGMENT_OPERATIONS: readonly string[] = OPERATIONS.map((op) => op.name);

/** An operation's magnitude at `bin` (0–30) for an image of that size, before its sign (torchvision's table). */
export function operationMagnitude(name: string, bin: number, width: number, height: number): number {
  const op = OPERATIONS.find((o) => o.name === name);
  if (!op) throw new Error(`unknown RandAugment operation "${name}"`);
  return op.magnitude(bin, width, height);
}

/** torchvision's draws for one image: `numOps` operations uniformly, each with a random sign where it has one. */
export function drawOperations(
  rng: Random,
  numOps: number,
  bin: number,
  width: number,
  height: number,
): Array<{ name: string; magnitude: number }> {
  return Array.from({ length: numOps }, () => {
    const op = OPERATIONS[rng.int(0, OPERATIONS.length - 1)];
    const magnitude = op.magnitude(bin, width, height);
    return { name: op.name, magnitude: op.signed && rng.next() < 0.5 ? -magnitude : magnitude };
  });
}

/** torch.linspace(start, end, 31)[m] in float32: the first half counted from the start, the rest back from the end. */
function linspace(start: number, end: number, m: number): number {
  const [from, to] = [f32(start), f32(end)];
  const step = f32(f32(to - from) / (BINS - 1));
  // One rounding per value: torch's tables differ in the last bit from a rounded product then a rounded sum.
  return m < Math.floor(BINS / 2) ? f32(from + step * m) : f32(to - step * (BINS - 1 - m));
}

const degrees = (radians: number): number => radians * (180 / Math.PI);
const centre = (img: RgbImage): [number, number] => [img.width * 0.5, img.height * 0.5];

/** torchvision's _apply_op on a PIL image, for RandAugment's operations. */
export function applyOperation(img: RgbImage, name: string, magnitude: number): RgbImage {
  switch (name) {
    case 'Identity':
      return img;
    // The shears are about the top-left corner (torchvision passes center [0, 0]), the translations whole pixels.
    case 'ShearX':
      return affineNearest(img, inverseAffineMatrix([0, 0], 0, [0, 0], 1, [degrees(Math.atan(magnitude)), 0]));
    case 'ShearY':
      return affineNearest(img, inverseAffineMatrix([0, 0], 0, [0, 0], 1, [0, degrees(Math.atan(magnitude))]));
    case 'TranslateX':
      return affineNearest(img, inverseAffineMatrix(centre(img), 0, [Math.trunc(magnitude), 0], 1, [0, 0]));
    case 'TranslateY':
      return affineNearest(img, inverseAffineMatrix(centre(img), 0, [0, Math.trunc(magnitude)], 1, [0, 0]));
    case 'Rotate':
      return rotateNearest(img, magnitude);
    case 'Brightness':
      return blend(new Uint8Array(img.data.length), img, 1 + magnitude);
    case 'Color':
      return blend(grayToRgb(luma(img)), img, 1 + magnitude);
    case 'Contrast':
      return blend(new Uint8Array(img.data.length).fill(meanLuma(img)), img, 1 + magnitude);
    case 'Sharpness':
      return blend(smooth(img), img, 1 + magnitude);
    case 'Posterize':
      return posterize(img, Math.trunc(magnitude));
    case 'Solarize':
      return solarize(img, magnitude);
    case 'AutoContrast':
      return autocontrast(img);
    case 'Equalize':
      return equalize(img);
    default:
      throw new Error(`unknown RandAugment operation "${name}"`);
  }
}

export interface RandAugmentOptions {
  /** Operations applied one after another (torchvision's num_ops, default 2). */
  numOps: number;
  /** Magnitude bin of every operation, 0–30 (torchvision's magnitude, default 9). */
  magnitude: number;
}

/** RandAugment(num_ops, magnitude): torchvision's defaults are 2 and 9, of 31 magnitude bins. */
export class RandAugment implements Transform {
  readonly random = true;
  readonly name: string;

  spec(): TransformSpec {
    return { type: 'RandAugment', args: [this.numOps, this.magnitude] };
  }
  constructor(
    readonly numOps = 2,
    readonly magnitude = 9,
  ) {
    if (!Number.isInteger(numOps) || numOps < 1 || numOps > 14)
      throw new Error(`RandAugment num_ops must be a whole number from 1 to 14, not ${numOps}`);
    if (!Number.isInteger(magnitude) || magnitude < 0 || magnitude >= BINS)
      throw new Error(`RandAugment magnitude must be a whole number from 0 to ${BINS - 1}, not ${magnitude}`);
    this.name = `RandAugment(num_ops=${numOps}, magnitude=${magnitude})`;
  }

  async apply(sample: Sample, rng: Random): Promise<RgbImage> {
    if (sample.kind === 'float') throw new Error(`${this.name} works on images; put it before the preprocessing`);
    let img = await decodeRgb(sample);
    for (const op of drawOperations(rng, this.numOps, this.magnitude, img.width, img.height))
      img = applyOperation(img, op.name, op.magnitude);
    return img;
  }
}
