/**
 * Pillow's pixel operations on 8-bit RGB, reproduced to the pixel: torchvision's transforms run them on PIL
 * images (the tutorial's input type), so these are what its RandomRotation and RandAugment compute. Each
 * follows the C code it names, including its float32 arithmetic and truncations; the tests compare them
 * with Pillow's own outputs.
 */
import type { RgbImage } from './types';

/** The six coefficients of Image.transform(AFFINE): output pixel (x, y) reads input (a·x + b·y + c, d·x + e·y + f). */
export type AffineMatrix = [number, number, number, number, number, number];

const f32 = Math.fround;

/**
 * Image.transform(size, AFFINE, matrix, NEAREST) with black outside (Geometry.c, ImagingTransformAffine):
 * a matrix without rotation or shear is a scaling (ImagingScaleAffine); any other in 16.16 fixed point,
 * stepping from the first pixel's centre (affine_fixed), while the corners fit in it, as they do for
 * every image size the transforms see.
 */
export function affineNearest(img: RgbImage, matrix: AffineMatrix): RgbImage {
  const [a, b, c, d, e, f] = matrix;
  const { width: w, height: h, data } = img;
  const out = new Uint8Array(data.length);
  const copy = (dst: number, sx: number, sy: number): void => {
    const src = (sy * w + sx) * 3;
    out[dst] = data[src];
    out[dst + 1] = data[src + 1];
    out[dst + 2] = data[src + 2];
  };
  const coord = (v: number): number => (v < 0 ? -1 : Math.trunc(v));
  if (b === 0 && d === 0) {
    const xin = new Int32Array(w);
    for (let x = 0, xo = c + a * 0.5; x < w; x++, xo += a) xin[x] = coord(xo);
    for (let y = 0, yo = f + e * 0.5; y < h; y++, yo += e) {
      const sy = coord(yo);
      if (sy < 0 || sy >= h) continue;
      for (let x = 0; x < w; x++) if (xin[x] >= 0 && xin[x] < w) copy((y * w + x) * 3, xin[x], sy);
    }
    return { kind: 'rgb', data: out, width: w, height: h };
  }
  const fix = (v: number): number => Math.floor(v * 65536 + 0.5);
  const [a0, a1, a3, a4] = [fix(a), fix(b), fix(d), fix(e)];
  let rowX = fix(c + a * 0.5 + b * 0.5);
  let rowY = fix(f + d * 0.5 + e * 0.5);
  for (let y = 0, dst = 0; y < h; y++, rowX += a1, rowY += a4) {
    let xx = rowX;
    let yy = rowY;
    for (let x = 0; x < w; x++, xx += a0, yy += a3, dst += 3) {
      const sx = xx >> 16;
      const sy = yy >> 16;
      if (sx >= 0 && sy >= 0 && sx < w && sy < h) copy(dst, sx, sy);
    }
  }
  return { kind: 'rgb', data: out, width: w, height: h };
}

/**
 * torchvision's _get_inverse_affine_matrix: the matrix Pillow's transform needs for F.affine about
 * `center` (pixels from the top-left corner), by `angle` and `shear` (degrees), then `translate`.
 */
export function inverseAffineMatrix(
  center: [number, number],
  angle: number,
  translate: [number, number],
  scale: number,
  shear: [number, number],
): AffineMatrix {
  const radians = (deg: number): number => deg * (Math.PI / 180);
  const [rot, sx, sy] = [radians(angle), radians(shear[0]), radians(shear[1])];
  const [cx, cy] = center;
  const [tx, ty] = translate;
  const a = Math.cos(rot - sy) / Math.cos(sy);
  const b = (-Math.cos(rot - sy) * Math.tan(sx)) / Math.cos(sy) - Math.sin(rot);
  const c = Math.sin(rot - sy) / Math.cos(sy);
  const d = (-Math.sin(rot - sy) * Math.tan(sx)) / Math.cos(sy) + Math.cos(rot);
  const m = [d, -b, 0, -c, a, 0].map((v) => v / scale) as AffineMatrix;
  m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
  m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
  m[2] += cx;
  m[5] += cy;
  return m;
}

/**
 * Image.rotate(angle, NEAREST) (expand=False, black fill): counter-clockwise by `angle` degrees about the
 * centre, with Image.rotate's matrix (math.radians, entries rounded to 15 decimals).
 */
export function rotateNearest(img: RgbImage, angle: number): RgbImage {
  const { width: w, height: h } = img;
  const theta = -(angle * (Math.PI / 180));
  const round15 = (v: number): number => Number(v.toFixed(15));
  const [a, b, d, e] = [
    round15(Math.cos(theta)),
    round15(Math.sin(theta)),
    round15(-Math.sin(theta)),
    round15(Math.cos(theta)),
  ];
  return affineNearest(img, [a, b, a * -(w / 2) + b * -(h / 2) + w / 2, d, e, d * -(w / 2) + e * -(h / 2) + h / 2]);
}

/** Image.blend(degenerate, img, alpha) (Blend.c): degenerate + alpha·(img − degenerate) in float32, truncated, clamped when extrapolating. */
export function blend(degenerate: Uint8Array, img: RgbImage, alpha: number): RgbImage {
  const a = f32(alpha);
  const out = new Uint8Array(img.data.length);
  const interpolate = a >= 0 && a <= 1;
  for (let i = 0; i < out.length; i++) {
    const v = f32(degenerate[i] + f32(a * (img.data[i] - degenerate[i])));
    out[i] = interpolate ? Math.trunc(v) : v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
  }
  return { ...img, data: out };
}

/** convert("L") (Convert.c, rgb2l): ITU-R 601-2 luma in 16-bit fixed point, rounded. */
export function luma(img: RgbImage): Uint8Array {
  const px = img.data;
  const out = new Uint8Array(px.length / 3);
  for (let i = 0; i < out.length; i++)
    out[i] = (px[3 * i] * 19595 + px[3 * i + 1] * 38470 + px[3 * i + 2] * 7471 + 0x8000) >>> 16;
  return out;
}

/** An L image back to RGB: each value in all three channels. */
export function grayToRgb(gray: Uint8Array): Uint8Array {
  const out = new Uint8Array(gray.length * 3);
  for (let i = 0; i < gray.length; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = gray[i];
  return out;
}

/** ImageEnhance.Contrast's grey level: the mean of the L image, rounded half up (ImageStat). */
export function meanLuma(img: RgbImage): number {
  const gray = luma(img);
  let sum = 0;
  for (const v of gray) sum += v;
  return Math.trunc(sum / gray.length + 0.5);
}

/**
 * filter(ImageFilter.SMOOTH) (Filter.c, ImagingFilter3x3): the 3×3 kernel [1 1 1; 1 5 1; 1 1 1] / 13 in
 * float32, rounded; the border rows and columns are kept as they are.
 */
export function smooth(img: RgbImage): Uint8Array {
  const { width: w, height: h, data } = img;
  const out = Uint8Array.from(data);
  const k = [1, 1, 1, 1, 5, 1, 1, 1, 1].map((v) => f32(v / 13));
  const row3 = (i: number, kk: number): number =>
    f32(f32(f32(data[i - 3] * k[kk]) + f32(data[i] * k[kk + 1])) + f32(data[i + 3] * k[kk + 2]));
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      for (let ch = 0; ch < 3; ch++) {
        const i = (y * w + x) * 3 + ch;
        let ss = f32(0.5);
        ss = f32(ss + row3(i + 3 * w, 0));
        ss = f32(ss + row3(i, 3));
        ss = f32(ss + row3(i - 3 * w, 6));
        out[i] = ss < 0 ? 0 : ss > 255 ? 255 : Math.trunc(ss);
      }
    }
  }
  return out;
}

/** Image.point with one 256-entry table per channel (or one for all three). */
export function lookup(img: RgbImage, tables: Uint8Array[]): RgbImage {
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = tables[tables.length === 1 ? 0 : i % 3][img.data[i]];
  return { ...img, data: out };
}

function histograms(img: RgbImage): Float64Array[] {
  const hist = [0, 1, 2].map(() => new Float64Array(256));
  for (let i = 0; i < img.data.length; i++) hist[i % 3][img.data[i]]++;
  return hist;
}

/** ImageOps.posterize(img, bits): keeps the top `bits` bits of every value. */
export function posterize(img: RgbImage, bits: number): RgbImage {
  const mask = ~((1 << (8 - bits)) - 1) & 0xff;
  return lookup(img, [Uint8Array.from({ length: 256 }, (_, i) => i & mask)]);
}

/** ImageOps.solarize(img, threshold): every value at or above the threshold is inverted. */
export function solarize(img: RgbImage, threshold: number): RgbImage {
  return lookup(img, [Uint8Array.from({ length: 256 }, (_, i) => (i < threshold ? i : 255 - i))]);
}

/** ImageOps.autocontrast(img): each channel stretched from its darkest to its lightest value onto 0–255. */
export function autocontrast(img: RgbImage): RgbImage {
  const tables = histograms(img).map((h) => {
    let lo = 0;
    while (lo < 255 && !h[lo]) lo++;
    let hi = 255;
    while (hi > 0 && !h[hi]) hi--;
    if (hi <= lo) return Uint8Array.from({ length: 256 }, (_, i) => i);
    const scale = 255 / (hi - lo);
    const offset = -lo * scale;
    return Uint8Array.from({ length: 256 }, (_, i) => Math.min(255, Math.max(0, Math.trunc(i * scale + offset))));
  });
  return lookup(img, tables);
}

/** ImageOps.equalize(img): each channel's histogram equalised. */
export function equalize(img: RgbImage): RgbImage {
  const tables = histograms(img).map((h) => {
    const used = [...h].filter((v) => v > 0);
    const step = used.length <= 1 ? 0 : Math.floor((used.reduce((s, v) => s + v, 0) - used[used.length - 1]) / 255);
    if (!step) return Uint8Array.from({ length: 256 }, (_, i) => i);
    const table = new Uint8Array(256);
    for (let i = 0, n = Math.floor(step / 2); i < 256; n += h[i], i++) table[i] = Math.min(255, Math.floor(n / step));
    return table;
  });
  return lookup(img, tables);
}
