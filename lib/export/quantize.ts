/**
 * Quantized weights in tfjs' weight-manifest format, which tfjs-core's io.decodeWeights reads back
 * (loadLayersModel and loadGraphModel dequantize on load). tfjs' JavaScript encodeWeights only writes
 * full-precision weights; the quantized layout lives in the Python converter, so it is written here:
 *
 * - float16: IEEE half floats, `quantization: {dtype: 'float16'}`;
 * - uint8: per-tensor affine, value ≈ q·scale + min, `quantization: {dtype: 'uint8', min, scale}`, with
 *   min nudged so that 0 is exactly representable, as the Python converter does.
 *
 * Only kernels (weights of rank 2 or more) are quantized: biases and BatchNorm's four vectors stay
 * float32: they are 0.55% of ResNet50's bytes, so keeping them exact costs little, and each BatchNorm
 * vector scales or shifts a whole channel, where one tensor-wide 8-bit grid would be coarse.
 */
import * as tf from '../engine/tf';

import { UserError } from '../util';

export type WeightQuantization = 'float16' | 'uint8';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The IEEE 754 half-float bits of `value`, rounded to nearest even (overflow gives ±Infinity). */
export function float16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rest > half || (rest === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  // A rounding carry out of the mantissa correctly bumps the exponent (and reaches Infinity at the top).
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

export function encodeFloat16(values: Float32Array, name: string): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const h = float16Bits(values[i]);
    if ((h & 0x7c00) === 0x7c00 && Number.isFinite(values[i]))
      throw new UserError(
        `weight ${name} has a value (${values[i]}) beyond float16's range (65504); export it with --quantize none or uint8`,
      );
    out[i] = h;
  }
  return out;
}

/** The Python converter's affine range: scale = (max − min) / 255, min nudged so that 0 is a code. */
export function affineRange(min: number, max: number, levels = 255): { min: number; scale: number } {
  if (!(max > min)) return { min, scale: 1 };
  const scale = (max - min) / levels;
  if (min <= 0 && max >= 0) return { min: -Math.round(-min / scale) * scale, scale };
  return { min, scale };
}

export function encodeUint8(values: Float32Array): { data: Uint8Array; min: number; scale: number } {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    if (values[i] < lo) lo = values[i];
    if (values[i] > hi) hi = values[i];
  }
  const { min, scale } = affineRange(lo, hi);
  const data = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) data[i] = Math.min(255, Math.max(0, Math.round((values[i] - min) / scale)));
  return { data, min, scale };
}

export function shouldQuantize(spec: tf.io.WeightsManifestEntry): boolean {
  return spec.dtype === 'float32' && spec.shape.length >= 2 && !spec.quantization;
}

/**
 * Re-encodes full-precision weights (tfjs' encodeWeights layout: the specs in order, values packed
 * back to back) with `quantization`; returns the new specs and bytes in the same layout.
 */
export function quantizeWeights(
  specs: tf.io.WeightsManifestEntry[],
  data: Uint8Array,
  quantization: WeightQuantization,
): { specs: tf.io.WeightsManifestEntry[]; data: Uint8Array } {
  const parts: Uint8Array[] = [];
  const outSpecs: tf.io.WeightsManifestEntry[] = [];
  let offset = 0;
  for (const spec of specs) {
    if (spec.quantization) throw new Error(`weight ${spec.name} is already quantized`);
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const bytes = count * (spec.dtype === 'float32' || spec.dtype === 'int32' ? 4 : spec.dtype === 'bool' ? 1 : NaN);
    if (!Number.isFinite(bytes)) throw new Error(`weight ${spec.name}: cannot quantize dtype ${spec.dtype}`);
    const raw = data.slice(offset, offset + bytes);
    offset += bytes;
    if (!shouldQuantize(spec)) {
      parts.push(raw);
      outSpecs.push(spec);
      continue;
    }
    const values = new Float32Array(raw.buffer, raw.byteOffset, count);
    if (quantization === 'float16') {
      parts.push(new Uint8Array(encodeFloat16(values, spec.name).buffer));
      outSpecs.push({ ...spec, quantization: { dtype: 'float16' } });
    } else {
      const q = encodeUint8(values);
      parts.push(q.data);
      outSpecs.push({ ...spec, quantization: { dtype: 'uint8', min: q.min, scale: q.scale } });
    }
  }
  if (offset !== data.length) throw new Error(`weight data is ${data.length} bytes, the specs describe ${offset}`);
  return { specs: outSpecs, data: concatBytes(parts) };
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
