/**
 * The values that flow through a transform pipeline.
 *
 * A pipeline starts from an image file (`ImageSource`): the first geometric transform decodes it in
 * sharp/libvips together with its own resize or crop, so no full-size pixel buffer is made in JS.
 * Geometric transforms give 8-bit RGB pixels (`RgbImage`); ToTensor, Normalize and CaffePreprocess give
 * float pixels (`FloatImage`), laid out HWC (TF.js is NHWC, unlike torchvision's CHW).
 */
import sharp from 'sharp';
import type { Sharp } from 'sharp';

import { errorLine } from '../util';
import { decodeJpeg, jpegAddonActive, plainJpegSize } from './jpeg';
import { pixelLimitProblem } from './limits';
import type { Box, Geometric, ImageSource, PendingImage, RgbImage, Sample } from './types';

/** An error for one image file; loaders skip such a file and report this one-line reason. */
export class ImageDecodeError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = 'ImageDecodeError';
  }
}

/**
 * Reads the header of an image file (EXIF orientation applied); fails with ImageDecodeError, also for
 * a header claiming more than MAX_IMAGE_PIXELS, so that no decoder allocates for it.
 */
export async function openImage(file: string): Promise<ImageSource> {
  const source = await readSource(file);
  const tooLarge = pixelLimitProblem(source.width, source.height);
  if (tooLarge) throw new ImageDecodeError(file, tooLarge);
  return source;
}

async function readSource(file: string): Promise<ImageSource> {
  if (jpegAddonActive()) {
    const size = await plainJpegSize(file);
    if (size) return { kind: 'source', file, ...size, plainJpeg: true };
  }
  try {
    // Only the header is read here; the pixel limit is checked by openImage, with a reason that says so.
    const meta = await sharp(file, { limitInputPixels: false }).metadata();
    if (!meta.width || !meta.height) throw new Error('no size in header');
    const swap = (meta.orientation ?? 1) >= 5;
    const plainJpeg =
      meta.format === 'jpeg' &&
      (meta.orientation ?? 1) === 1 &&
      !meta.hasProfile &&
      meta.channels === 3 &&
      meta.space === 'srgb';
    return {
      kind: 'source',
      file,
      width: swap ? meta.height : meta.width,
      height: swap ? meta.width : meta.height,
      plainJpeg,
    };
  } catch (err) {
    throw new ImageDecodeError(file, `not a readable image (${errorLine(err)})`);
  }
}

/**
 * A sharp pipeline over the sample: for a file, EXIF orientation is applied first and only the first
 * frame of an animation is read; for pixels, the raw buffer.
 */
export function pipelineOf(sample: ImageSource | RgbImage): Sharp {
  if (sample.kind === 'source') return sharp(sample.file, { autoOrient: true, failOn: 'error', pages: 1 });
  return sharp(sample.data, { raw: { width: sample.width, height: sample.height, channels: 3 } });
}

/**
 * Runs a sharp pipeline to 8-bit sRGB RGB pixels: grayscale, CMYK, alpha and 16-bit inputs are
 * converted (alpha is dropped, as PIL's convert('RGB') does).
 */
export async function toRgb(pipeline: Sharp, file?: string): Promise<RgbImage> {
  try {
    const { data, info } = await pipeline
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels after conversion, got ${info.channels}`);
    return {
      kind: 'rgb',
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      width: info.width,
      height: info.height,
    };
  } catch (err) {
    // libvips reports some failures from its worker threads only as "Unknown error".
    const detail = errorLine(err);
    throw new ImageDecodeError(
      file ?? '<pixels>',
      `cannot decode (${detail === 'Unknown error' ? 'corrupt or truncated image data' : detail})`,
    );
  }
}

/** Materialises a sample as RGB pixels, running any pending crop/resize in one sharp pass. */
export async function decodeRgb(sample: Sample): Promise<RgbImage> {
  switch (sample.kind) {
    case 'rgb':
      return sample;
    case 'float':
      throw new Error('cannot turn float pixels back into an 8-bit image');
    case 'source':
      return (await decodeJpeg(sample, {})) ?? toRgb(pipelineOf(sample), sample.file);
    case 'pending': {
      // A crop of pixels already decoded is a copy: no sharp round trip.
      if (sample.base.kind === 'rgb' && !sample.resize && sample.cropBefore)
        return cropRgb(sample.base, sample.cropBefore);
      if (sample.base.kind === 'source') {
        const fast = await decodeJpeg(sample.base, sample);
        if (fast) return fast;
      }
      let pipeline = pipelineOf(sample.base);
      if (sample.cropBefore) pipeline = pipeline.extract(sample.cropBefore);
      if (sample.resize)
        pipeline = pipeline.resize(sample.resize.width, sample.resize.height, { fit: 'fill', kernel: 'linear' });
      if (sample.cropAfter) pipeline = pipeline.extract(sample.cropAfter);
      return toRgb(pipeline, sample.base.kind === 'source' ? sample.base.file : undefined);
    }
  }
}

/** Copies `box` (inside the image) out of 8-bit RGB pixels. */
export function cropRgb(img: RgbImage, box: Box): RgbImage {
  const out = new Uint8Array(box.width * box.height * 3);
  const row = box.width * 3;
  for (let y = 0; y < box.height; y++) {
    const from = ((box.top + y) * img.width + box.left) * 3;
    out.set(img.data.subarray(from, from + row), y * row);
  }
  return { kind: 'rgb', data: out, width: box.width, height: box.height };
}

/** Records a resize; materialises earlier work first when a resize or a later crop is already recorded. */
export async function withResize(sample: Geometric, width: number, height: number): Promise<PendingImage> {
  if (sample.kind === 'pending' && (sample.resize || sample.cropAfter)) sample = await decodeRgb(sample);
  if (sample.kind === 'pending') return { ...sample, resize: { width, height }, width, height };
  return { kind: 'pending', base: sample, resize: { width, height }, width, height };
}

/** Records a crop (the box must lie inside the image); it runs before or after the resize as recorded. */
export async function withCrop(sample: Geometric, box: Box): Promise<PendingImage> {
  if (sample.kind === 'pending' && sample.cropAfter) sample = await decodeRgb(sample);
  const size = { width: box.width, height: box.height };
  if (sample.kind !== 'pending') return { kind: 'pending', base: sample, cropBefore: box, ...size };
  if (sample.resize) return { ...sample, cropAfter: box, ...size };
  if (sample.cropBefore) {
    const { left, top } = sample.cropBefore;
    return { ...sample, cropBefore: { ...box, left: left + box.left, top: top + box.top }, ...size };
  }
  return { ...sample, cropBefore: box, ...size };
}
