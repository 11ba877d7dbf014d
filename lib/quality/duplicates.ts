/**
 * Near-duplicates two ways: photos whose backbone features point the same way (cosine similarity), and
 * photos whose perceptual hashes nearly agree. Pairs above a method's threshold are linked, and linked
 * photos form a group (connected components), so a photo with three edited copies is one group of four.
 */
import * as tf from '../engine/tf';

import { hammingDistance, PHASH_BITS } from './phash';

export type DuplicateMethod = 'embedding' | 'phash' | 'both';

/**
 * Cosine similarity at or above which two photos count as near-duplicates. On 16 real photos, copies
 * resized to 60%, re-encoded at JPEG quality 40 and centre-cropped to 90% scored 0.953 and above against
 * their originals; of the 674,541 pairs of real photos, 10 reach 0.93, all of them copies, retouched
 * copies or shots a moment apart, while below it come different shots of one place (the Rialto bridge). A 10% brightening
 * can fall below it (0.908 once in 16): the perceptual hash catches that one. docs/data-quality.md has the
 * measurements; test/data-quality.test.ts checks both sides on the demo set and the real photos.
 */
export const EMBEDDING_THRESHOLD = 0.93;

/**
 * Hamming distance (of 64 bits) at or below which two perceptual hashes match. Resized, re-encoded and
 * brightened copies of real photos stay within 5 bits; among distinct real photos, the closest pairs are
 * recoloured copies of one drawing (0 to 8 bits, which the embedding misses), then nothing at 9 or 10, then
 * different photos from 11 bits on. A 90% crop moves 2 to 17 bits: cropping is the embedding's case.
 */
export const PHASH_MAX_DISTANCE = 10;

export interface SimilarPair {
  a: number;
  b: number;
  similarity: number;
}

/**
 * Pairs (a < b) of rows whose cosine similarity is at least `threshold`, computed in row blocks. Read
 * asynchronously: WebGPU has no synchronous reads.
 */
export async function embeddingPairs(
  features: Float32Array,
  dim: number,
  threshold = EMBEDDING_THRESHOLD,
  block = 512,
): Promise<SimilarPair[]> {
  const n = features.length / dim;
  const pairs: SimilarPair[] = [];
  if (n < 2) return pairs;
  const unit = tf.tidy(() => {
    const x = tf.tensor2d(features, [n, dim]);
    return tf.div<tf.Tensor2D>(x, tf.maximum(tf.norm(x, 'euclidean', 1, true), 1e-12));
  });
  try {
    for (let start = 0; start < n; start += block) {
      const rows = Math.min(block, n - start);
      const similarities = tf.tidy(() => tf.matMul(tf.slice(unit, [start, 0], [rows, dim]), unit, false, true));
      const sims = (await similarities.data()) as Float32Array;
      similarities.dispose();
      for (let r = 0; r < rows; r++) {
        const a = start + r;
        for (let b = a + 1; b < n; b++) {
          const s = sims[r * n + b];
          if (s >= threshold) pairs.push({ a, b, similarity: s });
        }
      }
    }
  } finally {
    unit.dispose();
  }
  return pairs;
}

/** Pairs of hashes at most `maxDistance` bits apart; similarity is 1 - distance / 64. Null hashes are left out. */
export function phashPairs(hashes: ReadonlyArray<Uint32Array | null>, maxDistance = PHASH_MAX_DISTANCE): SimilarPair[] {
  const pairs: SimilarPair[] = [];
  for (let a = 0; a < hashes.length; a++) {
    const ha = hashes[a];
    if (!ha) continue;
    for (let b = a + 1; b < hashes.length; b++) {
      const hb = hashes[b];
      if (!hb) continue;
      const d = hammingDistance(ha, hb);
      if (d <= maxDistance) pairs.push({ a, b, similarity: 1 - d / PHASH_BITS });
    }
  }
  return pairs;
}

export interface IndexGroup {
  /** Member indices, ascending. */
  members: number[];
  method: DuplicateMethod;
  /** The lowest similarity among the linked pairs that formed the group (by the group's method; embedding for 'both'). */
  similarity: number;
}

/** Connected components of the pairs' graph, each with its weakest link. */
export function groupPairs(pairs: readonly SimilarPair[], method: Exclude<DuplicateMethod, 'both'>): IndexGroup[] {
  const parent = new Map<number, number>();
  const find = (x: number): number => {
    let r = x;
    while (parent.get(r) !== r) r = parent.get(r)!;
    while (parent.get(x) !== r) {
      const next = parent.get(x)!;
      parent.set(x, r);
      x = next;
    }
    return r;
  };
  for (const { a, b } of pairs) {
    if (!parent.has(a)) parent.set(a, a);
    if (!parent.has(b)) parent.set(b, b);
    const [ra, rb] = [find(a), find(b)];
    if (ra !== rb) parent.set(Math.max(ra, rb), Math.min(ra, rb));
  }
  const groups = new Map<number, IndexGroup>();
  for (const x of parent.keys()) {
    const r = find(x);
    if (!groups.has(r)) groups.set(r, { members: [], method, similarity: 1 });
    groups.get(r)!.members.push(x);
  }
  for (const { a, similarity } of pairs) {
    const g = groups.get(find(a))!;
    g.similarity = Math.min(g.similarity, similarity);
  }
  return [...groups.values()]
    .map((g) => ({ ...g, members: g.members.sort((x, y) => x - y) }))
    .sort((x, y) => x.members[0] - y.members[0]);
}

/** Both methods' groups; a group that both found with the same members is listed once, as 'both'. */
export function mergeGroups(embedding: readonly IndexGroup[], phash: readonly IndexGroup[]): IndexGroup[] {
  const key = (g: IndexGroup): string => g.members.join(',');
  const byPhash = new Map(phash.map((g) => [key(g), g]));
  const out: IndexGroup[] = [];
  for (const g of embedding) {
    if (byPhash.has(key(g))) {
      out.push({ ...g, method: 'both' });
      byPhash.delete(key(g));
    } else out.push(g);
  }
  out.push(...byPhash.values());
  return out.sort((x, y) => x.members[0] - y.members[0] || x.method.localeCompare(y.method));
}
