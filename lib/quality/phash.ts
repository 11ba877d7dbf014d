/**
 * Perceptual hashes (pHash: the signs of an image's lowest DCT frequencies against their mean, 64 bits),
 * from the npm package sharp-phash, which runs on the project's sharp. Two photos whose hashes differ in
 * few bits look alike at thumbnail scale, whatever their size, JPEG quality or small brightness changes.
 */
import phash from 'sharp-phash';

import type { Skipped } from '../data';
import { defaultConcurrency, errorLine, mapLimit } from '../util';

export const PHASH_BITS = 64;

/** Bits that differ between two 64-bit hashes held as two 32-bit halves. */
export function hammingDistance(a: Uint32Array, b: Uint32Array): number {
  return popcount32(a[0] ^ b[0]) + popcount32(a[1] ^ b[1]);
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/** sharp-phash's '0'/'1' string as two 32-bit halves. */
export function packHash(bits: string): Uint32Array {
  if (!/^[01]{64}$/.test(bits)) throw new Error(`not a 64-bit hash: ${bits}`);
  return Uint32Array.of(parseInt(bits.slice(0, 32), 2) >>> 0, parseInt(bits.slice(32), 2) >>> 0);
}

/** The pHash of every file; a file sharp cannot read gets null and a skip with its reason. */
export async function perceptualHashes(
  files: readonly string[],
  concurrency = defaultConcurrency(),
): Promise<{ hashes: Array<Uint32Array | null>; skipped: Skipped[] }> {
  const skipped: Skipped[] = [];
  const hashes = await mapLimit(files, concurrency, async (file) => {
    try {
      return packHash(await phash(file));
    } catch (err) {
      skipped.push({ path: file, reason: `perceptual hash failed: ${errorLine(err)}` });
      return null;
    }
  });
  return { hashes, skipped };
}
