import * as path from 'node:path';
import sharp from 'sharp';
import type { Metadata } from 'sharp';

import { errorLine } from '../util';

export interface ImageHeader {
  /** Width and height as displayed, i.e. after the EXIF orientation is applied. */
  width: number;
  height: number;
  /** The real format found in the bytes (jpeg, png, webp, gif...), whatever the extension says. */
  format: string;
  /** Number of frames (more than 1 for animations). */
  pages: number;
}

/** Reads an image header (no pixel decoding). Throws a one-line error for a non-image or unknown format. */
export async function readImageHeader(file: string): Promise<ImageHeader> {
  let meta: Metadata;
  try {
    meta = await sharp(file).metadata();
  } catch (err) {
    throw new Error(`not a readable image: ${errorLine(err)}`);
  }
  if (!meta.width || !meta.height || !meta.format) throw new Error('not a readable image: no size in header');
  const swap = (meta.orientation ?? 1) >= 5;
  return {
    width: swap ? meta.height : meta.width,
    height: swap ? meta.width : meta.height,
    format: meta.format,
    pages: meta.pages ?? 1,
  };
}

/**
 * Decodes the whole image at reduced size (JPEG shrink-on-load keeps it cheap), which catches truncated
 * or corrupt data that a header read misses. Returns null when fine, else a one-line reason.
 */
export async function findDecodeProblem(file: string): Promise<string | null> {
  try {
    await sharp(file, { failOn: 'warning' }).resize(64, 64, { fit: 'inside' }).raw().toBuffer();
    return null;
  } catch (err) {
    return `cannot decode: ${errorLine(err)}`;
  }
}

/** Notes an extension that does not match the real format (a PNG saved as .jpg); decoding still works. */
export function extensionMismatch(file: string, format: string): string | null {
  const ext = path.extname(file).toLowerCase().replace('.', '');
  const expected: Record<string, string[]> = {
    jpeg: ['jpg', 'jpeg'],
    png: ['png'],
    webp: ['webp'],
    tiff: ['tif', 'tiff'],
    gif: ['gif'],
  };
  const ok = expected[format];
  return ok && !ok.includes(ext) ? `a ${format.toUpperCase()} file with a .${ext} extension` : null;
}
