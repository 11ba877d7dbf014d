/**
 * The fast path for plain JPEG files: the native addon native/boat_jpeg.cc decodes with libjpeg-turbo,
 * shrunk in the DCT domain as sharp's shrink-on-load would, and resamples the box with PIL's
 * antialiased bilinear filter (torchvision's Resize on PIL images) in the same call.
 *
 * Why not sharp for these: on the 1280 px boat photos libvips' pipeline took about twice libjpeg-turbo's
 * own decode time per image, and decoding is nearly all of a loader's work (README, "Loader"). Files it
 * does not take (not JPEG, EXIF-rotated, with an ICC profile, not 3-channel) and any file it fails on
 * (corrupt, truncated: libjpeg's warnings count as failures) go through sharp as before, so bad files
 * are judged and reported the same way.
 *
 * `npm install` builds the addon when g++ and libjpeg-dev are present (scripts/build-native.js);
 * BOAT_NATIVE=0 or BOAT_NATIVE_JPEG=0 turns it off.
 */
import * as path from 'node:path';

import type { Box, ImageSource, PendingImage, RgbImage } from './sample';

interface JpegAddon {
  resizedCropJpeg(file: string, geometry: Float64Array, shrink: number): Promise<Uint8Array>;
  describe(): string;
}

const ADDON = path.resolve(__dirname, '..', '..', '..', 'native', 'build', 'boat_jpeg.node');

let addon: JpegAddon | null | undefined;
let enabled = process.env.BOAT_NATIVE !== '0' && process.env.BOAT_NATIVE_JPEG !== '0';

function loaded(): JpegAddon | null {
  if (addon === undefined) {
    try {
      addon = require(ADDON) as JpegAddon;
    } catch {
      addon = null;
    }
  }
  return addon;
}

/** Whether plain JPEG files are decoded by the addon (built and not turned off). */
export function jpegAddonActive(): boolean {
  return enabled && loaded() !== null;
}

/** Turns the addon on or off in this thread (the benchmark compares both; decode workers follow the loader's thread). */
export function setJpegAddon(on: boolean): void {
  enabled = on;
}

/** Which decoder makes the pixels of plain JPEG files, for cache keys and reports. */
export function jpegDecoderName(): string {
  return jpegAddonActive() ? `boat_jpeg (${loaded()!.describe()}, PIL bilinear)` : 'sharp';
}

/**
 * The DCT-domain shrink for a JPEG box resized down by `factor`: the largest of 8, 4, 2 that leaves the
 * bilinear filter at least 1.5× to antialias, so the result stays near a full-size resize (torchvision
 * decodes every pixel). For the tutorial's Resize(256) of 1280×853 photos (3.3×) it is 2, as in sharp;
 * unlike sharp, a crop that comes first (RandomResizedCrop's boxes) shrinks too.
 */
export function jpegShrinkFor(factor: number): number {
  for (const shrink of [8, 4, 2]) if (factor >= 1.5 * shrink) return shrink;
  return 1;
}

/** The source box, the pixels the filter may read, the output size and the shrink of a pending decode. */
export function jpegGeometry(base: ImageSource, pending: Pick<PendingImage, 'cropBefore' | 'resize' | 'cropAfter'>): { geometry: Float64Array; shrink: number } {
  const clip: Box = pending.cropBefore ?? { left: 0, top: 0, width: base.width, height: base.height };
  let box = clip;
  let out = { width: clip.width, height: clip.height };
  let shrink = 1;
  if (pending.resize) {
    const sx = clip.width / pending.resize.width;
    const sy = clip.height / pending.resize.height;
    const after = pending.cropAfter ?? { left: 0, top: 0, ...pending.resize };
    box = { left: clip.left + after.left * sx, top: clip.top + after.top * sy, width: after.width * sx, height: after.height * sy };
    out = { width: after.width, height: after.height };
    shrink = jpegShrinkFor(Math.min(sx, sy));
  }
  const geometry = Float64Array.from([box.left, box.top, box.width, box.height, clip.left, clip.top, clip.left + clip.width, clip.top + clip.height, out.width, out.height]);
  return { geometry, shrink };
}

/**
 * Decodes a plain JPEG's pending crop/resize with the addon; null when the addon is off or the file
 * is not one it takes, or it failed on the file (the caller then uses sharp).
 */
export async function decodeJpeg(base: ImageSource, pending: Pick<PendingImage, 'cropBefore' | 'resize' | 'cropAfter'>): Promise<RgbImage | null> {
  if (!base.plainJpeg || !jpegAddonActive()) return null;
  const { geometry, shrink } = jpegGeometry(base, pending);
  try {
    const data = await loaded()!.resizedCropJpeg(base.file, geometry, shrink);
    return { kind: 'rgb', data, width: geometry[8], height: geometry[9] };
  } catch {
    return null;
  }
}
