/**
 * The library's eval transforms (Resize(short side), CenterCrop, the backbone's normalisation) as plain
 * arithmetic on RGBA or RGB bytes, for the web page. DOM-free so that the Node tests check it against
 * lib/images' transforms on the same pixels; only the resampling differs (the browser's, not libvips').
 */
import type { ExportManifest } from './boat-json';
import { resizeBox } from './resample';

/** Python's round(): halves go to the even neighbour, as torchvision's CenterCrop rounds its offsets. */
function pyRound(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface EvalGeometry {
  /** Size of the whole image after Resize(resize) of its short side (long side truncated, like torchvision). */
  width: number;
  height: number;
  /** The centre crop inside the resized image (may be negative when the image is smaller than the crop). */
  left: number;
  top: number;
  size: number;
}

/**
 * The eval transforms' pixels from a decoded width×height image: Resize(resize) of the short side and
 * CenterCrop(crop) as one PIL bilinear resample of the crop's box (the pixels are those of a resize
 * followed by a crop: the filter reads past the box edges as the full resize would), RGB out.
 */
export function evalCropPixels(
  pixels: ArrayLike<number>,
  width: number,
  height: number,
  channels: 3 | 4,
  resize: number,
  crop: number,
): Uint8Array {
  const g = evalGeometry(width, height, resize, crop);
  if (g.left < 0 || g.top < 0) throw new Error(`Resize(${resize}) is smaller than CenterCrop(${crop})`);
  const sx = width / g.width;
  const sy = height / g.height;
  return resizeBox(
    pixels,
    width,
    height,
    channels,
    { left: g.left * sx, top: g.top * sy, width: crop * sx, height: crop * sy },
    crop,
    crop,
  );
}

export function evalGeometry(width: number, height: number, resize: number, crop: number): EvalGeometry {
  const [w, h] =
    width <= height ? [resize, Math.floor((resize * height) / width)] : [Math.floor((resize * width) / height), resize];
  return { width: w, height: h, left: pyRound((w - crop) / 2), top: pyRound((h - crop) / 2), size: crop };
}

/**
 * Normalises size×size pixels (`channels` 3 or 4 bytes each, alpha ignored) into the model's HWC float
 * input: caffe (BGR minus the mean) or imagenet ((RGB/255 − mean) / std).
 */
export function normalizePixels(
  pixels: ArrayLike<number>,
  channels: 3 | 4,
  p: ExportManifest['preprocessing'],
): Float32Array {
  const n = Math.floor(pixels.length / channels);
  const out = new Float32Array(n * 3);
  const [m0, m1, m2] = p.mean;
  for (let i = 0; i < n; i++) {
    const r = pixels[i * channels];
    const g = pixels[i * channels + 1];
    const b = pixels[i * channels + 2];
    if (p.normalization === 'caffe') {
      out[i * 3] = b - m0;
      out[i * 3 + 1] = g - m1;
      out[i * 3 + 2] = r - m2;
    } else {
      const [s0, s1, s2] = p.std ?? [1, 1, 1];
      out[i * 3] = (r / 255 - m0) / s0;
      out[i * 3 + 1] = (g / 255 - m1) / s1;
      out[i * 3 + 2] = (b / 255 - m2) / s2;
    }
  }
  return out;
}

export interface Ranked {
  class: string;
  probability: number;
}

/** The k most probable classes, most probable first. */
export function topK(probabilities: ArrayLike<number>, classes: readonly string[], k = 3): Ranked[] {
  return Array.from(probabilities, (p, i) => ({ class: classes[i], probability: p }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, Math.min(k, classes.length));
}
