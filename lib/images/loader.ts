/**
 * DataLoader: batches of an ImageFolder as TF.js tensors, decoded concurrently by sharp's thread pool,
 * with the next batch decoded while the current one is in use.
 *
 * Ownership: each yielded batch's tensors belong to the consumer, who disposes them. Prefetched data
 * is kept as plain typed arrays until it is yielded, so stopping early leaks no tensor.
 */
import * as tf from '../engine/tf';

import { defaultConcurrency, mapLimit, Random } from '../util';
import { DecodePool, defaultDecodeWorkers } from './decode-pool';
import type { ImageFolder, LoadedSample } from './folder';
import { specOf, TransformSpec } from './transforms';

export interface DataLoaderOptions {
  batchSize?: number;
  shuffle?: boolean;
  seed?: number;
  /** Images decoded at once (default: 2 per core, at most 8). */
  concurrency?: number;
  /** Drop the last batch when it is smaller than batchSize. */
  dropLast?: boolean;
  /**
   * Batches decoded ahead of the one in use (default 2). With one, the cores idle at each batch's end
   * while its last images decode; two keep them busy across batch boundaries.
   */
  prefetch?: number;
  /**
   * Decode in this many worker threads (default: one per core, at most 4), so decoding goes on while
   * the main thread trains. 0 decodes on the main thread's event loop. Transforms without a spec
   * (custom ones) always decode on the main thread.
   */
  workers?: number;
  /**
   * Load only these samples of the dataset (indices into dataset.samples). Each keeps the randomness of
   * its own index, so a subset sees the same augmentation as the whole dataset would.
   */
  indices?: readonly number[];
}

export interface Batch {
  /** float32 [n, height, width, 3]. */
  x: tf.Tensor4D;
  /** int32 [n] class indices. */
  y: tf.Tensor1D;
  files: string[];
  /** Indices of the batch's samples in dataset.samples. */
  indices: number[];
}

interface HostBatch {
  data: Float32Array;
  labels: Int32Array;
  files: string[];
  indices: number[];
  height: number;
  width: number;
}

export class DataLoader {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly concurrency: number;
  readonly dropLast: boolean;
  readonly workers: number;
  readonly prefetch: number;
  private readonly indices: readonly number[];
  private readonly spec: TransformSpec | null;

  constructor(
    readonly dataset: ImageFolder,
    options: DataLoaderOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 32;
    this.shuffle = options.shuffle ?? false;
    this.seed = options.seed ?? 0;
    this.concurrency = options.concurrency ?? defaultConcurrency();
    this.dropLast = options.dropLast ?? false;
    this.prefetch = options.prefetch ?? 2;
    this.indices = options.indices ?? Array.from({ length: dataset.length }, (_, i) => i);
    this.spec = specOf(dataset.transform);
    this.workers = this.spec ? (options.workers ?? defaultDecodeWorkers()) : 0;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1)
      throw new Error(`batchSize must be a positive integer, got ${this.batchSize}`);
    if (!Number.isInteger(this.prefetch) || this.prefetch < 1)
      throw new Error(`prefetch must be a positive integer, got ${this.prefetch}`);
  }

  /** Number of batches per epoch (before any undecodable file is dropped). */
  get length(): number {
    const n = this.indices.length / this.batchSize;
    return this.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  /** The sample order of an epoch: a seeded permutation when shuffling. */
  order(epoch: number): number[] {
    return this.shuffle ? Random.derive(this.seed, 'order', epoch).shuffled(this.indices) : [...this.indices];
  }

  /** The batches of one epoch. The same seed and epoch give the same batches, augmentation included. */
  async *batches(epoch = 0): AsyncGenerator<Batch> {
    const order = this.order(epoch);
    const chunks: number[][] = [];
    for (let i = 0; i < order.length; i += this.batchSize) chunks.push(order.slice(i, i + this.batchSize));
    if (this.dropLast && chunks.length > 0 && chunks[chunks.length - 1].length < this.batchSize) chunks.pop();

    const ahead: Promise<HostBatch | null>[] = [];
    let started = 0;
    const startNext = (): void => {
      if (started === chunks.length) return;
      const host = this.loadHost(chunks[started++], epoch);
      // Keep a prefetch from surfacing as an unhandled rejection if the consumer stops early.
      host.catch(() => undefined);
      ahead.push(host);
    };
    for (let k = 0; k < this.prefetch; k++) startNext();
    while (ahead.length > 0) {
      const current = await ahead.shift()!;
      startNext();
      if (!current) continue;
      yield {
        x: tf.tensor4d(current.data, [current.labels.length, current.height, current.width, 3], 'float32'),
        y: tf.tensor1d(current.labels, 'int32'),
        files: current.files,
        indices: current.indices,
      };
    }
  }

  [Symbol.asyncIterator](): AsyncGenerator<Batch> {
    return this.batches(0);
  }

  /** One sample, in a worker when there are workers; null (and a recorded skip) for an undecodable file. */
  private async loadOne(index: number, epoch: number): Promise<LoadedSample | null> {
    const rng = Random.derive(this.seed, 'sample', epoch, index);
    if (this.workers === 0 || !this.spec) return this.dataset.load(index, rng);
    const { file, label } = this.dataset.samples[index];
    const reply = await DecodePool.shared(this.workers).run(file, this.spec, rng.getState());
    if (reply.ok)
      return { image: { kind: 'float', data: reply.data, width: reply.width, height: reply.height }, label, file };
    if ('reason' in reply) {
      this.dataset.recordSkip(file, reply.reason);
      return null;
    }
    throw new Error(`decoding ${file} failed: ${reply.fatal}`);
  }

  private async loadHost(indices: number[], epoch: number): Promise<HostBatch | null> {
    // With workers, the whole batch is queued at once: they keep decoding while the main thread is busy.
    const limit = this.workers > 0 ? indices.length : this.concurrency;
    const loaded = await mapLimit(indices, limit, (i) => this.loadOne(i, epoch));
    const okIndices = indices.filter((_, j) => loaded[j] !== null);
    const ok = loaded.filter((s): s is LoadedSample => s !== null);
    if (ok.length === 0) return null;
    const { width, height } = ok[0].image;
    const size = width * height * 3;
    const data = new Float32Array(ok.length * size);
    ok.forEach((s, j) => {
      if (s.image.width !== width || s.image.height !== height) {
        throw new Error(
          `images in a batch must share one size: ${s.file} is ${s.image.width}×${s.image.height}, expected ${width}×${height} (end the transform with a fixed-size crop)`,
        );
      }
      data.set(s.image.data, j * size);
    });
    return {
      data,
      labels: Int32Array.from(ok.map((s) => s.label)),
      files: ok.map((s) => s.file),
      indices: okIndices,
      height,
      width,
    };
  }
}
