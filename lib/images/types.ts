/**
 * The image values the transforms pass along, from a file not yet decoded to float pixels. Kept apart
 * from the decoders (sample.ts, jpeg.ts) so that both can use them without importing each other; and the
 * transform interface, so that transforms in other files need not import transforms.ts.
 */
import type { Random } from '../util';

export interface ImageSource {
  kind: 'source';
  file: string;
  /** Size after EXIF orientation. */
  width: number;
  height: number;
  /** A baseline case for the JPEG addon: JPEG, 3 channels, no EXIF rotation, no ICC profile (see jpeg.ts). */
  plainJpeg?: boolean;
}

export interface RgbImage {
  kind: 'rgb';
  /** 8-bit RGB, row-major, 3 bytes per pixel. */
  data: Uint8Array;
  width: number;
  height: number;
}

export interface FloatImage {
  kind: 'float';
  /** Float RGB (or BGR after CaffePreprocess), row-major HWC. */
  data: Float32Array;
  width: number;
  height: number;
}

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * Geometric work recorded but not yet run: up to one crop, one resize and one crop after it, which
 * sharp runs in a single decode (a Resize + CenterCrop, or a RandomResizedCrop, costs one pass).
 * Any transform that needs pixels materialises it with decodeRgb.
 */
export interface PendingImage {
  kind: 'pending';
  base: ImageSource | RgbImage;
  cropBefore?: Box;
  resize?: { width: number; height: number };
  cropAfter?: Box;
  /** Size the image will have once materialised. */
  width: number;
  height: number;
}

export type Sample = ImageSource | RgbImage | PendingImage | FloatImage;

/** What the geometric transforms (resize, crop, flip, rotate) take and give. */
export type Geometric = ImageSource | RgbImage | PendingImage;

export interface Transform {
  /** torchvision-style description, e.g. "Resize(256)". */
  readonly name: string;
  apply(sample: Sample, rng: Random): Promise<Sample>;
  /**
   * A plain-data description that rebuilds this transform in a decode worker (see transformFromSpec).
   * Transforms without one run on the main thread.
   */
  spec?(): TransformSpec;
  /**
   * Whether apply draws from the generator, so one image can give different outputs. Built-ins say;
   * a transform that does not is taken as random (see isRandom).
   */
  readonly random?: boolean;
}

/** Plain data describing a built-in transform: its class name and constructor arguments. */
export interface TransformSpec {
  type: string;
  args: unknown[];
  /** Bumped when a transform's output changes for the same arguments (the feature cache keys on specs). */
  version?: number;
}
