/**
 * PIL's antialiased bilinear resize (Resample.c: precompute_coeffs, then a horizontal and a vertical
 * 8-bit pass with 22 fraction bits), which is torchvision's Resize on PIL images and what
 * native/boat_jpeg.cc computes. The page runs it on the decoded photo instead of letting the browser
 * resample: canvas and createImageBitmap scaling differ by browser and quality setting, and on a small
 * input (64 px) those differences moved class probabilities by up to 0.37.
 *
 * DOM-free, so the tests compare it with the library's resize on the same pixels.
 */
const PRECISION_BITS = 32 - 8 - 2;

interface Coefficients {
  first: Int32Array;
  count: Int32Array;
  weights: Int32Array;
  stride: number;
}

/** Filter taps for one axis: output pixels 0..outSize-1 over the input span [in0, in1), clipped to [clip0, clip1). */
function coefficients(in0: number, in1: number, clip0: number, clip1: number, outSize: number): Coefficients {
  const scale = (in1 - in0) / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale;
  const stride = Math.ceil(support) * 2 + 1;
  const c: Coefficients = {
    first: new Int32Array(outSize),
    count: new Int32Array(outSize),
    weights: new Int32Array(outSize * stride),
    stride,
  };
  const w = new Float64Array(stride);
  for (let x = 0; x < outSize; x++) {
    const center = in0 + (x + 0.5) * scale;
    // Math.trunc: C's int cast, as PIL truncates (not floors) these bounds.
    let lo = Math.max(Math.trunc(center - support + 0.5), clip0);
    let hi = Math.min(Math.trunc(center + support + 0.5), clip1);
    if (hi - lo > stride) hi = lo + stride;
    if (hi <= lo) {
      lo = Math.min(Math.max(Math.trunc(center), clip0), clip1 - 1);
      hi = lo + 1;
    }
    let total = 0;
    for (let i = lo; i < hi; i++) {
      const d = Math.abs((i - center + 0.5) / filterScale);
      w[i - lo] = d < 1 ? 1 - d : 0;
      total += w[i - lo];
    }
    for (let i = 0; i < hi - lo; i++) {
      const k = total > 0 ? w[i] / total : 1 / (hi - lo);
      c.weights[x * stride + i] = Math.trunc(
        k < 0 ? -0.5 + k * (1 << PRECISION_BITS) : 0.5 + k * (1 << PRECISION_BITS),
      );
    }
    c.first[x] = lo;
    c.count[x] = hi - lo;
  }
  return c;
}

function clip8(v: number): number {
  const s = v >> PRECISION_BITS;
  return s < 0 ? 0 : s > 255 ? 255 : s;
}

export interface PixelBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * Resamples `box` (source pixel coordinates, fractional allowed) of a width×height image with
 * `channels` bytes per pixel (3 or 4; RGB is kept, alpha dropped) to outWidth×outHeight RGB.
 */
export function resizeBox(
  src: ArrayLike<number>,
  width: number,
  height: number,
  channels: 3 | 4,
  box: PixelBox,
  outWidth: number,
  outHeight: number,
): Uint8Array {
  const cx = coefficients(box.left, box.left + box.width, 0, width, outWidth);
  const cy = coefficients(box.top, box.top + box.height, 0, height, outHeight);
  let rowFirst = height;
  let rowLast = 0;
  for (let y = 0; y < outHeight; y++) {
    rowFirst = Math.min(rowFirst, cy.first[y]);
    rowLast = Math.max(rowLast, cy.first[y] + cy.count[y]);
  }
  const rows = rowLast - rowFirst;
  const across = new Uint8Array(rows * outWidth * 3);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < rows; y++) {
    const rowStart = (rowFirst + y) * width * channels;
    for (let x = 0; x < outWidth; x++) {
      const w0 = x * cx.stride;
      let p = rowStart + cx.first[x] * channels;
      let r = half;
      let g = half;
      let b = half;
      for (let k = 0; k < cx.count[x]; k++, p += channels) {
        const w = cx.weights[w0 + k];
        r += w * src[p];
        g += w * src[p + 1];
        b += w * src[p + 2];
      }
      const o = (y * outWidth + x) * 3;
      across[o] = clip8(r);
      across[o + 1] = clip8(g);
      across[o + 2] = clip8(b);
    }
  }
  const rowBytes = outWidth * 3;
  const out = new Uint8Array(rowBytes * outHeight);
  const sum = new Float64Array(rowBytes);
  for (let y = 0; y < outHeight; y++) {
    sum.fill(half);
    const w0 = y * cy.stride;
    for (let k = 0; k < cy.count[y]; k++) {
      const w = cy.weights[w0 + k];
      const at = (cy.first[y] + k - rowFirst) * rowBytes;
      for (let i = 0; i < rowBytes; i++) sum[i] += w * across[at + i];
    }
    const o = y * rowBytes;
    for (let i = 0; i < rowBytes; i++) out[o + i] = clip8(sum[i]);
  }
  return out;
}
