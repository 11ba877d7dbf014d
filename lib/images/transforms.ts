/**
 * torchvision's transforms, same names and semantics, on sharp (libvips) for the geometric work.
 * Random transforms draw only from the generator they are given, so a (seed, epoch, index) triple
 * always gives the same augmented image.
 */
import { Random } from '../util';
import { rotateNearest } from './pillow';
import { RandAugment, type RandAugmentOptions } from './rand-augment';
import { decodeRgb, withCrop, withResize } from './sample';
import type {
  Box,
  FloatImage,
  Geometric,
  ImageSource,
  PendingImage,
  RgbImage,
  Sample,
  Transform,
  TransformSpec,
} from './types';

export type { Transform, TransformSpec } from './types';

/** Whether a transform may give different outputs for one input (undeclared counts as random, the safe side). */
export function isRandom(transform: Transform): boolean {
  return transform.random !== false;
}

function geometric(sample: Sample, who: string): Geometric {
  if (sample.kind === 'float')
    throw new Error(`${who} works on images; put it before ToTensor/Normalize/CaffePreprocess`);
  return sample;
}

/** Python's round(): halves go to the even neighbour (torchvision's CenterCrop uses it). */
export function pyRound(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export class Compose implements Transform {
  readonly name: string;

  spec(): TransformSpec {
    return {
      type: 'Compose',
      args: this.transforms.map((t) => {
        if (!t.spec) throw new Error(`${t.name} has no spec`);
        return t.spec();
      }),
    };
  }
  constructor(readonly transforms: readonly Transform[]) {
    this.name = `Compose(${transforms.map((t) => t.name).join(', ')})`;
  }

  get random(): boolean {
    return this.transforms.some(isRandom);
  }

  async apply(sample: Sample, rng: Random): Promise<Sample> {
    let out = sample;
    for (const t of this.transforms) out = await t.apply(out, rng);
    return out;
  }

  /** Runs the image part only (up to the first float transform) and returns 8-bit pixels, for figures. */
  async preview(sample: Sample, rng: Random): Promise<RgbImage> {
    let out = sample;
    for (const t of this.transforms) {
      if (t instanceof ToTensor || t instanceof Normalize || t instanceof CaffePreprocess) break;
      out = await t.apply(out, rng);
    }
    return decodeRgb(out);
  }
}

/** Resize(size): the shorter side becomes `size`, aspect kept (the longer side is truncated like torchvision). */
export class Resize implements Transform {
  readonly random = false;
  readonly name: string;

  spec(): TransformSpec {
    return { type: 'Resize', args: [this.size] };
  }
  constructor(readonly size: number) {
    this.name = `Resize(${size})`;
  }

  async apply(sample: Sample): Promise<Geometric> {
    const img = geometric(sample, this.name);
    const { width: w, height: h } = img;
    const [tw, th] =
      w <= h ? [this.size, Math.floor((this.size * h) / w)] : [Math.floor((this.size * w) / h), this.size];
    return tw === w && th === h ? img : withResize(img, tw, th);
  }
}

/** CenterCrop(size): crops the centre; pads with black when the image is smaller, like torchvision. */
export class CenterCrop implements Transform {
  readonly random = false;
  readonly name: string;

  spec(): TransformSpec {
    return { type: 'CenterCrop', args: [this.size] };
  }
  constructor(readonly size: number) {
    this.name = `CenterCrop(${size})`;
  }

  async apply(sample: Sample): Promise<Geometric> {
    const img = geometric(sample, this.name);
    const s = this.size;
    if (img.width >= s && img.height >= s) {
      // Fits: record the crop so that it runs in the same sharp pass as a preceding resize.
      return withCrop(img, {
        left: pyRound((img.width - s) / 2),
        top: pyRound((img.height - s) / 2),
        width: s,
        height: s,
      });
    }
    return centerCrop(await decodeRgb(img), s);
  }
}

/** torchvision's functional center_crop: offsets rounded like Python's round(), black padding when too small. */
export function centerCrop(img: RgbImage, size: number): RgbImage {
  const top = pyRound((img.height - size) / 2);
  const left = pyRound((img.width - size) / 2);
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= img.height) continue;
    const x0 = Math.max(0, -left);
    const x1 = Math.min(size, img.width - left);
    if (x1 > x0)
      out.set(
        img.data.subarray((sy * img.width + left + x0) * 3, (sy * img.width + left + x1) * 3),
        (y * size + x0) * 3,
      );
  }
  return { kind: 'rgb', data: out, width: size, height: size };
}

/** The crop box torchvision's RandomResizedCrop.get_params picks (10 tries, then a centre crop). */
export function randomResizedCropBox(
  width: number,
  height: number,
  scale: [number, number],
  ratio: [number, number],
  rng: Random,
): Box {
  const area = width * height;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logRatio[0], logRatio[1]));
    const w = pyRound(Math.sqrt(targetArea * aspect));
    const h = pyRound(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      return { left: rng.int(0, width - w), top: rng.int(0, height - h), width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < Math.min(...ratio)) h = pyRound(w / Math.min(...ratio));
  else if (inRatio > Math.max(...ratio)) w = pyRound(h * Math.max(...ratio));
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}

/** RandomResizedCrop(size, scale, ratio): a random box of the given area share and aspect, resized to size×size. */
export class RandomResizedCrop implements Transform {
  readonly random = true;
  readonly name: string;

  spec(): TransformSpec {
    // version 2: large boxes on image files are placed on the shrunk image's pixel grid (resizedCropOnGrid)
    return { type: 'RandomResizedCrop', args: [this.size, this.scale, this.ratio], version: 2 };
  }
  constructor(
    readonly size: number,
    readonly scale: [number, number] = [0.08, 1],
    readonly ratio: [number, number] = [3 / 4, 4 / 3],
  ) {
    this.name = `RandomResizedCrop(${size}, scale=(${scale.join(', ')}), ratio=(${ratio.map((r) => +r.toFixed(4)).join(', ')}))`;
  }

  async apply(sample: Sample, rng: Random): Promise<Geometric> {
    const img = geometric(sample, this.name);
    const box = randomResizedCropBox(img.width, img.height, this.scale, this.ratio, rng);
    // sharp shrinks a JPEG on load by 2 only when the resize shrinks it by 3 or more (pipeline.cc) and never after a crop, so smaller boxes stay exact (the JPEG addon, jpeg.ts, shrinks both).
    if (img.kind === 'source' && box.width >= 3 * this.size && box.height >= 3 * this.size)
      return resizedCropOnGrid(img, box, this.size);
    return resizedCrop(img, box, this.size);
  }
}

/**
 * resizedCrop for a box at least three times the output size on an image file, made cheap: the whole image is
 * resized so that the box becomes size×size, and the box's place in it is rounded to whole pixels. A
 * resize that comes first lets libvips decode a JPEG at 1/2, 1/4 or 1/8 scale (shrink-on-load); a crop
 * that comes first makes it decode every pixel, which was three quarters of a training image's cost.
 * The box moves by under half an output pixel; for a random crop that only changes which box was drawn.
 */
export function resizedCropOnGrid(img: ImageSource, box: Box, size: number): PendingImage {
  const width = Math.max(size, Math.round((img.width * size) / box.width));
  const height = Math.max(size, Math.round((img.height * size) / box.height));
  const left = Math.min(width - size, Math.round((box.left * width) / img.width));
  const top = Math.min(height - size, Math.round((box.top * height) / img.height));
  return {
    kind: 'pending',
    base: img,
    resize: { width, height },
    cropAfter: { left, top, width: size, height: size },
    width: size,
    height: size,
  };
}

/** torchvision's functional resized_crop: cut `box`, resize it to size×size (bilinear). One sharp pass. */
export async function resizedCrop(img: Geometric, box: Box, size: number): Promise<PendingImage> {
  return withResize(await withCrop(img, box), size, size);
}

/**
 * torchvision's functional rotate on PIL images (expand=False, NEAREST, black fill): counter-clockwise by
 * `angle` degrees about the centre, computed as Pillow computes it (rotateNearest). Done in JS: on a 256 px
 * image it is cheaper than a sharp round trip.
 */
export async function rotate(sample: Geometric, angle: number): Promise<RgbImage> {
  return rotateNearest(await decodeRgb(sample), angle);
}

/** torchvision's functional hflip: mirrors left-right, exactly. */
export async function hflip(sample: Geometric): Promise<RgbImage> {
  const img = await decodeRgb(sample);
  return { ...img, data: mirror(img) };
}

/** RandomRotation(degrees): rotates by U(-d, d) degrees about the centre, same size, black corners. */
export class RandomRotation implements Transform {
  readonly random = true;
  readonly name: string;

  spec(): TransformSpec {
    return { type: 'RandomRotation', args: [this.degrees] };
  }
  constructor(readonly degrees: number) {
    this.name = `RandomRotation(${degrees})`;
  }

  async apply(sample: Sample, rng: Random): Promise<RgbImage> {
    return rotate(geometric(sample, this.name), rng.uniform(-this.degrees, this.degrees));
  }
}

/** RandomHorizontalFlip(p): mirrors left-right with probability p. */
export class RandomHorizontalFlip implements Transform {
  readonly random = true;
  readonly name: string;

  spec(): TransformSpec {
    return { type: 'RandomHorizontalFlip', args: [this.p] };
  }
  constructor(readonly p = 0.5) {
    this.name = `RandomHorizontalFlip(p=${p})`;
  }

  async apply(sample: Sample, rng: Random): Promise<RgbImage> {
    const img = geometric(sample, this.name);
    return rng.next() < this.p ? hflip(img) : decodeRgb(img);
  }
}

function mirror(img: RgbImage): Uint8Array {
  const out = new Uint8Array(img.data.length);
  const row = img.width * 3;
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const src = y * row + x * 3;
      const dst = y * row + (img.width - 1 - x) * 3;
      out[dst] = img.data[src];
      out[dst + 1] = img.data[src + 1];
      out[dst + 2] = img.data[src + 2];
    }
  }
  return out;
}

export interface ColorJitterOptions {
  brightness?: number;
  contrast?: number;
  saturation?: number;
  hue?: number;
}

/**
 * ColorJitter(brightness, contrast, saturation, hue) with torchvision's factor ranges and a random order
 * of the four adjustments. Without arguments it does nothing, like the tutorial's ColorJitter().
 */
export class ColorJitter implements Transform {
  readonly name: string;

  spec(): TransformSpec {
    return { type: 'ColorJitter', args: [this.options] };
  }
  constructor(readonly options: ColorJitterOptions = {}) {
    const { brightness = 0, contrast = 0, saturation = 0, hue = 0 } = options;
    if (hue < 0 || hue > 0.5) throw new Error('ColorJitter hue must be in [0, 0.5]');
    this.name = `ColorJitter(brightness=${brightness}, contrast=${contrast}, saturation=${saturation}, hue=${hue})`;
  }

  get random(): boolean {
    const { brightness = 0, contrast = 0, saturation = 0, hue = 0 } = this.options;
    return !!(brightness || contrast || saturation || hue); // ColorJitter() is a no-op, as in the tutorial
  }

  async apply(sample: Sample, rng: Random): Promise<Sample> {
    if (!this.random) return geometric(sample, this.name);
    const { brightness = 0, contrast = 0, saturation = 0, hue = 0 } = this.options;
    const img = await decodeRgb(geometric(sample, this.name));
    const px = Float32Array.from(img.data);
    const factor = (x: number): number => rng.uniform(Math.max(0, 1 - x), 1 + x);
    const ops = rng.shuffled([0, 1, 2, 3]);
    const b = brightness ? factor(brightness) : null;
    const c = contrast ? factor(contrast) : null;
    const s = saturation ? factor(saturation) : null;
    const h = hue ? rng.uniform(-hue, hue) : null;
    for (const op of ops) {
      if (op === 0 && b !== null) blend(px, b, () => 0);
      if (op === 1 && c !== null) {
        let mean = 0;
        for (let i = 0; i < px.length; i += 3) mean += gray(px, i);
        mean /= px.length / 3;
        blend(px, c, () => mean);
      }
      if (op === 2 && s !== null) blend(px, s, (i) => gray(px, i));
      if (op === 3 && h !== null) shiftHue(px, h);
    }
    const data = new Uint8Array(px.length);
    for (let i = 0; i < px.length; i++) data[i] = Math.round(Math.min(255, Math.max(0, px[i])));
    return { kind: 'rgb', data, width: img.width, height: img.height };
  }
}

function gray(px: Float32Array, i: number): number {
  return 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
}

/** px = other + factor·(px − other), clamped to [0, 255], per pixel. */
function blend(px: Float32Array, factor: number, other: (i: number) => number): void {
  for (let i = 0; i < px.length; i += 3) {
    const o = other(i);
    for (let k = 0; k < 3; k++) px[i + k] = Math.min(255, Math.max(0, o + factor * (px[i + k] - o)));
  }
}

function shiftHue(px: Float32Array, shift: number): void {
  for (let i = 0; i < px.length; i += 3) {
    const r = px[i] / 255;
    const g = px[i + 1] / 255;
    const b = px[i + 2] / 255;
    const max = Math.max(r, g, b);
    const min = Math.min(r, g, b);
    const d = max - min;
    let hh = 0;
    if (d > 0) hh = max === r ? ((g - b) / d + 6) % 6 : max === g ? (b - r) / d + 2 : (r - g) / d + 4;
    hh = (((hh / 6 + shift) % 1) + 1) % 1;
    const s = max === 0 ? 0 : d / max;
    const sector = Math.floor(hh * 6);
    const f = hh * 6 - sector;
    const p = max * (1 - s);
    const q = max * (1 - f * s);
    const t = max * (1 - (1 - f) * s);
    const rgb = [
      [max, t, p],
      [q, max, p],
      [p, max, t],
      [p, q, max],
      [t, p, max],
      [max, p, q],
    ][sector % 6];
    px[i] = rgb[0] * 255;
    px[i + 1] = rgb[1] * 255;
    px[i + 2] = rgb[2] * 255;
  }
}

/** ToTensor(): 8-bit RGB → float in [0, 1] (HWC). */
export class ToTensor implements Transform {
  readonly random = false;
  readonly name = 'ToTensor()';

  spec(): TransformSpec {
    return { type: 'ToTensor', args: [] };
  }
  async apply(sample: Sample): Promise<FloatImage> {
    const img = await decodeRgb(sample);
    const data = new Float32Array(img.data.length);
    for (let i = 0; i < data.length; i++) data[i] = img.data[i] / 255;
    return { kind: 'float', data, width: img.width, height: img.height };
  }
}

/** Normalize(mean, std) per channel, on ToTensor's output. */
export class Normalize implements Transform {
  readonly random = false;
  readonly name: string;

  spec(): TransformSpec {
    return { type: 'Normalize', args: [this.mean, this.std] };
  }
  constructor(
    readonly mean: [number, number, number],
    readonly std: [number, number, number],
  ) {
    this.name = `Normalize(mean=[${mean.join(', ')}], std=[${std.join(', ')}])`;
  }

  async apply(sample: Sample): Promise<FloatImage> {
    if (sample.kind !== 'float') throw new Error('Normalize needs ToTensor first');
    const data = new Float32Array(sample.data.length);
    for (let i = 0; i < data.length; i++) data[i] = (sample.data[i] - this.mean[i % 3]) / this.std[i % 3];
    return { ...sample, data };
  }
}

/** The "caffe" mean of Keras' ImageNet weights, in BGR order. */
export const CAFFE_MEAN_BGR: [number, number, number] = [103.939, 116.779, 123.68];

/**
 * The preprocessing the bundled Keras ResNet50 weights were trained with ("caffe"): RGB → BGR, then
 * subtract the per-channel ImageNet mean, no scaling. It takes 0–255 pixels, so it replaces
 * ToTensor + Normalize rather than following them.
 */
export class CaffePreprocess implements Transform {
  readonly random = false;
  readonly name = 'CaffePreprocess(BGR, mean=[103.939, 116.779, 123.68])';

  spec(): TransformSpec {
    return { type: 'CaffePreprocess', args: [] };
  }
  async apply(sample: Sample): Promise<FloatImage> {
    if (sample.kind === 'float')
      throw new Error('CaffePreprocess takes 0-255 pixels: use it instead of ToTensor/Normalize');
    const img = await decodeRgb(sample);
    const [b, g, r] = CAFFE_MEAN_BGR;
    const px = img.data;
    const data = new Float32Array(px.length);
    for (let i = 0; i < data.length; i += 3) {
      data[i] = px[i + 2] - b;
      data[i + 1] = px[i + 1] - g;
      data[i + 2] = px[i] - r;
    }
    return { kind: 'float', data, width: img.width, height: img.height };
  }
}

export const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

/** How pixels are scaled for a backbone: torchvision's ImageNet Normalize, or Keras' caffe. */
export type Preprocessing = 'imagenet' | 'caffe';

/** The steps that turn 8-bit pixels into the backbone's input: ToTensor + Normalize, or CaffePreprocess. */
export function preprocessingSteps(preprocessing: Preprocessing): Transform[] {
  return preprocessing === 'caffe'
    ? [new CaffePreprocess()]
    : [new ToTensor(), new Normalize(IMAGENET_MEAN, IMAGENET_STD)];
}

/** The resize that goes with a crop of `inputSize`, in the tutorial's 256 : 224 proportion (366 for 320). */
export function resizeFor(inputSize: number): number {
  return Math.round((inputSize * 256) / 224);
}

/**
 * The tutorial's training transforms (augmentation), ending with the model's preprocessing. Other input
 * sizes than 224 (the model's inputSize) keep the tutorial's proportions. With `randAugment`, RandAugment
 * follows the crop.
 */
export function trainTransforms(
  preprocessing: Preprocessing = 'caffe',
  inputSize = 224,
  randAugment?: RandAugmentOptions,
): Compose {
  return new Compose([
    new RandomResizedCrop(resizeFor(inputSize), [0.8, 1.0]),
    new RandomRotation(15),
    new ColorJitter(),
    new RandomHorizontalFlip(),
    new CenterCrop(inputSize),
    // On the final crop, as in torchvision's reference training recipes (crop, flip, then RandAugment).
    ...(randAugment ? [new RandAugment(randAugment.numOps, randAugment.magnitude)] : []),
    ...preprocessingSteps(preprocessing),
  ]);
}

/** The tutorial's validation and test transforms: Resize(256), CenterCrop(224), then the model's preprocessing. */
export function evalTransforms(preprocessing: Preprocessing = 'caffe', inputSize = 224): Compose {
  return new Compose([
    new Resize(resizeFor(inputSize)),
    new CenterCrop(inputSize),
    ...preprocessingSteps(preprocessing),
  ]);
}

/**
 * Test-time augmentation input: Resize(256) and the model's preprocessing, uncropped, so that the
 * evaluator can cut the centre and corner crops itself (ttaViews).
 */
export function ttaTransforms(preprocessing: Preprocessing = 'caffe', inputSize = 224): Compose {
  return new Compose([new Resize(resizeFor(inputSize)), ...preprocessingSteps(preprocessing)]);
}

/** Rebuilds a built-in transform from its spec (used by decode workers). */
export function transformFromSpec(spec: TransformSpec): Transform {
  const a = spec.args as never[];
  switch (spec.type) {
    case 'Compose':
      return new Compose((spec.args as TransformSpec[]).map(transformFromSpec));
    case 'Resize':
      return new Resize(a[0]);
    case 'CenterCrop':
      return new CenterCrop(a[0]);
    case 'RandomResizedCrop':
      return new RandomResizedCrop(a[0], a[1], a[2]);
    case 'RandomRotation':
      return new RandomRotation(a[0]);
    case 'RandomHorizontalFlip':
      return new RandomHorizontalFlip(a[0]);
    case 'ColorJitter':
      return new ColorJitter(a[0]);
    case 'ToTensor':
      return new ToTensor();
    case 'Normalize':
      return new Normalize(a[0], a[1]);
    case 'CaffePreprocess':
      return new CaffePreprocess();
    case 'RandAugment':
      return new RandAugment(a[0], a[1]);
    default:
      throw new Error(`unknown transform type "${spec.type}"`);
  }
}

/** The transform's spec, or null when it (or one of its parts) has none and so must run on the main thread. */
export function specOf(transform: Transform): TransformSpec | null {
  try {
    return transform.spec ? transform.spec() : null;
  } catch {
    return null;
  }
}
