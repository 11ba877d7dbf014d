/** Batch sources for trainModel: cached feature vectors, or images through a DataLoader. */
import * as tf from '../engine/tf';

import type { DataLoader } from '../images';
import { Random } from '../util';
import type { FeatureSet } from './features';
import type { BatchSource, TrainBatch } from './train';

/**
 * Batches of cached features. With several views (augmented passes), epoch e uses view e mod views,
 * so augmentation still varies across epochs while the backbone ran once per view.
 */
export class FeatureSource implements BatchSource {
  constructor(
    readonly views: readonly FeatureSet[],
    readonly batchSize: number,
    readonly shuffle: boolean,
    readonly seed: number,
  ) {}

  get size(): number {
    return this.views[0].labels.length;
  }

  async *batches(epoch: number): AsyncGenerator<TrainBatch> {
    const set = this.views[epoch % this.views.length];
    const n = set.labels.length;
    const order = Array.from({ length: n }, (_, i) => i);
    const indices = this.shuffle ? Random.derive(this.seed, 'feature-order', epoch).shuffled(order) : order;
    for (let start = 0; start < n; start += this.batchSize) {
      const chunk = indices.slice(start, start + this.batchSize);
      const x = new Float32Array(chunk.length * set.dim);
      chunk.forEach((i, j) => x.set(set.features.subarray(i * set.dim, (i + 1) * set.dim), j * set.dim));
      yield {
        x: tf.tensor2d(x, [chunk.length, set.dim]),
        y: tf.tensor1d(Int32Array.from(chunk.map((i) => set.labels[i])), 'int32'),
      };
    }
  }
}

/** Image batches from a DataLoader (fine-tuning). */
export class LoaderSource implements BatchSource {
  constructor(readonly loader: DataLoader) {}

  get size(): number {
    return this.loader.dataset.length;
  }

  async *batches(epoch: number): AsyncGenerator<TrainBatch> {
    for await (const { x, y } of this.loader.batches(epoch)) yield { x, y };
  }
}

/**
 * Progressive resizing: epoch e's batches come from the source for sizes[e] (each one a loader whose
 * transforms crop to that size). The sample order and augmentation are functions of the seed and epoch,
 * so each epoch sees the photos it would at any size.
 */
export class SizedSource implements BatchSource {
  constructor(
    readonly bySize: ReadonlyMap<number, BatchSource>,
    readonly sizes: readonly number[],
  ) {
    for (const s of sizes) if (!bySize.has(s)) throw new Error(`no batch source for input size ${s}`);
  }

  get size(): number {
    return this.bySize.get(this.sizes[0])!.size;
  }

  batches(epoch: number): AsyncGenerator<TrainBatch> {
    const size = this.sizes[epoch];
    if (size === undefined) throw new Error(`no input size for epoch ${epoch} (${this.sizes.length} given)`);
    return this.bySize.get(size)!.batches(epoch);
  }
}
