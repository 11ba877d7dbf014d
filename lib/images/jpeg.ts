/**
 * The fast path for plain JPEG files: the native addon native/boat_jpeg.cc decodes with libjpeg-turbo,
 * shrunk in the DCT domain where the resize allows (jpegShrinkFor), and resamples the box with PIL's
 * antialiased bilinear filter (torchvision's Resize on PIL images) in the same call.
 *
 * Why not sharp for these: on the 1280 px boat photos libvips' pipeline cost more than the JPEG decode
 * itself, and decoding is nearly all of a loader's work (`npm run bench` shows the loader with and
 * without the addon; docs/benchmarks.md, "The loader: where the time goes"). Files it
 * does not take (not JPEG, EXIF-rotated, with an ICC profile, not 3-channel) and any file it fails on
 * (corrupt, truncated: libjpeg's warnings count as failures) go through sharp as before, so bad files
 * are judged and reported the same way.
 *
 * `npm install` builds the addon when g++ and libjpeg-dev are present (scripts/build-native.js);
 * BOAT_NATIVE=0 or BOAT_NATIVE_JPEG=0 turns it off.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { Box, ImageSource, PendingImage, RgbImage } from './types';

interface JpegAddon {
  resizedCropJpeg(file: string, geometry: Float64Array, shrink: number): Promise<Uint8Array>;
  describe(): string;
}

const ADDON = path.resolve(__dirname, '..', '..', '..', 'native', 'build', 'boat_jpeg.node');

let addon: JpegAddon | null | undefined;
let enabled = process.env.BOAT_NATIVE !== '0' && process.env.BOAT_NATIVE_JPEG !== '0';
let exact = process.env.BOAT_JPEG_EXACT === '1';

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

/**
 * Exact mode (BOAT_JPEG_EXACT=1): no DCT-domain shrink, so the addon's pixels are torchvision's to the
 * bit on every photo, for comparisons with the PyTorch tutorial on identical inputs; decoding then
 * reads every pixel of the crop's band, slower.
 */
export function jpegExact(): boolean {
  return exact;
}

export function setJpegExact(on: boolean): void {
  exact = on;
}

/** Which decoder makes the pixels of plain JPEG files, for cache keys and reports. */
export function jpegDecoderName(): string {
  return jpegAddonActive() ? `boat_jpeg (${loaded()!.describe()}, PIL bilinear${exact ? ', exact' : ''})` : 'sharp';
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
export function jpegGeometry(
  base: ImageSource,
  pending: Pick<PendingImage, 'cropBefore' | 'resize' | 'cropAfter'>,
): { geometry: Float64Array; shrink: number } {
  const clip: Box = pending.cropBefore ?? { left: 0, top: 0, width: base.width, height: base.height };
  let box = clip;
  let out = { width: clip.width, height: clip.height };
  let shrink = 1;
  if (pending.resize) {
    const sx = clip.width / pending.resize.width;
    const sy = clip.height / pending.resize.height;
    const after = pending.cropAfter ?? { left: 0, top: 0, ...pending.resize };
    box = {
      left: clip.left + after.left * sx,
      top: clip.top + after.top * sy,
      width: after.width * sx,
      height: after.height * sy,
    };
    out = { width: after.width, height: after.height };
    shrink = exact ? 1 : jpegShrinkFor(Math.min(sx, sy));
  }
  const geometry = Float64Array.from([
    box.left,
    box.top,
    box.width,
    box.height,
    clip.left,
    clip.top,
    clip.left + clip.width,
    clip.top + clip.height,
    out.width,
    out.height,
  ]);
  return { geometry, shrink };
}

/**
 * Decodes a plain JPEG's pending crop/resize with the addon; null when the addon is off or the file
 * is not one it takes, or it failed on the file (the caller then uses sharp).
 */
export async function decodeJpeg(
  base: ImageSource,
  pending: Pick<PendingImage, 'cropBefore' | 'resize' | 'cropAfter'>,
): Promise<RgbImage | null> {
  if (!base.plainJpeg || !jpegAddonActive()) return null;
  const { geometry, shrink } = jpegGeometry(base, pending);
  try {
    const data = await loaded()!.resizedCropJpeg(base.file, geometry, shrink);
    return { kind: 'rgb', data, width: geometry[8], height: geometry[9] };
  } catch {
    return null;
  }
}

/** Bytes read to find a JPEG's header; a header that does not fit is left to sharp. */
const HEADER_BYTES = 64 * 1024;

/**
 * The size of a plain JPEG (see ImageSource.plainJpeg) from its markers, without sharp: null for
 * anything else, or anything unexpected, and the caller asks sharp. A read of the file's first bytes
 * costs less than sharp's metadata(), which showed in the loader's time once decoding got faster.
 */
export async function plainJpegSize(file: string): Promise<{ width: number; height: number } | null> {
  let bytes: Buffer;
  try {
    const handle = await fs.promises.open(file, 'r');
    try {
      const buffer = Buffer.alloc(HEADER_BYTES);
      const { bytesRead } = await handle.read(buffer, 0, HEADER_BYTES, 0);
      bytes = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
  return parsePlainJpeg(bytes);
}

/** The marker walk behind plainJpegSize, on the file's first bytes. */
export function parsePlainJpeg(b: Buffer): { width: number; height: number } | null {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return null;
  let at = 2;
  let size: { width: number; height: number } | null = null;
  while (at + 4 <= b.length) {
    if (b[at] !== 0xff) return null;
    const marker = b[at + 1];
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    const length = b.readUInt16BE(at + 2);
    const body = at + 4;
    if (length < 2 || body + length - 2 > b.length) return null;
    if (marker === 0xda) return size; // start of scan: the header is over
    if (marker === 0xc0 || marker === 0xc1 || marker === 0xc2) {
      // Baseline, extended or progressive Huffman: precision, height, width, components.
      if (length < 8 || b[body] !== 8 || b[body + 5] !== 3) return null;
      size = { width: b.readUInt16BE(body + 3), height: b.readUInt16BE(body + 1) };
      if (size.width === 0 || size.height === 0) return null;
    } else if (marker >= 0xc3 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return null; // lossless, hierarchical or arithmetic-coded
    } else if (marker === 0xe1 && b.toString('latin1', body, body + 6) === 'Exif\0\0') {
      const orientation = exifOrientation(b.subarray(body + 6, body + length - 2));
      if (orientation === null || orientation !== 1) return null;
    } else if (marker === 0xe2 && b.toString('latin1', body, body + 12) === 'ICC_PROFILE\0') {
      return null; // colour-managed: sharp converts it to sRGB
    } else if (
      marker === 0xee &&
      b.toString('latin1', body, body + 5) === 'Adobe' &&
      length >= 14 &&
      b[body + 11] === 0
    ) {
      return null; // Adobe transform 0: RGB or CMYK samples, not YCbCr
    }
    at = body + length - 2;
  }
  return null;
}

/** The Orientation tag (0x0112) of an Exif block's first IFD: 1 when absent, null when the block is malformed. */
function exifOrientation(tiff: Buffer): number | null {
  if (tiff.length < 8) return null;
  const little = tiff.toString('latin1', 0, 2) === 'II';
  if (!little && tiff.toString('latin1', 0, 2) !== 'MM') return null;
  const u16 = (o: number): number => (little ? tiff.readUInt16LE(o) : tiff.readUInt16BE(o));
  const u32 = (o: number): number => (little ? tiff.readUInt32LE(o) : tiff.readUInt32BE(o));
  if (u16(2) !== 42) return null;
  const ifd = u32(4);
  if (ifd + 2 > tiff.length) return null;
  const entries = u16(ifd);
  if (ifd + 2 + entries * 12 > tiff.length) return null;
  for (let k = 0; k < entries; k++) {
    const entry = ifd + 2 + k * 12;
    if (u16(entry) === 0x0112) return u16(entry + 2) === 3 ? u16(entry + 8) : null;
  }
  return 1;
}
